"""Run one child process in its own process group, restart it with
exponential backoff when it dies, and stop it (SIGTERM, then SIGKILL after a
grace period) on request. Used for each engine and for HAProxy."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .events import EventLog

ROTATE_OUTPUT_BYTES = 50 * 1024 * 1024
# A child that stayed up this long before dying starts the backoff over.
STABLE_AFTER_S = 60.0


class Supervisor:
    """`kind` names the events (engine_started, haproxy_exited, ...); `labels`
    (e.g. port, gpu_index) go into every event of this child."""

    def __init__(
        self,
        kind: str,
        argv: list[str],
        env: Mapping[str, str],
        *,
        log_dir: Path,
        slug: str,
        events: EventLog,
        on_exit: Callable[[], None],
        on_start: Callable[[], None] | None = None,
        labels: Mapping[str, Any] | None = None,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        stop_grace_s: float = 20.0,
    ) -> None:
        self.kind = kind
        self.argv = argv
        self.env = dict(env)
        self.output_path = log_dir / f"{slug}.log"
        self.pidfile = log_dir / f"{slug}.pid"
        self.events = events
        self.on_exit = on_exit
        self.on_start = on_start
        self.labels = dict(labels or {})
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stop_grace_s = stop_grace_s
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.last_exit_at = 0.0  # time.monotonic() of the last unexpected exit
        self.failures = 0  # unexpected exits and failed spawns
        self.generation = 0  # bumped at every spawn and exit: stale probes compare it
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- public -------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def running(self) -> bool:
        return self.pid is not None

    def start(self) -> None:
        self._kill_leftover()
        self._thread = threading.Thread(
            target=self._run, name=f"{self.kind}-supervisor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop for good: no restart after this. Blocks until the child is gone."""
        self._stopping.set()  # the supervising thread terminates the child
        if self._thread is not None:
            self._thread.join(timeout=self.stop_grace_s + 10)
        self.events.emit(f"{self.kind}_stopped", **self.labels)

    # --- internals ----------------------------------------------------------------

    def _run(self) -> None:
        delay = self.backoff_initial_s
        while not self._stopping.is_set():
            started = time.monotonic()
            if not self._spawn():
                code = None
            else:
                code = self._wait()
                if code is None:  # stopping
                    return
            uptime = time.monotonic() - started
            if uptime >= STABLE_AFTER_S:
                delay = self.backoff_initial_s
            self.events.emit(
                f"{self.kind}_restarting",
                **self.labels,
                delay_s=round(delay, 2),
                last_exit_code=code,
            )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, self.backoff_max_s)
            self.restarts += 1

    def _spawn(self) -> bool:
        self._rotate_output()
        try:
            with self.output_path.open("ab") as out:
                proc = subprocess.Popen(
                    self.argv,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: we signal the group
                )
        except OSError as e:
            self.failures += 1
            self.events.emit(f"{self.kind}_spawn_failed", **self.labels, error=str(e))
            self.on_exit()
            return False
        with self._lock:
            self._proc = proc
            self.generation += 1
        with contextlib.suppress(OSError):
            self.pidfile.write_text(f"{proc.pid}\n", encoding="ascii")
        self.events.emit(f"{self.kind}_started", **self.labels, pid=proc.pid)
        if self.on_start is not None:
            self.on_start()
        return True

    def _wait(self) -> int | None:
        proc = self._proc
        assert proc is not None
        while True:
            try:
                code = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if self._stopping.is_set():
                    self._terminate(proc)
                    return None
        if self._stopping.is_set():
            return None
        with self._lock:
            self.generation += 1
            self.last_exit_code = code
            self.last_exit_at = time.monotonic()
            self.failures += 1
        # The group may still hold children (vLLM workers): take them down too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.events.emit(f"{self.kind}_exited", **self.labels, pid=proc.pid, exit_code=code)
        self.on_exit()
        return code

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_grace_s)
        except subprocess.TimeoutExpired:
            self.events.emit(f"{self.kind}_kill", **self.labels, pid=proc.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            self.pidfile.unlink()

    def _kill_leftover(self) -> None:
        """A previous agent killed with SIGKILL leaves its child running and
        holding the port: find it through the pidfile and end its group."""
        try:
            pid = int(self.pidfile.read_text(encoding="ascii").strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if not cmdline or os.path.basename(cmdline[0].decode(errors="replace")) != os.path.basename(
            self.argv[0]
        ):
            return  # the pid was reused by something else
        self.events.emit(f"{self.kind}_leftover_killed", **self.labels, pid=pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _rotate_output(self) -> None:
        try:
            if self.output_path.stat().st_size > ROTATE_OUTPUT_BYTES:
                self.output_path.replace(self.output_path.with_suffix(".log.1"))
        except OSError:
            pass


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its parent counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
