"""The dead-man switch's `scaleway-poweroff` action against a fake Scaleway
(instance metadata and Instance API on one local HTTP server): the exact
power-off call, retries, the key file checks, the fall back on
dead_man_command (a marker command stands in for `shutdown -h now`), and the
switch staying quiet while the control plane answers or when disabled."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    FOREVER,
    dead_man_events,
    firings,
    mark_command,
    relay_settings,
    wait_event,
    wait_ready,
    wait_until,
)

from inventiv_agent import config, scaleway_poweroff
from inventiv_agent.events import EventLog

SECRET_KEY = "9a1e3b7c-52d4-4c4f-8e0a-5b6d7e8f9a0b"  # the shape of a Scaleway secret key
SERVER_ID = str(uuid.UUID("1f3c5e7a-9b2d-4f6e-8a0c-2e4f6a8c0e1a"))
ZONE = "fr-par-2"
ACTION_PATH = f"/instance/v1/zones/{ZONE}/servers/{SERVER_ID}/action"
BASE = {
    "control_plane_url": "http://127.0.0.1:8080",
    "instance_id": str(uuid.uuid4()),
    "worker_token": "secret-token",
    "model_id": "m",
    **relay_settings(),
}


@dataclass
class Call:
    method: str
    path: str
    token: str | None
    content_type: str | None
    body: bytes


class FakeScaleway:
    """`GET /conf?format=json` answers as Scaleway's metadata service (fields
    as in scaleway-sdk-go's instance.Metadata); `POST .../servers/{id}/action`
    answers 202 with a task, as recorded from the real API. `fail[path]` is a
    list of statuses answered first, one per request."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.fail: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                call = Call(
                    self.command,
                    self.path,
                    self.headers.get("X-Auth-Token"),
                    self.headers.get("Content-Type"),
                    body,
                )
                with fake.lock:
                    fake.calls.append(call)
                    failures = fake.fail.get(self.path.split("?")[0], [])
                    failure = failures.pop(0) if failures else None
                if failure is not None:
                    return self._answer(failure, {"message": "failing on purpose", "type": "x"})
                if self.command == "GET" and self.path == "/conf?format=json":
                    return self._answer(200, metadata())
                if self.command == "POST" and self.path == ACTION_PATH:
                    task = {"id": str(uuid.uuid4()), "description": "server_poweroff"}
                    return self._answer(202, {"task": {**task, "status": "pending"}})
                return self._answer(404, {"message": "resource is not found", "type": "not_found"})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.metadata_url = f"{self.url}/conf?format=json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def posts(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == "POST"]


def metadata() -> dict[str, Any]:
    return {
        "id": SERVER_ID,
        "name": "inventiv-node",
        "commercial_type": "L4-1-24G",
        "location": {"zone_id": ZONE, "platform_id": "14", "hypervisor_id": "2001"},
        "zone": ZONE,
        "state": "running",
        "tags": ["inventiv"],
    }


@pytest.fixture
def scaleway() -> Iterator[FakeScaleway]:
    fake = FakeScaleway()
    yield fake
    fake.close()


def key_file(tmp_path: Path, mode: int = 0o600, content: str = SECRET_KEY + "\n") -> Path:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700, exist_ok=True)
    path = secrets / "scaleway_poweroff_key"
    path.write_text(content)
    path.chmod(mode)
    return path


# --- configuration -------------------------------------------------------------------


def test_config_defaults_for_the_scaleway_action(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**BASE, "dead_man_action": "scaleway-poweroff"}))
    cfg = config.load(path, environ={})
    assert cfg.dead_man_enabled
    assert cfg.dead_man_metadata_url == "http://169.254.42.42/conf?format=json"
    assert cfg.dead_man_api_url == "https://api.scaleway.com"
    # Beside the config file: bootstrap.sh's install dir.
    assert cfg.dead_man_key_file == str(tmp_path / "secrets" / "scaleway_poweroff_key")
    cfg = config.from_mapping(
        {
            **BASE,
            "dead_man_action": "scaleway-poweroff",
            "dead_man_api_url": "http://127.0.0.1:9/",
            "dead_man_key_file": "/etc/key",
        }
    )
    assert (cfg.dead_man_api_url, cfg.dead_man_key_file) == ("http://127.0.0.1:9", "/etc/key")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dead_man_metadata_url": "ftp://169.254.42.42/conf"}, "'dead_man_metadata_url' must be"),
        ({"dead_man_api_url": "api.scaleway.com"}, "'dead_man_api_url' must be an http"),
        ({"dead_man_key_file": "secrets/key"}, "'dead_man_key_file' must be an absolute path"),
    ],
)
def test_config_rejects_bad_scaleway_settings(change, message):
    with pytest.raises(config.ConfigError, match=message):
        config.from_mapping({**BASE, "dead_man_action": "scaleway-poweroff", **change})


# --- the power-off call ----------------------------------------------------------------


class Run:
    """scaleway_poweroff.power_off against the fake, pauses recorded, not slept."""

    def __init__(self, tmp_path: Path, fake: FakeScaleway, key: Path) -> None:
        self.events = EventLog(tmp_path / "logs", mirror=None)
        self.pauses: list[float] = []
        self.accepted = scaleway_poweroff.power_off(
            fake.metadata_url, fake.url, str(key), self.events, sleep=self.pauses.append
        )

    def names(self) -> list[str]:
        return [e["event"] for e in self.events.read()]

    def text(self) -> str:
        return json.dumps(self.events.read())


def test_posts_poweroff_for_this_server_with_the_key(tmp_path, scaleway):
    run = Run(tmp_path, scaleway, key_file(tmp_path))
    assert run.accepted
    meta, post = scaleway.calls
    assert (meta.method, meta.path, meta.token) == ("GET", "/conf?format=json", None)
    assert (post.method, post.path) == ("POST", ACTION_PATH)
    assert json.loads(post.body) == {"action": "poweroff"}
    assert post.token == SECRET_KEY  # the file's content, newline stripped
    assert post.content_type == "application/json"
    (requested,) = run.events.read()
    assert requested["event"] == "dead_man_poweroff_requested"
    assert (requested["zone"], requested["server_id"], requested["status"]) == (
        ZONE,
        SERVER_ID,
        202,
    )
    assert SECRET_KEY not in run.text()


def test_retries_a_busy_api_and_metadata_service(tmp_path, scaleway):
    scaleway.fail = {"/conf": [500], ACTION_PATH: [503, 429]}
    run = Run(tmp_path, scaleway, key_file(tmp_path))
    assert run.accepted
    assert [c.method for c in scaleway.calls] == ["GET", "GET", "POST", "POST", "POST"]
    assert run.pauses == [1.0, 1.0, 2.0]  # growing, per step
    assert run.names() == ["dead_man_poweroff_requested"]


@pytest.mark.parametrize(
    ("fail", "calls", "error"),
    [
        ({ACTION_PATH: [401]}, ["GET", "POST"], "Scaleway answered 401: "),  # not retried
        ({ACTION_PATH: [502] * 3}, ["GET", "POST", "POST", "POST"], "Scaleway answered 502"),
        ({"/conf": [500] * 3}, ["GET"] * 3, "the metadata service answered 500"),
    ],
    ids=["key refused", "api down", "metadata down"],
)
def test_gives_up_when_scaleway_does_not_accept(tmp_path, scaleway, fail, calls, error):
    scaleway.fail = fail
    run = Run(tmp_path, scaleway, key_file(tmp_path))
    assert not run.accepted
    assert [c.method for c in scaleway.calls] == calls
    (failed,) = run.events.read()
    assert failed["event"] == "dead_man_poweroff_failed"
    assert failed["error"].startswith(error)
    assert SECRET_KEY not in run.text()


def test_gives_up_when_nothing_answers(tmp_path, scaleway):
    scaleway.close()
    run = Run(tmp_path, scaleway, key_file(tmp_path))
    assert not run.accepted
    assert len(run.pauses) == scaleway_poweroff.ATTEMPTS - 1
    assert run.events.read()[0]["error"].startswith("no answer: ")


def test_metadata_without_a_usable_zone_or_id_is_refused():
    for broken in ({"id": SERVER_ID}, {**metadata(), "id": "../../other"}):
        with pytest.raises(scaleway_poweroff.PowerOffError, match="no valid"):
            scaleway_poweroff.parse_metadata(json.dumps(broken).encode())
    # The zone of `location` first, the top-level one when it is missing.
    top_level_zone = json.dumps({"id": SERVER_ID, "zone": "nl-ams-1"}).encode()
    ref = scaleway_poweroff.parse_metadata(top_level_zone)
    assert ref == scaleway_poweroff.ServerRef("nl-ams-1", SERVER_ID)


def test_the_worst_case_stays_within_the_switchs_bound():
    from inventiv_agent.deadman import POWER_OFF_BOUND_S  # noqa: PLC0415

    n = scaleway_poweroff.ATTEMPTS
    pauses = scaleway_poweroff.PAUSE_S * n * (n - 1) / 2
    worst = n * (scaleway_poweroff.METADATA_TIMEOUT_S + scaleway_poweroff.API_TIMEOUT_S)
    assert worst + 2 * pauses <= POWER_OFF_BOUND_S


def refuse_missing(tmp_path: Path) -> Path:
    return tmp_path / "secrets" / "scaleway_poweroff_key"


def refuse_mode(mode: int):
    return lambda tmp_path: key_file(tmp_path, mode=mode)


def refuse_symlink(tmp_path: Path) -> Path:
    target = key_file(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(target)
    return link


def refuse_other_owner(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    path = key_file(tmp_path)
    os.chown(path, 65534, 65534)
    return path


UNUSABLE_KEYS = {
    "missing": (refuse_missing, "the file does not exist"),
    "mode 644": (refuse_mode(0o644), "mode 644, must be 600"),
    "mode 640": (refuse_mode(0o640), "mode 640, must be 600"),
    "mode 400": (refuse_mode(0o400), "mode 400, must be 600"),
    "symlink": (refuse_symlink, "not a regular file"),
    "other owner": (refuse_other_owner, "owned by uid 65534"),
    "empty": (lambda p: key_file(p, content="\n"), None),
    "two words": (lambda p: key_file(p, content="a b"), None),
}


@pytest.mark.parametrize("case", UNUSABLE_KEYS)
def test_an_unusable_key_file_is_refused_before_any_call(tmp_path, scaleway, case):
    make, reason = UNUSABLE_KEYS[case]
    path = make(tmp_path)
    run = Run(tmp_path, scaleway, path)
    assert not run.accepted
    assert scaleway.calls == []
    (event,) = run.events.read()
    if reason is None:  # readable, mode 600, but not a key
        assert event["event"] == "dead_man_poweroff_failed"
        assert event["error"] == "the key file holds no usable key"
    else:
        assert event["event"] == "dead_man_key_refused"
        assert event["key_file"] == str(path)
        assert event["reason"].startswith(reason)


# --- the agent process --------------------------------------------------------------


def switch_on(marker: Path, fake: FakeScaleway, key: Path, after_s: float = 1.0) -> dict[str, Any]:
    return {
        "dead_man_action": "scaleway-poweroff",
        "dead_man_after_s": after_s,
        "dead_man_command": mark_command(marker),
        "dead_man_metadata_url": fake.metadata_url,
        "dead_man_api_url": fake.url,
        "dead_man_key_file": str(key),
    }


def assert_key_nowhere(agent) -> None:
    assert SECRET_KEY not in agent.output_text()
    assert SECRET_KEY not in json.dumps(agent.events())


def test_powers_the_server_off_through_the_api(start_agent, control_plane, scaleway, tmp_path):
    marker = tmp_path / "powered-off"
    agent = start_agent(**switch_on(marker, scaleway, key_file(tmp_path)))
    wait_ready(control_plane)
    started = wait_event(agent, "agent_started", 5)
    assert started["dead_man_action"] == "scaleway-poweroff"
    control_plane.close()

    requested = wait_event(agent, "dead_man_poweroff_requested", 20)
    assert (requested["zone"], requested["server_id"]) == (ZONE, SERVER_ID)
    (post,) = scaleway.posts()
    assert (post.path, json.loads(post.body), post.token) == (
        ACTION_PATH,
        {"action": "poweroff"},
        SECRET_KEY,
    )
    names = [e["event"] for e in dead_man_events(agent.events())]
    assert names == ["dead_man_fired", "dead_man_poweroff_requested"]
    assert firings(marker) == 0  # Scaleway accepted: no in-guest shutdown
    assert_key_nowhere(agent)


FALLBACKS = {
    "key file missing": (refuse_missing, True, []),
    "key file mode 644": (refuse_mode(0o644), True, []),
    "key refused by Scaleway": (key_file, False, ["GET", "POST"]),
}


@pytest.mark.parametrize("case", FALLBACKS)
def test_falls_back_on_the_command(start_agent, control_plane, scaleway, tmp_path, case):
    make, refused_at_start, calls = FALLBACKS[case]
    scaleway.fail = {ACTION_PATH: [403]}
    marker = tmp_path / "powered-off"
    agent = start_agent(**switch_on(marker, scaleway, make(tmp_path)))
    wait_ready(control_plane)
    control_plane.fail_next = FOREVER

    exited = wait_event(agent, "dead_man_command_exited", 20)
    assert exited["exit_code"] == 0
    assert firings(marker) == 1
    assert [c.method for c in scaleway.calls] == calls
    names = [e["event"] for e in dead_man_events(agent.events())]
    step = "dead_man_key_refused" if refused_at_start else "dead_man_poweroff_failed"
    start = ["dead_man_key_refused"] if refused_at_start else []
    assert names == [*start, "dead_man_fired", step, "dead_man_command_exited"]
    if refused_at_start:
        assert dead_man_events(agent.events())[0]["fallback"] == mark_command(marker)[0]
    assert_key_nowhere(agent)


def test_does_not_fire_while_heartbeats_get_through(start_agent, control_plane, scaleway, tmp_path):
    marker = tmp_path / "powered-off"
    settings = switch_on(marker, scaleway, key_file(tmp_path), after_s=1.5)
    agent = start_agent(heartbeat_interval_s=0.2, **settings)
    wait_ready(control_plane)
    n = len(control_plane.heartbeats())
    first = time.monotonic()
    wait_until(
        lambda: len(control_plane.heartbeats()) >= n + 20 and time.monotonic() - first > 4.5,
        15,
        "4.5 s of accepted heartbeats",
    )
    assert scaleway.calls == []
    assert firings(marker) == 0
    assert dead_man_events(agent.events()) == []


def test_a_disabled_switch_never_calls_scaleway(start_agent, control_plane, scaleway, tmp_path):
    marker = tmp_path / "powered-off"
    agent = start_agent(**switch_on(marker, scaleway, key_file(tmp_path), after_s=0))
    wait_ready(control_plane)
    assert wait_event(agent, "agent_started", 5)["dead_man_action"] == "off"
    control_plane.fail_next = FOREVER
    gone_at = time.monotonic()
    wait_until(
        lambda: (
            time.monotonic() - gone_at > 3
            and sum(e["event"] == "heartbeat_failed" for e in agent.events()) >= 2
        ),
        15,
        "3 s of failed heartbeats",
    )
    assert scaleway.calls == []
    assert firings(marker) == 0
    assert dead_man_events(agent.events()) == []
