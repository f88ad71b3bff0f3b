"""Test helpers: deadlines, ports, a fake control plane, an agent process."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPSConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import jsonschema

AGENT_DIR = Path(__file__).resolve().parents[1]
WORKER_DIR = AGENT_DIR.parent
REPO_ROOT = WORKER_DIR.parent
SCHEMA_DIR = WORKER_DIR / "schema"
MODEL = "mock/tiny-model"
TOKEN = "wt_" + "a1b2c3" * 6
RELAY_KEY = "rk_" + "d4e5f6" * 7
RELAY_KEY_SHA256 = hashlib.sha256(RELAY_KEY.encode()).hexdigest()

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None], timeout: float, message: str = "", interval: float = 0.05
) -> T:
    """Poll `predicate` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


class Ports:
    """Ports the kernel chose, held until close().

    Each port is bound here without SO_REUSEADDR (so the bind is exclusive),
    then marked SO_REUSEADDR and kept bound, never listening. While held, the
    kernel gives the port to no other bind(0) or outgoing connection, so two
    ports taken from here, or from here and by anyone else, never collide;
    the agent, HAProxy and the mock engine, which all bind with SO_REUSEADDR,
    can still listen on it. (Picking a port, closing it and handing its number
    on let the kernel return the same port twice: "engine port ... collides
    with 'agent_port'".)
    """

    def __init__(self) -> None:
        self._held: list[socket.socket] = []

    def _hold(self, host: str, port: int) -> int:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        except OSError:
            s.close()
            raise
        self._held.append(s)
        return int(s.getsockname()[1])

    def take(self, host: str = "127.0.0.1") -> int:
        """A port on `host` nobody else holds."""
        return self._hold(host, 0)

    def take_range(self, count: int, host: str = "127.0.0.1") -> int:
        """The first of `count` consecutive ports on `host`, all held."""
        for _ in range(200):
            base = self.take(host)
            if base + count - 1 > 65535:
                continue
            mark = len(self._held)
            try:
                for i in range(1, count):
                    self._hold(host, base + i)
            except OSError:
                for s in self._held[mark:]:
                    s.close()
                del self._held[mark:]
                continue
            return base
        raise RuntimeError(f"no {count} consecutive free ports on {host}")

    def close(self) -> None:
        for s in self._held:
            s.close()
        self._held.clear()


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / name).read_text())
    cls = jsonschema.Draft202012Validator
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def http(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def make_relay_cert(directory: Path) -> tuple[Path, str]:
    """A self-signed certificate and its key in one PEM, made as bootstrap.sh
    makes it: (path, hex SHA-256 of the DER certificate, the pin)."""
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / "relay.key", directory / "relay.crt"
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ),
            *("-nodes", "-days", "3650", "-subj", "/CN=inventiv-node"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    pem = directory / "relay.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    pem.chmod(0o600)
    key.unlink()
    return pem, cert_pin(pem)


@functools.cache
def relay_settings() -> dict[str, str]:
    """The relay keys of a valid configuration, for tests that only load one
    (the certificate is made once per test session)."""
    pem, _ = make_relay_cert(Path(tempfile.mkdtemp(prefix="inventiv-agent-relay-")))
    return {"relay_key_sha256": RELAY_KEY_SHA256, "relay_cert_file": str(pem)}


def cert_pin(pem: Path) -> str:
    """The hex SHA-256 of the DER form of the first certificate in `pem`."""
    text = pem.read_text()
    end = "-----END CERTIFICATE-----"
    first = text[text.index("-----BEGIN CERTIFICATE-----") : text.index(end) + len(end)]
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest()


class PinMismatch(AssertionError):
    """The relay presented another certificate than the pinned one."""


def relay_request(
    method: str,
    host: str,
    port: int,
    path: str,
    *,
    pin: str,
    key: str | None = RELAY_KEY,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> tuple[int, bytes]:
    """What the control plane's proxy does: TLS to the relay, accepting only
    the certificate whose SHA-256 is `pin`, the relay key in its header."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the pin below is the whole check
    conn = HTTPSConnection(host, port, context=ctx, timeout=timeout)
    try:
        conn.connect()
        assert conn.sock is not None
        der = conn.sock.getpeercert(binary_form=True) or b""
        if hashlib.sha256(der).hexdigest() != pin:
            raise PinMismatch(f"the relay at {host}:{port} presented another certificate")
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["X-Inventiv-Relay-Key"] = key
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=all_headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get_json(url: str, token: str | None = None) -> tuple[int, Any]:
    status, body = http("GET", url, token=token)
    return status, json.loads(body) if body else None


def counter(metrics_text: str, name: str) -> float:
    """Sum of every series of a Prometheus metric."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- fake control plane ------------------------------------------------------------


@dataclass
class Received:
    path: str
    authorization: str | None
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class FakeControlPlane:
    """Records register/heartbeat POSTs; 401 on a wrong bearer token; can be
    told to fail the next N requests (503 unless fail_status says otherwise;
    a 429 says Retry-After: 1, as the API's minimum heartbeat interval does)."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.received: list[Received] = []
        self.rejected: list[Received] = []
        self.fail_next = 0
        self.fail_status = 503
        self.lock = threading.Lock()
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"_raw": raw.decode(errors="replace")}
                rec = Received(self.path, self.headers.get("Authorization"), body)
                with plane.lock:
                    if rec.authorization != f"Bearer {plane.token}":
                        plane.rejected.append(rec)
                        return self._answer(401, {"error": "unauthorized"})
                    if self.path not in (
                        "/internal/workers/register",
                        "/internal/workers/heartbeat",
                    ):
                        return self._answer(404, {"error": "not found"})
                    if plane.fail_next > 0:
                        plane.fail_next -= 1
                        plane.rejected.append(rec)
                        return self._answer(plane.fail_status, {"error": "failing on purpose"})
                    plane.received.append(rec)
                return self._answer(200, {"status": "accepted"})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _bodies(self, suffix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r.body for r in self.received if r.path.endswith(suffix)]

    def registers(self) -> list[dict[str, Any]]:
        return self._bodies("/register")

    def heartbeats(self) -> list[dict[str, Any]]:
        return self._bodies("/heartbeat")

    def heartbeat_where(self, pred: Callable[[dict[str, Any]], bool], after: int = 0) -> Any:
        """The first heartbeat (from index `after`) matching `pred`, else None."""
        for hb in self.heartbeats()[after:]:
            if pred(hb):
                return hb
        return None


# --- the agent as a process ----------------------------------------------------------


def agent_config(
    tmp: Path,
    control_plane: FakeControlPlane,
    engine_bin: Path,
    ports: Ports,
    **overrides: Any,
) -> dict[str, Any]:
    engine_port = overrides.pop("engine_port", None) or ports.take()
    cert, _ = make_relay_cert(tmp / "secrets")
    cfg: dict[str, Any] = {
        "control_plane_url": control_plane.url,
        "instance_id": str(uuid.uuid4()),
        "worker_token": control_plane.token,
        "model_id": MODEL,
        "relay_key_sha256": RELAY_KEY_SHA256,
        "relay_cert_file": str(cert),
        "relay_host": "127.0.0.1",
        "relay_port": ports.take(),
        "engine_command": mock_engine_command(engine_bin),
        "engine_host": "127.0.0.1",
        "engine_port": engine_port,
        "agent_host": "127.0.0.1",
        "agent_port": ports.take(),
        "heartbeat_interval_s": 0.5,
        "log_dir": str(tmp / "logs"),
        "data_dir": str(tmp),
        "engine_backoff_initial_s": 0.5,
        "engine_stop_grace_s": 5,
        "drain_timeout_s": 5,
    }
    cfg.update(overrides)
    return cfg


def mock_engine_command(engine_bin: Path, load_delay_ms: int = 200) -> list[str]:
    return [
        str(engine_bin),
        "--host",
        "{host}",
        "--port",
        "{port}",
        "--model",
        "{model}",
        "--load-delay-ms",
        str(load_delay_ms),
        "--ttft-ms",
        "0",
        "--tokens-per-second",
        "0",
        "--seed",
        "7",
        "--workers",
        "1",
    ]


class AgentProcess:
    """`python -m inventiv_agent` on a config written to `tmp`; stop() or
    kill() end it, and kill() also ends every engine it left behind."""

    def __init__(self, tmp: Path, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.tmp = tmp
        self.log_dir = Path(cfg["log_dir"])
        self.config_path = tmp / "agent.json"
        self.config_path.write_text(json.dumps(cfg))
        self.output = (tmp / "agent.out").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTIV_AGENT_")}
        env["PYTHONPATH"] = str(AGENT_DIR)
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inventiv_agent", "--config", str(self.config_path)],
            env=env,
            cwd=tmp,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.base = f"http://{cfg['agent_host']}:{cfg['agent_port']}"
        self.token = cfg["worker_token"]
        self.relay_pin = cert_pin(Path(cfg["relay_cert_file"]))

    def relay(self, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
        """A request through the relay, as the control plane makes it."""
        host, port = self.cfg["relay_host"], self.cfg["relay_port"]
        return relay_request(method, host, port, path, pin=self.relay_pin, **kwargs)

    def wait_healthy(self, timeout: float = 10) -> None:
        def healthy() -> bool:
            assert self.proc.poll() is None, f"agent exited: {self.output_text()}"
            with contextlib.suppress(OSError):
                return http("GET", self.base + "/healthz", timeout=1)[0] == 200
            return False

        wait_until(healthy, timeout, "agent /healthz")

    def get(self, path: str, token: str | None = "default") -> tuple[int, Any]:
        return get_json(self.base + path, self.token if token == "default" else token)

    def get_raw(self, path: str) -> tuple[int, bytes]:
        return http("GET", self.base + path, token=self.token)

    def engine_pid(self, port: int) -> int | None:
        try:
            pid = int((self.log_dir / f"engine-{port}.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def events(self) -> list[dict[str, Any]]:
        path = self.log_dir / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def output_text(self) -> str:
        self.output.flush()
        return (self.tmp / "agent.out").read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self.kill()

    def kill(self) -> None:
        """Leave nothing running: the agent's group and every child group.
        Safe to call more than once."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for pidfile in self.log_dir.glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                pid = int(pidfile.read_text().strip())
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"mock-engine" in cmdline or b"haproxy" in cmdline:
                    os.killpg(pid, signal.SIGKILL)
        if not self.output.closed:
            self.output.close()


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


# --- the dead-man switch ---------------------------------------------------------------

# Appends one line to the file named by its argument: a firing leaves a trace
# per run, so a second firing would show.
MARK = "import sys; open(sys.argv[1], 'a').write('fired\\n')"
FOREVER = 10**9  # FakeControlPlane.fail_next: every request fails from now on


def mark_command(marker: Path) -> list[str]:
    """A stand-in for `shutdown -h now` that leaves a mark in `marker`."""
    return [sys.executable, "-c", MARK, str(marker)]


def firings(marker: Path) -> int:
    return marker.read_text().count("fired\n") if marker.exists() else 0


def dead_man_events(agent_events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in agent_events if e["event"].startswith("dead_man_")]


def wait_event(agent: AgentProcess, name: str, timeout: float) -> dict[str, Any]:
    return wait_until(
        lambda: next((e for e in agent.events() if e["event"] == name), None),
        timeout,
        f"event {name}",
    )


def wait_ready(control_plane: FakeControlPlane) -> None:
    wait_until(
        lambda: control_plane.heartbeat_where(lambda hb: hb["engine"]["ready"]),
        15,
        "a heartbeat with the engine ready",
    )
