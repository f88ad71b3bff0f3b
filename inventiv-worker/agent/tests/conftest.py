"""Fixtures: the real mock engine binary, HAProxy, a fake control plane and
agents as processes; every process a test starts is stopped after it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO_ROOT, AgentProcess, FakeControlPlane, Ports, agent_config
from test_bootstrap import Node

MOCK_ENGINE_ENV = "INVENTIV_MOCK_ENGINE"


@pytest.fixture(scope="session")
def mock_engine_bin() -> Path:
    """The Rust mock engine: $INVENTIV_MOCK_ENGINE, else target/debug, built if missing."""
    configured = os.environ.get(MOCK_ENGINE_ENV)
    if configured:
        path = Path(configured)
        if not os.access(path, os.X_OK):
            pytest.fail(f"{MOCK_ENGINE_ENV}={configured} is not an executable")
        return path
    path = REPO_ROOT / "target" / "debug" / "inventiv-mock-engine"
    if not path.exists():
        cargo = shutil.which("cargo")
        if cargo is None:
            pytest.fail(f"{path} is missing and cargo is not installed to build it")
        build = subprocess.run(
            [cargo, "build", "-p", "inventiv-mock-engine"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if build.returncode != 0 or not path.exists():
            pytest.fail(f"cargo build -p inventiv-mock-engine failed:\n{build.stderr[-4000:]}")
    return path


@pytest.fixture(scope="session")
def haproxy_bin() -> str:
    """HAProxy (Debian package `haproxy`), installed with apt-get when missing and root."""
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None
    )
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail("haproxy is missing: sudo apt-get install -y haproxy")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "haproxy"],
    ):
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    return found


@pytest.fixture
def control_plane() -> Iterator[FakeControlPlane]:
    plane = FakeControlPlane()
    yield plane
    plane.close()


@pytest.fixture
def ports() -> Iterator[Ports]:
    """Ports for the test's processes, held by the test until it ends."""
    held = Ports()
    yield held
    held.close()


@pytest.fixture
def start_agent(
    tmp_path: Path,
    control_plane: FakeControlPlane,
    mock_engine_bin: Path,
    haproxy_bin: str,
    ports: Ports,
) -> Iterator[Callable[..., AgentProcess]]:
    """start_agent(**config_overrides) -> a running, healthy AgentProcess."""
    started: list[AgentProcess] = []

    def start(**overrides: Any) -> AgentProcess:
        work = tmp_path / f"agent{len(started)}"
        work.mkdir()
        overrides.setdefault("haproxy_bin", haproxy_bin)
        cfg = agent_config(work, control_plane, mock_engine_bin, ports, **overrides)
        agent = AgentProcess(work, cfg)
        started.append(agent)
        agent.wait_healthy()
        return agent

    yield start
    for agent in started:
        agent.stop()  # SIGTERM: the agent stops (and reaps) its children; SIGKILL after


@pytest.fixture
def node(
    tmp_path: Path,
    control_plane: FakeControlPlane,
    mock_engine_bin: Path,
    haproxy_bin: str,
    ports: Ports,
) -> Iterator[Node]:
    """A temporary VM for bootstrap.sh; what it started is stopped after the test."""
    n = Node(tmp_path, control_plane, mock_engine_bin, haproxy_bin, ports)
    yield n
    n.stop()


@pytest.fixture(scope="module")
def running_agent(
    tmp_path_factory: pytest.TempPathFactory, mock_engine_bin: Path, haproxy_bin: str
) -> Iterator[AgentProcess]:
    """One agent shared by the read-only tests of a module."""
    plane = FakeControlPlane()
    ports = Ports()
    work = tmp_path_factory.mktemp("shared-agent")
    cfg = agent_config(work, plane, mock_engine_bin, ports, haproxy_bin=haproxy_bin)
    agent = AgentProcess(work, cfg)
    try:
        agent.wait_healthy()
        yield agent
    finally:
        agent.stop()
        plane.close()
        ports.close()
