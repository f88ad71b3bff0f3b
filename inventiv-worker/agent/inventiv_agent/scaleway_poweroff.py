"""The dead-man switch's ``scaleway-poweroff`` action: power this Scaleway
server off through Scaleway's API, which stops the compute billing, where an
in-guest ``shutdown`` only leaves it "stopped in place" and still billed.

The server's id and zone come from the instance metadata service
(``GET http://169.254.42.42/conf?format=json``: fields ``id`` and
``location.zone_id``, as in scaleway-sdk-go's ``instance.Metadata``); the
call is ``POST {api}/instance/v1/zones/{zone}/servers/{id}/action`` with
``{"action": "poweroff"}`` and the organization's secret key as
``X-Auth-Token``, read from a file that must be mode 600 and the agent's own.
The key appears in no event, error or exception text."""

from __future__ import annotations

import json
import os
import re
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .config import Secret
from .events import EventLog

METADATA_TIMEOUT_S = 3.0
API_TIMEOUT_S = 10.0
ATTEMPTS = 3
PAUSE_S = 1.0
# Zones look like fr-par-1, nl-ams-3, pl-waw-2: checked before they go into a URL path.
ZONE = re.compile(r"^[a-z]{2}-[a-z]{3}-[0-9]{1,2}$")
SERVER_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ERROR_TAIL = 300
T = TypeVar("T")
# Both addresses are link-local or Scaleway's own: never through a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PowerOffError(Exception):
    """One step failed; `retry` says whether trying again may help."""

    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def key_problem(path: str) -> str | None:
    """Why the key file cannot be used (None: it can). Its content is not read."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "the file does not exist"
    except OSError as e:
        return f"cannot stat it: {e.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    mode = stat.S_IMODE(st.st_mode)
    if mode != 0o600:
        return f"mode {mode:o}, must be 600"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, the agent runs as uid {os.geteuid()}"
    return None


def read_key(path: str) -> Secret:
    """The key in `path` (see key_problem first); PowerOffError if unusable."""
    try:
        with open(path, encoding="utf-8") as f:
            key = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise PowerOffError(f"cannot read the key file: {type(e).__name__}", retry=False) from None
    if not key or not key.isascii() or not key.isprintable() or " " in key:
        raise PowerOffError("the key file holds no usable key", retry=False)
    return Secret(key)


@dataclass(frozen=True)
class ServerRef:
    zone: str
    server_id: str


def parse_metadata(body: bytes) -> ServerRef:
    """The server's zone and id from the metadata service's JSON."""
    try:
        data = json.loads(body)
    except ValueError:
        raise PowerOffError("the metadata service answered no JSON", retry=True) from None
    if not isinstance(data, dict):
        raise PowerOffError("the metadata service answered no JSON object", retry=True)
    location = data.get("location")
    zone = location.get("zone_id") if isinstance(location, dict) else None
    zone = zone or data.get("zone")
    server_id = data.get("id")
    if not isinstance(zone, str) or not ZONE.match(zone):
        raise PowerOffError(f"no valid zone in the metadata ({zone!r})", retry=False)
    if not isinstance(server_id, str) or not SERVER_ID.match(server_id):
        raise PowerOffError(f"no valid server id in the metadata ({server_id!r})", retry=False)
    return ServerRef(zone, server_id)


def _send(request: urllib.request.Request, timeout: float) -> tuple[int, bytes]:
    """Status and body; PowerOffError for what never got an HTTP answer."""
    try:
        with _OPENER.open(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:  # URLError, timeouts, resets
        raise PowerOffError(f"no answer: {getattr(e, 'reason', e)}", retry=True) from None
    except ValueError:  # its text may quote a header: the key's
        raise PowerOffError("the request could not be built", retry=False) from None


def fetch_server(metadata_url: str) -> ServerRef:
    request = urllib.request.Request(metadata_url)  # noqa: S310 - config checks http(s)
    status, body = _send(request, METADATA_TIMEOUT_S)
    if status != 200:
        raise PowerOffError(f"the metadata service answered {status}", retry=True)
    return parse_metadata(body)


def post_poweroff(api_url: str, server: ServerRef, key: Secret) -> int:
    """The status of Scaleway's answer (2xx); PowerOffError otherwise."""
    url = f"{api_url}/instance/v1/zones/{server.zone}/servers/{server.server_id}/action"
    request = urllib.request.Request(  # noqa: S310 - config checks http(s)
        url,
        data=b'{"action":"poweroff"}',
        method="POST",
        headers={"Content-Type": "application/json", "X-Auth-Token": key.reveal()},
    )
    status, body = _send(request, API_TIMEOUT_S)
    if 200 <= status < 300:
        return status
    # Scaleway's errors carry a message (and never echo the token).
    detail = body.decode("utf-8", errors="replace")[-ERROR_TAIL:]
    retry = status == 429 or status >= 500
    raise PowerOffError(f"Scaleway answered {status}: {detail}", retry=retry)


def _with_retries(step: Callable[[], T], pause_s: float, sleep: Callable[[float], None]) -> T:
    """`step()`, tried ATTEMPTS times while its errors say a retry may help."""
    attempt = 1
    while True:
        try:
            return step()
        except PowerOffError as e:
            if not e.retry or attempt >= ATTEMPTS:
                raise
        sleep(pause_s * attempt)
        attempt += 1


def power_off(
    metadata_url: str,
    api_url: str,
    key_file: str,
    events: EventLog,
    *,
    pause_s: float = PAUSE_S,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Ask Scaleway to power this server off; True once it accepted.
    Every failure is logged as an event; the caller falls back on a command."""
    problem = key_problem(key_file)
    if problem is not None:
        events.emit("dead_man_key_refused", key_file=key_file, reason=problem)
        return False
    try:
        key = read_key(key_file)
        server = _with_retries(lambda: fetch_server(metadata_url), pause_s, sleep)
        status = _with_retries(lambda: post_poweroff(api_url, server, key), pause_s, sleep)
    except PowerOffError as e:
        events.emit("dead_man_poweroff_failed", error=str(e))
        return False
    events.emit(
        "dead_man_poweroff_requested",
        zone=server.zone,
        server_id=server.server_id,
        status=status,
    )
    return True
