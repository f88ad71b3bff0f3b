"""Multi mode: two mock engines (one per "GPU") behind HAProxy."""

from __future__ import annotations

import os
import signal

from helpers import (
    MODEL,
    AgentProcess,
    counter,
    http,
    pid_alive,
    validator,
    wait_until,
)

HEARTBEAT = validator("heartbeat.v2.json")
REGISTER = validator("register.v2.json")
SUCCESS = "vllm:request_success_total"


def chat(agent: AgentProcess, session: str | None = None) -> int:
    headers = {"X-Inventiv-Session": session} if session else {}
    status, _ = agent.relay(
        "POST",
        "/v1/chat/completions",
        body={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        headers=headers,
        timeout=10,
    )
    return status


def engine_metrics(port: int) -> str:
    status, body = http("GET", f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return body.decode()


def successes(port: int) -> float:
    return counter(engine_metrics(port), SUCCESS)


def test_two_engines_behind_haproxy(start_agent, control_plane, ports):
    engine_base = ports.take_range(2)
    front = ports.take()
    agent = start_agent(
        mode="multi",
        gpu_count=2,
        engine_port=engine_base,
        relay_port=front,
        # Keep a killed engine down long enough to watch traffic avoid it.
        engine_backoff_initial_s=4,
    )
    ports = [engine_base, engine_base + 1]

    def all_ready(hb):
        backends = hb["engine"].get("backends", [])
        return hb["status"] == "ready" and len(backends) == 2 and all(b["ready"] for b in backends)

    hb = wait_until(lambda: control_plane.heartbeat_where(all_ready), 20, "both backends ready")
    HEARTBEAT.validate(hb)
    assert [(b["port"], b["gpu_index"]) for b in hb["engine"]["backends"]] == [
        (ports[0], 0),
        (ports[1], 1),
    ]
    reg = control_plane.registers()[0]
    REGISTER.validate(reg)
    assert reg["mode"] == "multi"
    assert reg["gpu_count"] == 2
    assert reg["engine_port"] == front  # the OpenAI port is HAProxy's

    # HAProxy's own health checks (1 s apart) must see both engines up.
    start = [successes(p) for p in ports]

    def both_served() -> bool:
        assert chat(agent) == 200
        return all(successes(p) > s for p, s in zip(ports, start, strict=True))

    wait_until(both_served, 10, "both engines serving through HAProxy", interval=0.2)
    before = [successes(p) for p in ports]
    for _ in range(10):
        assert chat(agent) == 200
    after = [successes(p) for p in ports]
    got = [a - b for a, b in zip(after, before, strict=True)]
    assert sum(got) == 10
    assert all(n > 0 for n in got), f"leastconn should spread the load, got {got}"

    # A session sticks to one engine.
    before = after
    for _ in range(6):
        assert chat(agent, session="conversation-42") == 200
    after = [successes(p) for p in ports]
    got = [a - b for a, b in zip(after, before, strict=True)]
    assert sorted(got) == [0, 6], f"a session should stay on one engine, got {got}"
    pinned = got.index(6)

    # The heartbeat's token counters are both engines' summed.
    want = {
        key: sum(int(counter(engine_metrics(p), name)) for p in ports)
        for key, name in (
            ("prompt_total", "vllm:prompt_tokens_total"),
            ("generation_total", "vllm:generation_tokens_total"),
        )
    }
    assert want["prompt_total"] > 0
    summed = wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: hb["engine"].get("tokens") == want),
        10,
        f"a heartbeat with both engines' counters summed, {want}",
    )
    HEARTBEAT.validate(summed)

    # Kill the engine the session is pinned to: traffic goes on through the other.
    seen = len(control_plane.heartbeats())
    pid = agent.engine_pid(ports[pinned])
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # SIGKILL is delivered asynchronously: until the process is gone its
    # listening socket still completes handshakes, and HAProxy answers 502
    # for a request sent on one (a refused connection is redispatched).
    wait_until(lambda: not pid_alive(pid), 5, "the killed engine gone")
    other = ports[1 - pinned]
    base_other = successes(other)
    for i in range(6):
        assert chat(agent, session="conversation-42" if i % 2 else None) == 200
    assert successes(other) - base_other == 6

    def pinned_down(hb):
        by_port = {b["port"]: b["ready"] for b in hb["engine"].get("backends", [])}
        return by_port.get(ports[pinned]) is False and by_port.get(other) is True

    down = wait_until(
        lambda: control_plane.heartbeat_where(pinned_down, after=seen),
        3,
        "a heartbeat with the killed backend not ready",
    )
    HEARTBEAT.validate(down)
    # One GPU is enough to serve: the node stays ready.
    assert down["engine"]["ready"] is True
    assert down["status"] == "ready"

    # The killed engine comes back and is ready again.
    back = wait_until(
        lambda: control_plane.heartbeat_where(
            lambda hb: all_ready(hb) and hb["engine"]["restarts"] == 1, after=seen
        ),
        20,
        "the killed backend back",
    )
    HEARTBEAT.validate(back)

    status, metrics = agent.get_raw("/metrics")
    assert status == 200
    assert "inventiv_agent_haproxy_up 1" in metrics.decode()
