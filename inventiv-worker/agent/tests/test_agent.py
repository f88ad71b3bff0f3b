"""The agent in mono mode against the real mock engine and a fake control plane."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from datetime import datetime, timezone

import pytest
from helpers import (
    TOKEN,
    AgentProcess,
    counter,
    http,
    mock_engine_command,
    pid_alive,
    validator,
    wait_until,
)

HEARTBEAT = validator("heartbeat.v2.json")
REGISTER = validator("register.v2.json")


def test_registers_then_heartbeats_in_the_schema_shapes(start_agent, control_plane):
    agent = start_agent()
    ready = wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: hb["status"] == "ready"),
        15,
        "a heartbeat with status ready",
    )
    n = len(control_plane.heartbeats())
    wait_until(lambda: len(control_plane.heartbeats()) >= n + 2, 5, "two more heartbeats")

    registers = control_plane.registers()
    assert len(registers) == 1
    reg = registers[0]
    REGISTER.validate(reg)
    assert reg["schema_version"] == 2
    assert reg["instance_id"] == agent.cfg["instance_id"]
    assert reg["model_id"] == agent.cfg["model_id"]
    assert reg["mode"] == "mono"
    assert reg["agent_port"] == agent.cfg["agent_port"]
    # The OpenAI port the control plane is told is the relay's, never the engine's.
    assert reg["engine_port"] == agent.cfg["relay_port"]

    heartbeats = control_plane.heartbeats()
    for hb in heartbeats:
        HEARTBEAT.validate(hb)
        assert hb["boot_id"] == reg["boot_id"]
        assert hb["agent"] == reg["agent"]
        # No nvidia-smi and no NVML on this machine: no GPU data, never made up.
        assert "gpus" not in hb
        assert set(hb["system"]) >= {"cpu_pct", "load1", "memory_used_mib", "memory_total_mib"}
    assert ready["engine"]["ready"] is True
    assert ready["engine"]["restarts"] == 0
    # Statuses only move forward: starting ... then ready.
    statuses = [hb["status"] for hb in heartbeats]
    assert statuses[statuses.index("ready") :] == ["ready"] * (
        len(statuses) - statuses.index("ready")
    )
    assert set(statuses) <= {"starting", "ready"}
    # Identified by the token only, never answered 401.
    assert control_plane.rejected == []
    assert all(r.authorization == f"Bearer {TOKEN}" for r in control_plane.received)
    assert {"agent_started", "register_ok", "engine_started", "engine_ready", "heartbeat_ok"} <= {
        e["event"] for e in agent.events()
    }


def test_gpu_fields_absent_without_gpu_tools(start_agent, control_plane):
    assert shutil.which("nvidia-smi") is None, "this test is for a machine without GPU tools"
    start_agent()
    hb = wait_until(lambda: control_plane.heartbeat_where(lambda hb: True), 10, "a heartbeat")
    assert "gpus" not in hb


def test_killed_engine_is_reported_at_once_restarted_and_ready_again(start_agent, control_plane):
    # A long interval: only the immediate heartbeat on change can be quick.
    agent = start_agent(heartbeat_interval_s=30)
    port = agent.cfg["engine_port"]
    wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: hb["engine"]["ready"]), 15, "engine ready"
    )
    pid = wait_until(lambda: agent.engine_pid(port), 5, "engine pid")
    seen = len(control_plane.heartbeats())

    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    down = wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: not hb["engine"]["ready"], after=seen),
        3,
        "a heartbeat reporting the engine not ready",
    )
    assert time.monotonic() - killed_at < 3
    assert down["status"] == "error"
    assert down["engine"]["last_exit_code"] == -signal.SIGKILL
    HEARTBEAT.validate(down)

    up = wait_until(
        lambda: control_plane.heartbeat_where(
            lambda hb: hb["engine"]["ready"] and hb["engine"]["restarts"] == 1, after=seen
        ),
        15,
        "a heartbeat with the restarted engine ready",
    )
    assert up["status"] == "ready"
    HEARTBEAT.validate(up)
    new_pid = agent.engine_pid(port)
    assert new_pid is not None
    assert new_pid != pid
    names = [e["event"] for e in agent.events()]
    tail = names[names.index("engine_exited") :]
    assert (
        tail.index("engine_restarting") < tail.index("engine_started") < tail.index("engine_ready")
    )


def engine_tokens(port: int) -> dict[str, int]:
    status, body = http("GET", f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    text = body.decode()
    return {
        "prompt_total": int(counter(text, "vllm:prompt_tokens_total")),
        "generation_total": int(counter(text, "vllm:generation_tokens_total")),
    }


def test_heartbeats_carry_the_engines_token_counters(start_agent, control_plane):
    """The counters the control plane reconciles its metering with: the
    engine's own, in the heartbeat; absent while the engine is down; from
    zero again (with the restart count moved) after a restart."""
    agent = start_agent(heartbeat_interval_s=0.5)
    port = agent.cfg["engine_port"]
    wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: hb["engine"]["ready"]), 15, "engine ready"
    )
    chat = {"model": agent.cfg["model_id"], "messages": [{"role": "user", "content": "hi"}]}

    def answered() -> bool:
        return agent.relay("POST", "/v1/chat/completions", body=chat, timeout=10)[0] == 200

    # The relay routes once its own health check has seen the engine up.
    wait_until(answered, 10, "a first answer through the relay")
    for _ in range(2):
        assert answered()
    want = engine_tokens(port)
    assert want["prompt_total"] > 0
    assert want["generation_total"] > 0
    hb = wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: hb["engine"].get("tokens") == want),
        10,
        f"a heartbeat with the engine's counters {want}",
    )
    HEARTBEAT.validate(hb)
    assert hb["engine"]["restarts"] == 0

    pid = wait_until(lambda: agent.engine_pid(port), 5, "engine pid")
    seen = len(control_plane.heartbeats())
    os.kill(pid, signal.SIGKILL)
    down = wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: not hb["engine"]["ready"], after=seen),
        5,
        "a heartbeat reporting the engine not ready",
    )
    assert "tokens" not in down["engine"], "a dead engine's counters are not reported"
    up = wait_until(
        lambda: control_plane.heartbeat_where(
            lambda hb: hb["engine"]["restarts"] == 1 and "tokens" in hb["engine"], after=seen
        ),
        15,
        "the restarted engine's counters",
    )
    HEARTBEAT.validate(up)
    assert up["engine"]["tokens"] == {"prompt_total": 0, "generation_total": 0}


def test_sigterm_drains_stops_the_engine_and_exits_0(start_agent, control_plane):
    agent = start_agent()
    port = agent.cfg["engine_port"]
    wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: hb["status"] == "ready"), 15, "ready"
    )
    pid = agent.engine_pid(port)
    assert pid is not None
    assert agent.stop() == 0
    draining = control_plane.heartbeat_where(lambda hb: hb["status"] == "draining")
    assert draining is not None
    HEARTBEAT.validate(draining)
    assert not pid_alive(pid)
    assert control_plane.heartbeats()[-1]["status"] == "draining"
    assert control_plane.heartbeats()[-1]["engine"]["ready"] is False
    names = [e["event"] for e in agent.events()]
    assert names.index("draining") < names.index("engine_stopped") < names.index("agent_stopped")


def test_registration_is_retried_until_the_control_plane_accepts(start_agent, control_plane):
    control_plane.fail_next = 2
    agent = start_agent()
    wait_until(control_plane.registers, 15, "a registration")
    failed = [e for e in agent.events() if e["event"] == "register_failed"]
    assert len(failed) == 2
    assert "503" in failed[0]["error"]


def test_heartbeat_failures_are_retried_and_unknown_boots_register_again(
    start_agent, control_plane
):
    agent = start_agent()
    wait_until(control_plane.heartbeats, 10, "a heartbeat")
    control_plane.fail_next = 2
    n = len(control_plane.heartbeats())
    wait_until(lambda: len(control_plane.heartbeats()) > n, 10, "heartbeats again")
    assert sum(e["event"] == "heartbeat_failed" for e in agent.events()) == 2

    # A control plane that lost this boot (404/409) gets a new registration.
    control_plane.fail_status = 404
    control_plane.fail_next = 1
    wait_until(lambda: len(control_plane.registers()) == 2, 10, "a second registration")
    first, second = control_plane.registers()
    assert first["boot_id"] == second["boot_id"]
    n = len(control_plane.heartbeats())
    wait_until(lambda: len(control_plane.heartbeats()) > n, 10, "heartbeats after it")


def test_a_heartbeat_refused_as_too_soon_is_sent_again_after_retry_after(
    start_agent, control_plane
):
    agent = start_agent()
    wait_until(control_plane.heartbeats, 10, "a heartbeat")
    control_plane.fail_status = 429
    control_plane.fail_next = 1
    wait_until(lambda: control_plane.fail_next == 0, 10, "the refusal")
    refused_at = time.monotonic()
    n = len(control_plane.heartbeats())
    wait_until(lambda: len(control_plane.heartbeats()) > n, 10, "the heartbeat sent again")
    assert time.monotonic() - refused_at >= 0.9, "sent again before its Retry-After"
    events = agent.events()
    deferred = [e for e in events if e["event"] == "heartbeat_deferred"]
    assert [e["retry_after_s"] for e in deferred] == [1.0]
    assert not any(e["event"] == "heartbeat_failed" for e in events), "a 429 is no failure"


def test_engine_left_by_a_killed_agent_is_replaced(start_agent, control_plane):
    agent = start_agent()
    port = agent.cfg["engine_port"]
    wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: hb["engine"]["ready"]), 15, "engine ready"
    )
    orphan = agent.engine_pid(port)
    assert orphan is not None
    agent.proc.kill()  # the agent alone: its engine, in its own group, lives on
    agent.proc.wait(timeout=10)
    assert pid_alive(orphan)

    again = AgentProcess(agent.tmp, agent.cfg)
    try:
        again.wait_healthy()
        boot = again.get("/healthz")[1]["boot_id"]
        wait_until(
            lambda: control_plane.heartbeat_where(
                lambda hb: hb["boot_id"] == boot and hb["engine"]["ready"]
            ),
            15,
            "the new agent's engine ready",
        )
        assert not pid_alive(orphan)
        assert again.engine_pid(port) not in (None, orphan)
        assert any(e["event"] == "engine_leftover_killed" for e in again.events())
    finally:
        again.stop()


def test_engine_that_does_not_serve_the_model_is_never_ready(
    start_agent, control_plane, mock_engine_bin
):
    cmd = mock_engine_command(mock_engine_bin)
    agent = start_agent(engine_command=[a.replace("{model}", "mock/not-it") for a in cmd])

    def reason():
        status, body = agent.get("/readyz")
        assert status == 503
        return body["backends"][0]["reason"]

    # /health answers once the mock has loaded, but /v1/models lists another model.
    wait_until(lambda: "does not list" in reason(), 10, "the engine loaded")
    n = len(control_plane.heartbeats())
    wait_until(lambda: len(control_plane.heartbeats()) >= n + 2, 5, "more heartbeats")
    assert all(
        hb["status"] == "starting" and not hb["engine"]["ready"]
        for hb in control_plane.heartbeats()
    )


@pytest.mark.parametrize("path", ["/readyz", "/info", "/logs", "/metrics"])
@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x", ""])
def test_protected_routes_need_the_worker_token(running_agent, path, token):
    status, body = running_agent.get(path, token=token)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"


def test_healthz_needs_no_token(running_agent):
    status, body = running_agent.get("/healthz", token=None)
    assert status == 200
    assert body["status"] == "ok"


def test_readyz_info_metrics_with_the_token(running_agent):
    wait_until(lambda: running_agent.get("/readyz")[0] == 200, 15, "/readyz 200")
    _, ready = running_agent.get("/readyz")
    assert ready["ready"] is True
    status, info = running_agent.get("/info")
    assert status == 200
    assert info["version"]
    assert len(info["bundle_sha256"]) == 64
    assert "build_date" in info
    status, body = running_agent.get_raw("/metrics")
    assert status == 200
    text = body.decode()
    assert "inventiv_agent_info{" in text
    assert 'inventiv_agent_engine_ready{port="' in text


def test_metrics_pass_promtool(running_agent):
    """The agent's /metrics, with the engine's counters it re-exports, is
    clean for `promtool check metrics` (Debian's prometheus package)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (scripts/test.sh does)"

    def scraped() -> str | None:
        status, body = running_agent.get_raw("/metrics")
        text = body.decode()
        counted = "inventiv_agent_engine_prompt_tokens_total{" in text
        return text if status == 200 and counted else None

    wait_until(lambda: scraped() is not None, 15, "the engine's token counters re-exported")
    text = scraped()
    assert text is not None
    assert 'inventiv_agent_heartbeats_total{result="failed"}' in text
    assert "inventiv_agent_engine_restarts_total{" in text
    out = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, check=False
    )
    said = (out.stdout + out.stderr).decode()
    assert out.returncode == 0 and not said.strip(), f"{said}\n{text}"


def test_logs_tail_and_since(running_agent):
    wait_until(lambda: running_agent.get("/readyz")[0] == 200, 15, "/readyz 200")
    status, body = running_agent.get("/logs?tail=1000")
    assert status == 200
    events = body["events"]
    assert events[0]["event"] == "agent_started"
    assert all({"ts", "event"} <= set(e) for e in events)

    status, body = running_agent.get("/logs?tail=3")
    assert status == 200
    last3 = body["events"]
    assert len(last3) == 3
    later = running_agent.get("/logs?tail=1000")[1]["events"]
    # The last 3 then, a contiguous run of what is logged now (heartbeats go on).
    start = later.index(last3[0])
    assert later[start : start + 3] == last3
    assert start >= len(events) - 3

    pivot = events[len(events) // 2]["ts"]
    status, body = running_agent.get(f"/logs?tail=1000&since={pivot}")
    assert status == 200
    pivot_dt = datetime.fromisoformat(pivot.replace("Z", "+00:00"))
    assert body["events"]
    assert all(
        datetime.fromisoformat(e["ts"].replace("Z", "+00:00")) > pivot_dt for e in body["events"]
    )

    future = datetime.now(timezone.utc).replace(year=2100).isoformat()
    assert running_agent.get(f"/logs?since={future.replace('+00:00', 'Z')}")[1]["events"] == []
    assert running_agent.get("/logs?tail=0")[1]["events"] == []
    assert running_agent.get("/logs?tail=-1")[0] == 400
    assert running_agent.get("/logs?since=yesterday")[0] == 400


def test_engine_lines_reach_the_log_without_the_probes(running_agent):
    wait_until(lambda: running_agent.get("/readyz")[0] == 200, 15, "/readyz 200")
    port = running_agent.cfg["engine_port"]
    status, _ = http(
        "POST",
        f"http://127.0.0.1:{port}/v1/chat/completions",
        body={
            "model": running_agent.cfg["model_id"],
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert status == 200

    def chat_line():
        events = running_agent.get("/logs?tail=1000")[1]["events"]
        lines = [e for e in events if e["event"] == "engine_output"]
        found = [e for e in lines if "POST /v1/chat/completions HTTP/1.1" in e["line"]]
        return (found, lines) if found else None

    found, lines = wait_until(chat_line, 10, "the engine's line for the chat in /logs")
    assert found[0]["port"] == port and found[0]["level"] == "info"
    # The agent probes the engine every second: its answered probes are not
    # carried (a refused one, while the model loads, is news and is).
    assert not any('GET /health HTTP/1.1" 200' in e["line"] for e in lines)
    assert not any('GET /metrics HTTP/1.1" 200' in e["line"] for e in lines)
