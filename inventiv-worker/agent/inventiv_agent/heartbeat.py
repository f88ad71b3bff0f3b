"""Talking to the control plane: register once per start (fresh boot id), then
a heartbeat every interval, or at once when something changed. Failures are
retried with exponential backoff. A heartbeat refused as too soon after the
last one (429, the control plane's minimum interval) is no failure: it is
sent again after its ``Retry-After``. The agent identifies itself by its
worker token only (``Authorization: Bearer``), never by its address."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from .events import EventLog

REGISTER_PATH = "/internal/workers/register"
HEARTBEAT_PATH = "/internal/workers/heartbeat"
REQUEST_TIMEOUT_S = 10.0
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 30.0
# Answers to a heartbeat that mean "I do not know this boot": register again.
REREGISTER_STATUSES = (404, 409)
# The answer to a heartbeat sooner than the control plane's minimum interval
# after the last one it accepted (HEARTBEAT_TOO_FREQUENT).
TOO_SOON_STATUS = 429
# The longest Retry-After a refused heartbeat waits for before it is sent again.
RETRY_AFTER_MAX_S = 5.0


class ControlPlaneError(Exception):
    def __init__(
        self, message: str, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


def retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header in its delay-seconds form (else None)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


class ControlPlaneClient:
    def __init__(self, base_url: str, token: str, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def post(self, path: str, payload: dict[str, Any], timeout: float | None = None) -> None:
        """POST JSON; returns on any 2xx (the body is not needed), else raises.
        `timeout` overrides the client's for this one request."""
        request = urllib.request.Request(  # noqa: S310 - the URL is configuration
            self.base_url + path,
            data=json.dumps(payload, separators=(",", ":")).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self._token}",
                "User-Agent": "inventiv-agent",
            },
        )
        try:
            wait = self.timeout if timeout is None else timeout
            with urllib.request.urlopen(request, timeout=wait) as resp:  # noqa: S310
                resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read(500).decode("utf-8", errors="replace").strip()
            wait = retry_after(e.headers.get("Retry-After"))
            raise ControlPlaneError(f"HTTP {e.code}: {detail}", e.code, wait) from None
        except (OSError, ValueError) as e:
            raise ControlPlaneError(str(getattr(e, "reason", e))) from None


class HeartbeatLoop:
    """`build_register()` and `build_heartbeat()` give the payloads; `wake()`
    asks for a heartbeat now instead of at the next interval."""

    def __init__(
        self,
        client: ControlPlaneClient,
        events: EventLog,
        interval_s: float,
        *,
        build_register: Callable[[], dict[str, Any]],
        build_heartbeat: Callable[[], dict[str, Any]],
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self.client = client
        self.events = events
        self.interval_s = interval_s
        self.build_register = build_register
        self.build_heartbeat = build_heartbeat
        self.backoff_initial_s = min(backoff_initial_s, interval_s)
        self.backoff_max_s = backoff_max_s
        self.registered = False
        self.heartbeats_ok = 0
        self.heartbeats_failed = 0
        self.register_failures = 0
        self.last_ok_at: float | None = None  # time.time()
        # time.monotonic() of the last register or heartbeat the control plane
        # accepted: the dead-man switch's clock.
        self.last_contact: float | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=REQUEST_TIMEOUT_S + 5)

    def _run(self) -> None:
        delay = self.backoff_initial_s
        while not self._stop.is_set():
            ok = self.send_once()
            if ok:
                delay = self.backoff_initial_s
                wait = self.interval_s
            else:
                wait, delay = delay, min(delay * 2, self.backoff_max_s)
            # A wake() during a backoff does not cut it short: no hammering a
            # control plane that is down.
            if ok:
                self._wake.wait(wait)
            else:
                self._stop.wait(wait)
            self._wake.clear()

    def send_once(self, timeout: float | None = None) -> bool:
        """Register if needed, else one heartbeat. True on success."""
        with self._send_lock:
            if not self.registered:
                return self._register(timeout)
            self._wake.clear()  # this heartbeat carries whatever woke us
            payload = self.build_heartbeat()
            try:
                try:
                    self.client.post(HEARTBEAT_PATH, payload, timeout)
                except ControlPlaneError as e:
                    if e.status != TOO_SOON_STATUS:
                        raise
                    payload = self._later(e)
                    self.client.post(HEARTBEAT_PATH, payload, timeout)
            except ControlPlaneError as e:
                self.heartbeats_failed += 1
                self.events.emit("heartbeat_failed", error=str(e), status=payload["status"])
                if e.status in REREGISTER_STATUSES:
                    self.registered = False
                return False
            self.heartbeats_ok += 1
            self.last_ok_at = time.time()
            self.last_contact = time.monotonic()
            self.events.emit(
                "heartbeat_ok", status=payload["status"], engine_ready=payload["engine"]["ready"]
            )
            return True

    def _later(self, refused: ControlPlaneError) -> dict[str, Any]:
        """Waits out a heartbeat refused as too soon after the last accepted
        one (a wake() or a drain right after a tick); returns a fresh one."""
        wait = min(refused.retry_after_s or self.backoff_initial_s, RETRY_AFTER_MAX_S)
        self.events.emit("heartbeat_deferred", retry_after_s=wait)
        time.sleep(wait)
        self._wake.clear()  # the fresh heartbeat carries whatever woke us meanwhile
        return self.build_heartbeat()

    def _register(self, timeout: float | None = None) -> bool:
        payload = self.build_register()
        try:
            self.client.post(REGISTER_PATH, payload, timeout)
        except ControlPlaneError as e:
            self.register_failures += 1
            self.events.emit("register_failed", error=str(e))
            return False
        self.registered = True
        self.last_contact = time.monotonic()
        self.events.emit("register_ok", boot_id=payload["boot_id"])
        self._wake.set()  # first heartbeat right away
        return True
