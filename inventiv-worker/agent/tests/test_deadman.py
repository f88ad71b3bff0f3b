"""The dead-man switch: its configuration, its decisions on a hand-driven
clock, and the agent process powering its node off (a marker command stands
in for `shutdown -h now`) once the fake control plane has gone away."""

from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    FOREVER,
    MODEL,
    TOKEN,
    FakeControlPlane,
    dead_man_events,
    firings,
    mark_command,
    mock_engine_command,
    relay_settings,
    wait_event,
    wait_ready,
    wait_until,
)

from inventiv_agent import config
from inventiv_agent.deadman import DeadManSwitch
from inventiv_agent.engine import parse_queue_metrics
from inventiv_agent.events import EventLog

BASE = {
    "control_plane_url": "http://127.0.0.1:8080",
    "instance_id": str(uuid.uuid4()),
    "worker_token": "secret-token",
    "model_id": "m",
    **relay_settings(),
}


# --- configuration -------------------------------------------------------------------


def test_config_defaults_leave_the_switch_off():
    cfg = config.from_mapping(BASE)
    assert cfg.dead_man_after_s == 1800.0
    assert cfg.dead_man_action == "off"
    assert cfg.dead_man_command == ("shutdown", "-h", "now")
    assert not cfg.dead_man_enabled
    assert cfg.redacted()["dead_man_command"] == ["shutdown", "-h", "now"]


def test_config_enables_the_switch_and_takes_env_overrides(tmp_path):
    path = tmp_path / "agent.json"
    path.write_text(json.dumps({**BASE, "dead_man_action": "shutdown"}))
    cfg = config.load(path, environ={})
    assert cfg.dead_man_enabled
    env = {
        "INVENTIV_AGENT_DEAD_MAN_AFTER_S": "600",
        "INVENTIV_AGENT_DEAD_MAN_COMMAND": "systemctl poweroff --no-wall",
    }
    cfg = config.load(path, environ=env)
    assert cfg.dead_man_after_s == 600.0
    assert cfg.dead_man_command == ("systemctl", "poweroff", "--no-wall")
    cfg = config.load(path, environ={"INVENTIV_AGENT_DEAD_MAN_AFTER_S": "0"})
    assert not cfg.dead_man_enabled


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"dead_man_action": "poweroff"},
            "'dead_man_action' must be one of 'off', 'shutdown', 'scaleway-poweroff'",
        ),
        ({"dead_man_after_s": -1}, "'dead_man_after_s' must be 0 (disabled) or a positive"),
        ({"dead_man_after_s": "nan"}, "'dead_man_after_s' must be 0 (disabled) or a positive"),
        ({"dead_man_after_s": "soon"}, "'dead_man_after_s' must be a number"),
        ({"dead_man_command": []}, "'dead_man_command' must be a non-empty list"),
        ({"dead_man_command": "shutdown -h now"}, "'dead_man_command' must be a non-empty list"),
        ({"dead_man_command": ["shutdown", ""]}, "'dead_man_command' must be a non-empty list"),
    ],
)
def test_config_rejects_bad_dead_man_settings(change, message):
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.from_mapping({**BASE, **change})


# --- decisions on a hand-driven clock --------------------------------------------------


class Node:
    """What the switch looks at, set by hand: the clock, the last contact with
    the control plane, the engines' load, and how a last heartbeat would go."""

    def __init__(self, tmp_path: Path, after_s: float = 100.0) -> None:
        self.now = 1000.0
        self.contact: float | None = None
        self.load = (0, 0)
        self.control_plane_up = False
        self.last_calls = 0
        self.marker = tmp_path / "powered-off"
        self.events = EventLog(tmp_path / "logs", mirror=None)
        self.switch = DeadManSwitch(
            after_s,
            mark_command(self.marker),
            self.events,
            last_contact=lambda: self.contact,
            load=lambda: self.load,
            last_call=self._last_call,
            clock=lambda: self.now,
        )

    def _last_call(self) -> bool:
        self.last_calls += 1
        if self.control_plane_up:
            self.contact = self.now
        return self.control_plane_up

    def names(self) -> list[str]:
        return [e["event"] for e in self.events.read()]


def test_fires_once_after_the_silence_counted_from_start(tmp_path):
    node = Node(tmp_path)
    node.now += 99.9
    assert not node.switch.check()
    node.now += 0.1
    assert node.switch.check()
    assert firings(node.marker) == 1
    assert node.names() == ["dead_man_fired", "dead_man_command_exited"]
    fired, exited = node.events.read()
    assert fired["silent_s"] == 100.0
    assert fired["program"] == sys.executable
    assert exited["exit_code"] == 0
    # Never twice, whatever happens next.
    node.now += 1000
    for _ in range(3):
        assert node.switch.check()
    assert firings(node.marker) == 1
    assert node.last_calls == 1


def test_an_accepted_heartbeat_restarts_the_count(tmp_path):
    node = Node(tmp_path)
    node.now += 60
    node.contact = node.now
    node.now += 99
    assert not node.switch.check()
    node.now += 1
    assert node.switch.check()
    assert node.events.read()[0]["silent_s"] == 100.0


def test_requests_in_flight_hold_it_until_they_end(tmp_path):
    node = Node(tmp_path)
    node.load = (1, 0)
    node.now += 100
    assert not node.switch.check()
    node.load = (0, 3)  # queued requests count as much as running ones
    node.now += 500
    assert not node.switch.check()
    assert node.names() == ["dead_man_held"]  # once per silence, not per check
    held = node.events.read()[0]
    assert (held["requests_running"], held["requests_waiting"]) == (1, 0)
    assert firings(node.marker) == 0
    node.load = (0, 0)
    assert node.switch.check()
    assert firings(node.marker) == 1
    assert node.events.read()[-2]["silent_s"] == 600.0


def test_a_control_plane_back_while_held_disarms_it(tmp_path):
    node = Node(tmp_path)
    node.load = (2, 0)
    node.now += 150
    assert not node.switch.check()
    node.contact = node.now  # the heartbeat loop got through again
    node.load = (0, 0)
    node.now += 50
    assert not node.switch.check()
    node.load = (1, 0)
    node.now += 50  # a new silence, busy again: held (and logged) again
    assert not node.switch.check()
    assert node.names() == ["dead_man_held", "dead_man_held"]
    assert firings(node.marker) == 0


def test_a_last_heartbeat_that_gets_through_stands_it_down(tmp_path):
    node = Node(tmp_path)
    node.control_plane_up = True
    node.now += 100
    assert not node.switch.check()
    assert node.names() == ["dead_man_stood_down"]
    node.now += 99
    assert not node.switch.check()
    assert node.last_calls == 1  # counting again from the answer, not calling each check
    node.control_plane_up = False
    node.now += 1
    assert node.switch.check()
    assert node.last_calls == 2
    assert firings(node.marker) == 1


def test_a_failing_command_is_logged_and_not_retried(tmp_path):
    events = EventLog(tmp_path / "logs", mirror=None)
    now = [0.0]
    switch = DeadManSwitch(
        10,
        [str(tmp_path / "no-such-program")],
        events,
        last_contact=lambda: None,
        load=lambda: (0, 0),
        last_call=lambda: False,
        clock=lambda: now[0],
    )
    now[0] = 10
    assert switch.check()
    assert switch.check()
    assert [e["event"] for e in events.read()] == ["dead_man_fired", "dead_man_command_failed"]


# --- the agent process --------------------------------------------------------------


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "powered-off"


def switch_on(marker: Path, after_s: float = 1.0) -> dict[str, Any]:
    return {
        "dead_man_action": "shutdown",
        "dead_man_after_s": after_s,
        "dead_man_command": mark_command(marker),
    }


GO_AWAY: dict[str, Callable[[FakeControlPlane], None]] = {
    "connection refused": lambda plane: plane.close(),
    "answers 503": lambda plane: setattr(plane, "fail_next", FOREVER),
}


@pytest.mark.parametrize("how", GO_AWAY)
def test_powers_off_after_the_control_plane_went_away(start_agent, control_plane, marker, how):
    agent = start_agent(**switch_on(marker))
    wait_ready(control_plane)
    started = wait_event(agent, "agent_started", 5)
    assert started["dead_man_after_s"] == 1.0
    GO_AWAY[how](control_plane)

    fired = wait_event(agent, "dead_man_fired", 15)
    exited = wait_event(agent, "dead_man_command_exited", 10)
    assert exited["exit_code"] == 0
    assert firings(marker) == 1
    assert fired["silent_s"] >= 1.0
    assert "no answer from the control plane" in fired["reason"]
    assert fired["program"] == sys.executable
    names = [e["event"] for e in dead_man_events(agent.events())]
    assert names == ["dead_man_fired", "dead_man_command_exited"]
    assert agent.proc.poll() is None  # the stand-in command does not stop the agent
    assert TOKEN not in agent.output_text()


class Stream:
    """A streamed chat completion held open against the engine until close()."""

    def __init__(self, host: str, port: int) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=10)
        body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        self.conn.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        self.response = self.conn.getresponse()
        assert self.response.status == 200

    def next_chunk(self) -> bytes:
        while True:
            line = self.response.readline()
            assert line, "the stream ended"
            if line.startswith(b"data: "):
                return line

    def close(self) -> None:
        self.response.close()
        self.conn.close()


@pytest.fixture
def streams() -> Iterator[list[Stream]]:
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        stream.close()


def engine_running(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return parse_queue_metrics(resp.read().decode())[0]


def test_waits_for_the_request_in_flight_then_powers_off(
    start_agent, control_plane, marker, mock_engine_bin, streams
):
    # 20 tokens/s of a practically endless answer: the request lasts until closed.
    slow = [*mock_engine_command(mock_engine_bin), "--tokens-per-second", "20"]
    slow += ["--output-len", "100000", "--max-model-len", "1000000"]
    agent = start_agent(engine_command=slow, **switch_on(marker))
    wait_ready(control_plane)
    port = agent.cfg["engine_port"]
    stream = Stream("127.0.0.1", port)
    streams.append(stream)
    stream.next_chunk()
    assert engine_running(port) == 1
    control_plane.fail_next = FOREVER

    held = wait_event(agent, "dead_man_held", 15)
    assert held["requests_running"] == 1
    assert held["silent_s"] >= 1.0
    stream.next_chunk()  # still answering while held
    assert firings(marker) == 0
    assert [e["event"] for e in dead_man_events(agent.events())] == ["dead_man_held"]

    stream.close()
    wait_until(lambda: engine_running(port) == 0, 5, "the engine to see the request end")
    fired = wait_event(agent, "dead_man_fired", 10)
    wait_event(agent, "dead_man_command_exited", 10)
    assert firings(marker) == 1
    assert fired["silent_s"] > held["silent_s"]


@pytest.mark.parametrize(
    "setting",
    [{"dead_man_after_s": 0}, {"dead_man_action": "off"}],
    ids=["after_s=0", "action=off"],
)
def test_a_disabled_switch_never_fires(start_agent, control_plane, marker, setting):
    agent = start_agent(**{**switch_on(marker), **setting})
    wait_ready(control_plane)
    assert wait_event(agent, "agent_started", 5)["dead_man_after_s"] is None
    control_plane.fail_next = FOREVER
    gone_at = time.monotonic()
    # Three times what the enabled switch takes (1 s + a check), heartbeats failing.
    wait_until(
        lambda: (
            time.monotonic() - gone_at > 3
            and sum(e["event"] == "heartbeat_failed" for e in agent.events()) >= 2
        ),
        15,
        "3 s of failed heartbeats",
    )
    assert firings(marker) == 0
    assert dead_man_events(agent.events()) == []


def test_does_not_fire_while_heartbeats_get_through(start_agent, control_plane, marker):
    agent = start_agent(heartbeat_interval_s=0.2, **switch_on(marker, after_s=1.5))
    wait_ready(control_plane)
    n = len(control_plane.heartbeats())
    # A silence of 1.5 s would fire it; 4.5 s of heartbeats every 0.2 s must not.
    first = time.monotonic()
    wait_until(
        lambda: len(control_plane.heartbeats()) >= n + 20 and time.monotonic() - first > 4.5,
        15,
        "4.5 s of accepted heartbeats",
    )
    assert firings(marker) == 0
    assert dead_man_events(agent.events()) == []
