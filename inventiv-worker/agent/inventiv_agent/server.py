"""The agent's own HTTP server on agent_host:agent_port. ``/healthz`` is
public (liveness); every other route wants ``Authorization: Bearer <worker
token>`` (deny by default) and answers 401 JSON without it. ``/logs`` also
takes the instance's relay key (its SHA-256 is configured): the control
plane reads the log through the relay (haproxy.AGENT_LOGS_PATH), which
holds the key, never the worker token."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .events import parse_iso8601

if TYPE_CHECKING:
    from .app import Agent

PUBLIC_ROUTES = frozenset({"/healthz"})
# Routes the control plane reaches through the relay, with the relay key.
RELAY_KEY_ROUTES = frozenset({"/logs"})
RELAY_KEY_HEADER = "X-Inventiv-Relay-Key"
DEFAULT_TAIL = 200
MAX_TAIL = 10_000


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], agent: Agent) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.agent = agent
        super().__init__(address, _Handler)


class AgentServer:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        cfg = self.agent.cfg
        assert cfg.agent_host is not None
        self._httpd = _Server((cfg.agent_host, cfg.agent_port), self.agent)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "inventiv-agent"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass  # the event log records what matters; no access log on stderr

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        route = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/info": self._info,
            "/logs": self._logs,
            "/metrics": self._metrics,
        }.get(url.path)
        allowed = (
            url.path in PUBLIC_ROUTES
            or self._authorized()
            or (url.path in RELAY_KEY_ROUTES and self._relay_key_ok())
        )
        if not allowed:
            self._json(
                401,
                _error("unauthorized", "missing or invalid bearer token"),
                {"WWW-Authenticate": "Bearer"},
            )
            return
        if route is None:
            self._json(404, _error("not_found", f"no route {url.path}"))
            return
        route(parse_qs(url.query))

    def do_POST(self) -> None:
        self._json(405, _error("method_not_allowed", "only GET is served"), {"Allow": "GET"})

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        expected = self.server.agent.cfg.worker_token.reveal()
        # compare_digest on both paths: the time does not depend on the token.
        good = hmac.compare_digest(token.strip().encode(), expected.encode())
        return scheme.lower() == "bearer" and good and bool(expected)

    def _relay_key_ok(self) -> bool:
        key = self.headers.get(RELAY_KEY_HEADER, "")
        expected = self.server.agent.cfg.relay_key_sha256
        digest = hashlib.sha256(key.strip().encode()).hexdigest()
        return bool(key.strip()) and bool(expected) and hmac.compare_digest(digest, expected)

    # --- routes -------------------------------------------------------------------

    def _healthz(self, _query: dict[str, list[str]]) -> None:
        agent = self.server.agent
        self._json(200, {"status": "ok", "boot_id": agent.boot_id})

    def _readyz(self, _query: dict[str, list[str]]) -> None:
        agent = self.server.agent
        engines = agent.engines
        backends = []
        for engine in engines.engines:
            ok, reason = engine.probe()
            backends.append({"port": engine.port, "ready": ok, "reason": reason})
        relay_up = engines.relay is not None and engines.relay.running()
        ready = relay_up and any(b["ready"] for b in backends) and not agent.draining
        body = {
            "ready": ready,
            "status": agent.status(),
            "model_id": agent.cfg.model_id,
            "backends": backends,
        }
        self._json(200 if ready else 503, body)

    def _info(self, _query: dict[str, list[str]]) -> None:
        self._json(200, self.server.agent.info())

    def _logs(self, query: dict[str, list[str]]) -> None:
        try:
            tail = int(query.get("tail", [str(DEFAULT_TAIL)])[-1])
            if not 0 <= tail <= MAX_TAIL:
                raise ValueError
        except ValueError:
            self._json(400, _error("bad_request", f"tail must be an integer in 0..{MAX_TAIL}"))
            return
        since = None
        if "since" in query:
            try:
                since = parse_iso8601(query["since"][-1])
            except ValueError:
                self._json(400, _error("bad_request", "since must be an ISO 8601 date-time"))
                return
        events = self.server.agent.events.read(tail=tail, since=since)
        self._json(200, {"events": events})

    def _metrics(self, _query: dict[str, list[str]]) -> None:
        body = render_metrics(self.server.agent).encode()
        self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")

    # --- plumbing -----------------------------------------------------------------

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self._send(status, data, "application/json", headers)

    def _send(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(agent: Agent) -> str:
    """Prometheus text exposition of the agent's own state."""
    info = agent.agent_info()
    engines = agent.engines
    hb = agent.heartbeat
    lines = [
        "# HELP inventiv_agent_info Build of the running agent.",
        "# TYPE inventiv_agent_info gauge",
        f'inventiv_agent_info{{version="{_label(info["version"])}",'
        f'bundle_sha256="{info["bundle_sha256"]}",mode="{agent.cfg.mode}",'
        f'model_id="{_label(agent.cfg.model_id)}"}} 1',
        "# HELP inventiv_agent_uptime_seconds Seconds since the agent started.",
        "# TYPE inventiv_agent_uptime_seconds gauge",
        f"inventiv_agent_uptime_seconds {time.time() - agent.started_at:.3f}",
        "# HELP inventiv_agent_status Current status (1 for the current one).",
        "# TYPE inventiv_agent_status gauge",
    ]
    current = agent.status()
    for status in ("starting", "ready", "draining", "error"):
        lines.append(f'inventiv_agent_status{{status="{status}"}} {int(status == current)}')
    lines += [
        "# HELP inventiv_agent_registered 1 once the control plane accepted the registration.",
        "# TYPE inventiv_agent_registered gauge",
        f"inventiv_agent_registered {int(hb.registered)}",
        "# HELP inventiv_agent_register_failures_total Registrations that failed.",
        "# TYPE inventiv_agent_register_failures_total counter",
        f"inventiv_agent_register_failures_total {hb.register_failures}",
        "# HELP inventiv_agent_heartbeats_total Heartbeats sent, by result.",
        "# TYPE inventiv_agent_heartbeats_total counter",
        f'inventiv_agent_heartbeats_total{{result="ok"}} {hb.heartbeats_ok}',
        f'inventiv_agent_heartbeats_total{{result="failed"}} {hb.heartbeats_failed}',
        "# HELP inventiv_agent_last_heartbeat_timestamp_seconds Unix time of the last heartbeat"
        " accepted.",
        "# TYPE inventiv_agent_last_heartbeat_timestamp_seconds gauge",
        f"inventiv_agent_last_heartbeat_timestamp_seconds {hb.last_ok_at or 0:.3f}",
    ]
    per_engine = (
        (
            "engine_ready",
            "gauge",
            "1 when the engine answers /health and lists the model.",
            lambda e: int(e.ready),
        ),
        (
            "engine_restarts_total",
            "counter",
            "Restarts of the engine after it died.",
            lambda e: e.process.restarts,
        ),
        (
            "engine_requests_running",
            "gauge",
            "Requests the engine is running.",
            lambda e: e.requests_running,
        ),
        (
            "engine_requests_waiting",
            "gauge",
            "Requests waiting in the engine's queue.",
            lambda e: e.requests_waiting,
        ),
    )
    for name, kind, help_text, value in per_engine:
        lines += [
            f"# HELP inventiv_agent_{name} {help_text}",
            f"# TYPE inventiv_agent_{name} {kind}",
        ]
        for e in engines.engines:
            gpu = "" if e.gpu_index is None else str(e.gpu_index)
            lines.append(f'inventiv_agent_{name}{{port="{e.port}",gpu_index="{gpu}"}} {value(e)}')
    # The engine's own token counters as the agent last read them (and
    # heartbeats them): absent until read from the engine running now.
    token_counters = (
        ("prompt", "Prompt tokens the engine processed (its vllm:prompt_tokens_total).", 0),
        ("generation", "Tokens the engine generated (its vllm:generation_tokens_total).", 1),
    )
    for kind, help_text, index in token_counters:
        name = f"inventiv_agent_engine_{kind}_tokens_total"
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        for e in engines.engines:
            tokens = e.current_tokens()
            if tokens is not None:
                gpu = "" if e.gpu_index is None else str(e.gpu_index)
                lines.append(f'{name}{{port="{e.port}",gpu_index="{gpu}"}} {tokens[index]}')
    if engines.relay is not None:
        lines += [
            "# HELP inventiv_agent_haproxy_up 1 while HAProxy (the relay) runs.",
            "# TYPE inventiv_agent_haproxy_up gauge",
            f"inventiv_agent_haproxy_up {int(engines.relay.running())}",
        ]
    return "\n".join(lines) + "\n"
