"""bootstrap.sh --mock run locally into a temporary install dir, and the
deterministic bundle of scripts/agent-bundle.sh."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from helpers import (
    AGENT_DIR,
    REPO_ROOT,
    WORKER_DIR,
    FakeControlPlane,
    Ports,
    agent_config,
    cert_pin,
    get_json,
    pid_alive,
    relay_request,
    validator,
    wait_until,
)

BOOTSTRAP = WORKER_DIR / "bootstrap.sh"
BUNDLE_SCRIPT = REPO_ROOT / "scripts" / "agent-bundle.sh"
HEARTBEAT = validator("heartbeat.v2.json")
MOCK_PHASES = [
    ("phase", "CHECK_BUNDLE"),
    ("phase", "PREPARE_DIRS"),
    ("phase-skip", "MOUNT_DATA_VOLUME"),
    ("phase-skip", "NVIDIA_CHECK"),
    ("phase", "PYTHON_VENV"),
    ("phase", "INSTALL_RELAY"),
    ("phase", "INSTALL_AGENT"),
    ("phase-skip", "INSTALL_VLLM"),
    ("phase", "START_AGENT"),
    ("phase", "DONE"),
]


def build_bundle(out: Path, src: Path = AGENT_DIR, epoch: str = "1700000000") -> tuple[str, Path]:
    done = subprocess.run(
        [str(BUNDLE_SCRIPT), "--out", str(out), "--src", str(src)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": epoch},
    )
    sha, path = done.stdout.split()
    return sha, Path(path)


def phases(stdout: str) -> list[tuple[str, str]]:
    out = []
    for line in stdout.splitlines():
        if line.startswith(("::phase::", "::phase-skip::")):
            kind, _, rest = line[2:].partition("::")
            out.append((kind, rest.split(" ", 1)[0]))
    return out


def relay_cert_lines(stdout: str) -> list[str]:
    return [
        line.removeprefix("::relay-cert::")
        for line in stdout.splitlines()
        if line.startswith("::relay-cert::")
    ]


def agent_processes(config_path: Path) -> list[int]:
    """Pids of `python -m inventiv_agent --config <config_path>`, without
    the agent's own children caught between fork and exec (they carry its
    command line for that instant)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        wanted = b"inventiv_agent" in argv and str(config_path).encode() in argv
        if wanted and pid_alive(int(entry.name)):
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return [pid for pid, parent in parents.items() if parent not in parents]


class Node:
    """A temporary 'VM': an install dir plus what the orchestrator uploads."""

    def __init__(
        self,
        tmp: Path,
        plane: FakeControlPlane,
        engine_bin: Path,
        haproxy_bin: str,
        ports: Ports,
    ) -> None:
        self.tmp = tmp
        self.install_dir = tmp / "opt" / "inventiv-agent"
        self.upload = tmp / "upload"
        self.upload.mkdir()
        self.cfg = agent_config(
            tmp,
            plane,
            engine_bin,
            ports,
            log_dir=str(self.install_dir / "logs"),
            haproxy_bin=haproxy_bin,
        )
        # The relay's certificate is bootstrap.sh's to make, where the agent looks by default.
        del self.cfg["relay_cert_file"]
        self.config_path = self.upload / "agent.json"
        self.config_path.write_text(json.dumps(self.cfg))

    def bootstrap(self, bundle: Path, sha: str, *extra: str) -> subprocess.CompletedProcess[str]:
        argv = ["bash", str(BOOTSTRAP), "--bundle", str(bundle), "--sha256", sha]
        argv += ["--config", str(self.config_path), "--install-dir", str(self.install_dir)]
        argv += ["--mock", "--health-timeout", "30", *extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTIV_")}
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env=env, check=False
        )

    def healthz(self) -> Any:
        url = f"http://{self.cfg['agent_host']}:{self.cfg['agent_port']}/healthz"
        try:
            return get_json(url)[1]
        except OSError:
            return None

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(BOOTSTRAP), "--stop", "--install-dir", str(self.install_dir)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        for pid in agent_processes(self.install_dir / "config.json"):
            os.kill(pid, 9)


def test_bootstrap_mock_installs_starts_and_is_idempotent(node, control_plane, tmp_path):
    sha, bundle = build_bundle(tmp_path / "dist")

    first = node.bootstrap(bundle, sha)
    assert first.returncode == 0, first.stdout + first.stderr
    assert phases(first.stdout) == MOCK_PHASES
    assert "::error::" not in first.stdout
    health = node.healthz()
    assert health["status"] == "ok"
    # The agent reports the checksum of the bundle it was installed from.
    hb = wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: hb["status"] == "ready"), 20, "ready"
    )
    HEARTBEAT.validate(hb)
    assert hb["agent"]["bundle_sha256"] == sha
    installed = node.install_dir / "config.json"
    assert oct(installed.stat().st_mode & 0o777) == "0o600"
    assert len(agent_processes(installed)) == 1
    # The relay's certificate: made on the node, its key readable by the agent's
    # user only, its SHA-256 printed once for the control plane to pin.
    pem = node.install_dir / "secrets" / "relay.pem"
    assert oct(pem.stat().st_mode & 0o777) == "0o600"
    assert relay_cert_lines(first.stdout) == [cert_pin(pem)]
    host, port = node.cfg["relay_host"], node.cfg["relay_port"]
    chat = {"model": node.cfg["model_id"], "messages": [{"role": "user", "content": "hi"}]}
    pin = cert_pin(pem)
    # HAProxy's own health check (1 s apart) may lag the agent's by one round.
    wait_until(
        lambda: (
            relay_request("POST", host, port, "/v1/chat/completions", pin=pin, body=chat)[0] == 200
        ),
        5,
        "a chat completion through the relay",
    )

    second = node.bootstrap(bundle, sha)
    assert second.returncode == 0, second.stdout + second.stderr
    assert phases(second.stdout) == MOCK_PHASES
    assert "already running" in second.stdout
    assert node.healthz()["boot_id"] == health["boot_id"]  # the same agent, untouched
    assert len(agent_processes(installed)) == 1
    assert relay_cert_lines(second.stdout) == relay_cert_lines(first.stdout)  # kept


def test_bootstrap_restarts_the_agent_for_a_new_bundle(node, control_plane, tmp_path):
    sha1, bundle1 = build_bundle(tmp_path / "dist1")
    assert node.bootstrap(bundle1, sha1).returncode == 0
    boot1 = node.healthz()["boot_id"]

    src = tmp_path / "src"
    shutil.copytree(AGENT_DIR / "inventiv_agent", src / "inventiv_agent")
    shutil.copy(AGENT_DIR / "requirements.txt", src / "requirements.txt")
    with (src / "inventiv_agent" / "__init__.py").open("a") as f:
        f.write("# a new build\n")
    sha2, bundle2 = build_bundle(tmp_path / "dist2", src=src)
    assert sha2 != sha1

    run = node.bootstrap(bundle2, sha2)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "restarting" in run.stdout
    assert node.healthz()["boot_id"] != boot1
    assert len(agent_processes(node.install_dir / "config.json")) == 1
    wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: hb["agent"]["bundle_sha256"] == sha2),
        10,
        "a heartbeat from the new bundle",
    )
    assert (node.install_dir / "current").resolve().name == sha2


def test_bootstrap_refuses_a_checksum_mismatch(node, tmp_path):
    sha, bundle = build_bundle(tmp_path / "dist")
    wrong = "0" * 64
    run = node.bootstrap(bundle, wrong)
    assert run.returncode == 3
    lines = run.stdout.splitlines()
    assert f"::error::CHECK_BUNDLE checksum mismatch expected {wrong} got {sha}" in lines
    assert phases(run.stdout) == [("phase", "CHECK_BUNDLE")]  # nothing else was done
    assert not node.install_dir.exists()


def test_bootstrap_reports_an_invalid_config(node, tmp_path):
    sha, bundle = build_bundle(tmp_path / "dist")
    node.config_path.write_text(json.dumps({**node.cfg, "instance_id": "nope"}))
    run = node.bootstrap(bundle, sha)
    assert run.returncode == 1
    errors = [line for line in run.stdout.splitlines() if line.startswith("::error::")]
    assert len(errors) == 1
    assert errors[0].startswith("::error::INSTALL_AGENT ")
    assert "'instance_id' must be a UUID" in errors[0]


def test_bundle_is_deterministic(tmp_path):
    sha1, path1 = build_bundle(tmp_path / "a")
    # Same content, other mtimes: same bytes.
    src = tmp_path / "src"
    shutil.copytree(
        AGENT_DIR / "inventiv_agent",
        src / "inventiv_agent",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(AGENT_DIR / "requirements.txt", src / "requirements.txt")
    for path in (src / "inventiv_agent").iterdir():
        os.utime(path, (1, 1))
    sha2, path2 = build_bundle(tmp_path / "b", src=src)
    assert sha1 == sha2
    assert path1.read_bytes() == path2.read_bytes()
    assert path1.name.startswith("inventiv-agent-") and path1.name.endswith(".tar.gz")
    with tarfile.open(path1) as tar:
        names = tar.getnames()
        assert names == sorted(names)
        assert "inventiv_agent/__main__.py" in names
        assert not any("__pycache__" in n for n in names)
        assert {m.uid for m in tar.getmembers()} == {0}
        info = json.load(tar.extractfile("build-info.json"))
    assert info["build_date"] == "2023-11-14T22:13:20Z"
