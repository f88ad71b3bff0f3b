"""The Hugging Face token of gated models: read from its file at engine start
into the engine's HF_TOKEN (checked in the real mock engine's environment),
and shown nowhere else: not in the config, events, output, /info, /logs,
registrations or heartbeats; bootstrap.sh keeps its file private."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import AGENT_DIR, relay_settings, wait_until
from test_bootstrap import build_bundle

from inventiv_agent import config

HF_TOKEN = "hf_AgentTestToken0123456789abcdefghij"
BASE = {
    "control_plane_url": "http://127.0.0.1:8080/",
    "instance_id": "0b0e4b8e-6d1c-4a53-9b5e-2f4c1d7a9e10",
    "worker_token": "secret-token",
    "model_id": "Qwen/Qwen2.5-0.5B-Instruct",
    **relay_settings(),
}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(data))
    return path


def token_file(tmp_path: Path) -> Path:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    path = secrets / "hf_token"
    path.write_text(HF_TOKEN)
    path.chmod(0o600)
    return path


def engine_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def ready_engine_pid(agent, control_plane) -> int:
    wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: hb["status"] == "ready"),
        15,
        "a heartbeat with status ready",
    )
    pid = agent.engine_pid(agent.cfg["engine_port"])
    assert pid is not None
    return pid


def test_the_engine_gets_the_token_and_nothing_else_shows_it(
    start_agent, control_plane, tmp_path, monkeypatch
):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    path = token_file(tmp_path)
    agent = start_agent(hf_token_file=str(path))
    pid = ready_engine_pid(agent, control_plane)
    assert engine_environ(pid)["HF_TOKEN"] == HF_TOKEN

    shown = [
        json.dumps(agent.get("/info")[1]),
        json.dumps(agent.get("/logs?tail=1000")[1]),
        json.dumps([r.body for r in control_plane.received]),
        agent.config_path.read_text(),
        agent.output_text(),
    ]
    shown += [p.read_text(errors="replace") for p in agent.log_dir.iterdir() if p.is_file()]
    check = subprocess.run(
        [sys.executable, "-m", "inventiv_agent", "--check-config", "--config", agent.config_path],
        env={**os.environ, "PYTHONPATH": str(AGENT_DIR)},
        capture_output=True,
        text=True,
        check=True,
    )
    shown.append(check.stdout + check.stderr)
    assert str(path) in check.stdout, "the path is no secret"
    for text in shown:
        assert HF_TOKEN not in text
        assert HF_TOKEN[3:] not in text
    # The agent's own environment never holds it.
    assert "HF_TOKEN" not in engine_environ(agent.proc.pid)


def test_without_a_token_file_the_engine_gets_no_token(start_agent, control_plane, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    agent = start_agent()
    pid = ready_engine_pid(agent, control_plane)
    assert "HF_TOKEN" not in engine_environ(pid)


def test_the_token_file_must_be_an_absolute_readable_path(tmp_path):
    with pytest.raises(config.ConfigError, match="'hf_token_file' must be an absolute path"):
        config.load(write(tmp_path, {**BASE, "hf_token_file": "secrets/hf_token"}), environ={})
    missing = tmp_path / "nowhere" / "hf_token"
    with pytest.raises(config.ConfigError, match=f"'hf_token_file' {missing} is not a readable"):
        config.load(write(tmp_path, {**BASE, "hf_token_file": str(missing)}), environ={})
    path = token_file(tmp_path)
    path.write_text(HF_TOKEN + "\n")
    cfg = config.load(write(tmp_path, {**BASE, "hf_token_file": str(path)}), environ={})
    assert cfg.hf_token_file == str(path)
    assert config.read_hf_token(cfg.hf_token_file) == HF_TOKEN


def test_bootstrap_keeps_the_token_file_private_and_the_engine_gets_it(
    node, control_plane, tmp_path, monkeypatch
):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # Modes loosened since the orchestrator wrote them (umask 077).
    secrets = node.install_dir / "secrets"
    secrets.mkdir(parents=True)
    path = secrets / "hf_token"
    path.write_text(HF_TOKEN)
    secrets.chmod(0o755)
    path.chmod(0o644)
    node.config_path.write_text(json.dumps({**node.cfg, "hf_token_file": str(path)}))
    sha, bundle = build_bundle(tmp_path / "dist")
    run = node.bootstrap(bundle, sha)
    assert run.returncode == 0, run.stdout + run.stderr
    assert HF_TOKEN not in run.stdout + run.stderr
    assert (secrets.stat().st_mode & 0o777, path.stat().st_mode & 0o777) == (0o700, 0o600)
    wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: hb["status"] == "ready"), 20, "ready"
    )
    pid = int((node.install_dir / "logs" / f"engine-{node.cfg['engine_port']}.pid").read_text())
    assert engine_environ(pid)["HF_TOKEN"] == HF_TOKEN
