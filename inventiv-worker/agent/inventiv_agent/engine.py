"""The inference engine(s) the agent supervises: one vLLM (mono mode) or one
per GPU (multi mode), on loopback, behind the relay (HAProxy: TLS and the
relay key). Readiness is GET /health = 200 and /v1/models listing the model;
queue depth and the token counters come from the engine's /metrics."""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import haproxy
from .config import Config, engine_argv, read_hf_token, visible_devices
from .events import EventLog
from .output import OutputFollower
from .supervisor import Supervisor

PROBE_INTERVAL_S = 1.0
PROBE_INTERVAL_LOADING_S = 0.25  # while not ready: report readiness soon after it comes
PROBE_TIMEOUT_S = 2.0
# A live engine is declared not ready after this many failed probes in a row
# (one slow answer under load is no outage); a dead one at once.
PROBE_FALL = 2
LOOPBACK = "127.0.0.1"


def client_host(host: str) -> str:
    """Where to connect to reach a server bound on `host`."""
    return {"0.0.0.0": LOOPBACK, "::": "::1", "": LOOPBACK}.get(host, host)


def http_get(url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[int, bytes]:
    """(status, body); status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http only
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, ValueError):
        return 0, b""


def parse_queue_metrics(text: str) -> tuple[int, int]:
    """(running, waiting) summed over the vllm:num_requests_* series."""
    totals = {"vllm:num_requests_running": 0.0, "vllm:num_requests_waiting": 0.0}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            try:
                totals[name] += float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                continue
    return (
        max(int(totals["vllm:num_requests_running"]), 0),
        max(int(totals["vllm:num_requests_waiting"]), 0),
    )


# The counters the control plane reconciles its metering with.
PROMPT_TOKENS = "vllm:prompt_tokens_total"
GENERATION_TOKENS = "vllm:generation_tokens_total"
# The control plane refuses counters past 2^53 (exact in JSON and in i64).
MAX_TOKEN_COUNTER = 1 << 53


def parse_token_counters(text: str) -> tuple[int, int] | None:
    """(prompt, generation) tokens summed over every series of the two vLLM
    counters; None when the engine exports neither (nothing is made up)."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name not in (PROMPT_TOKENS, GENERATION_TOKENS):
            continue
        try:
            value = float(line.rsplit(" ", 1)[1])
        except (IndexError, ValueError):
            continue
        if not math.isfinite(value) or value < 0:  # not a counter value
            continue
        totals[name] = totals.get(name, 0.0) + value
    if not totals:
        return None

    def bounded(name: str) -> int:
        return min(int(totals.get(name, 0.0)), MAX_TOKEN_COUNTER)

    return bounded(PROMPT_TOKENS), bounded(GENERATION_TOKENS)


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Engine:
    """One supervised engine process and its readiness probe."""

    def __init__(
        self,
        cfg: Config,
        events: EventLog,
        notify: Callable[[], None],
        *,
        port: int,
        host: str,
        gpu_index: int | None,
        tp: int,
    ) -> None:
        self.model_id = cfg.model_id
        self.port = port
        self.gpu_index = gpu_index
        self.base_url = f"http://{url_host(client_host(host))}:{port}"
        self.events = events
        self.notify = notify
        self.hf_token_file = cfg.hf_token_file
        self.ready = False
        self.requests_running = 0
        self.requests_waiting = 0
        # The token counters of the last scrape and the process generation
        # they belong to: a restarted engine counts from zero again.
        self.tokens: tuple[int, int] | None = None
        self.tokens_generation = -1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        env = dict(os.environ)
        # The venv's bin first: the default command is `vllm` installed there.
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        env.update(cfg.engine_env)
        devices = visible_devices(cfg, gpu_index)
        if devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = devices
        labels: dict[str, Any] = {"port": port}
        if gpu_index is not None:
            labels["gpu_index"] = gpu_index
        self.labels = labels
        self.process = Supervisor(
            "engine",
            engine_argv(cfg, port, host, gpu_index, tp),
            env,
            log_dir=Path(cfg.log_dir),
            slug=f"engine-{port}",
            events=events,
            on_exit=self._on_exit,
            labels=labels,
            backoff_initial_s=cfg.engine_backoff_initial_s,
            backoff_max_s=cfg.engine_backoff_max_s,
            stop_grace_s=cfg.engine_stop_grace_s,
        )
        self._probe_thread = threading.Thread(
            target=self._probe_loop, name="engine-probe", daemon=True
        )
        self.output = OutputFollower(self.process.output_path, events, labels)

    def start(self) -> None:
        if self.hf_token_file is not None:
            # Read now, into the engine's environment only (vLLM downloads
            # gated weights with HF_TOKEN); an unreadable file is an OSError
            # naming the path, never the content.
            token = read_hf_token(self.hf_token_file)
            if token:
                self.process.env["HF_TOKEN"] = token
        self.output.start()
        self.process.start()
        self._probe_thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.process.stop()
        self.output.stop()
        self._set_ready(False, "stopped")

    def _on_exit(self) -> None:
        self._set_ready(False, "process exited")
        self.notify()  # at once, even if readiness did not change

    def _set_ready(self, ready: bool, reason: str, generation: int | None = None) -> None:
        with self._lock:
            if generation is not None and generation != self.process.generation:
                return  # the probe raced an exit or a restart: its answer is stale
            if ready == self.ready:
                return
            self.ready = ready
            if not ready:
                self.requests_running = self.requests_waiting = 0
        if ready:
            self.events.emit("engine_ready", **self.labels)
        else:
            self.events.emit("engine_not_ready", **self.labels, reason=reason)
        self.notify()

    def _probe_loop(self) -> None:
        failures = 0
        while not self._stop.wait(PROBE_INTERVAL_S if self.ready else PROBE_INTERVAL_LOADING_S):
            generation = self.process.generation
            if not self.process.running():
                continue  # _on_exit already reported it
            ready, reason = self.probe()
            if ready:
                failures = 0
                self.scrape_metrics()
            else:
                failures += 1
                if self.ready and failures < PROBE_FALL:
                    continue
            if not self._stop.is_set():
                self._set_ready(ready, reason, generation)

    def probe(self) -> tuple[bool, str]:
        status, _ = http_get(self.base_url + "/health")
        if status != 200:
            return False, f"/health answered {status or 'nothing'}"
        status, body = http_get(self.base_url + "/v1/models")
        if status != 200:
            return False, f"/v1/models answered {status or 'nothing'}"
        try:
            ids = {m.get("id") for m in json.loads(body).get("data", [])}
        except (ValueError, AttributeError):
            return False, "/v1/models is not the OpenAI list shape"
        if self.model_id not in ids:
            return False, f"/v1/models does not list {self.model_id}"
        return True, "ok"

    def scrape_metrics(self) -> None:
        generation = self.process.generation
        status, body = http_get(self.base_url + "/metrics")
        if status == 200:
            text = body.decode("utf-8", errors="replace")
            running, waiting = parse_queue_metrics(text)
            tokens = parse_token_counters(text)
            with self._lock:
                self.requests_running, self.requests_waiting = running, waiting
                if tokens is not None:
                    self.tokens, self.tokens_generation = tokens, generation

    def current_tokens(self) -> tuple[int, int] | None:
        """The counters, if scraped from the process running now."""
        with self._lock:
            if self.tokens_generation != self.process.generation:
                return None
            return self.tokens


class EngineSet:
    """Every engine of this node and the relay in front of them, seen as one."""

    def __init__(self, cfg: Config, events: EventLog, notify: Callable[[], None]) -> None:
        self.cfg = cfg
        self.events = events
        self.notify = notify
        self.engines: list[Engine] = []
        self.relay: Supervisor | None = None
        if cfg.mode == "multi":
            for i, port in enumerate(cfg.engine_ports):
                self.engines.append(
                    Engine(
                        cfg,
                        events,
                        self._notify,
                        port=port,
                        host=cfg.engine_host,
                        gpu_index=i,
                        tp=1,
                    )
                )
        else:
            tp = cfg.tensor_parallel_size or 1
            self.engines.append(
                Engine(
                    cfg,
                    events,
                    self._notify,
                    port=cfg.engine_ports[0],
                    host=cfg.engine_host,
                    gpu_index=None,
                    tp=tp,
                )
            )

    def _notify(self) -> None:
        self.notify()

    @property
    def processes(self) -> list[Supervisor]:
        return [e.process for e in self.engines] + ([self.relay] if self.relay else [])

    def failed(self) -> bool:
        """Some process died or could not start since the agent started."""
        return any(p.failures for p in self.processes)

    def start(self) -> None:
        self._start_relay()
        for engine in self.engines:
            engine.start()

    def _start_relay(self) -> None:
        cfg = self.cfg
        assert cfg.relay_host is not None and cfg.relay_cert_file is not None
        path = Path(cfg.log_dir) / "haproxy.cfg"
        haproxy.write_config(
            path,
            haproxy.render_config(
                cfg.relay_host,
                cfg.relay_port,
                cfg.relay_cert_file,
                cfg.relay_key_sha256,
                [(cfg.engine_host, e.port) for e in self.engines],
                agent=(_connectable(cfg.agent_host), cfg.agent_port),
            ),
        )
        error = haproxy.check_config(cfg.haproxy_bin, path)
        if error is not None:
            self.events.emit("haproxy_config_invalid", path=str(path), error=error)
        self.relay = Supervisor(
            "haproxy",
            haproxy.argv(cfg.haproxy_bin, path),
            dict(os.environ),
            log_dir=Path(cfg.log_dir),
            slug="haproxy",
            events=self.events,
            on_exit=self._notify,
            on_start=self._notify,
            labels={"port": cfg.relay_port},
            backoff_initial_s=cfg.engine_backoff_initial_s,
            backoff_max_s=cfg.engine_backoff_max_s,
            stop_grace_s=5.0,
        )
        self.relay.start()

    def stop(self) -> None:
        threads = [threading.Thread(target=e.stop) for e in self.engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self.relay is not None:
            self.relay.stop()

    @property
    def ready(self) -> bool:
        """The relay runs and serves at least one ready engine (mono: the one)."""
        return (
            self.relay is not None and self.relay.running() and any(e.ready for e in self.engines)
        )

    def idle(self) -> bool:
        return all(e.requests_running + e.requests_waiting == 0 for e in self.engines)

    def load(self) -> tuple[int, int]:
        """(running, waiting) requests over every engine, scraped now from the
        ready ones rather than taken from their last probe (up to
        PROBE_INTERVAL_S old). An engine that is not ready serves nothing."""
        for engine in self.engines:
            if engine.ready:
                engine.scrape_metrics()
        return (
            sum(e.requests_running for e in self.engines),
            sum(e.requests_waiting for e in self.engines),
        )

    def tokens(self) -> tuple[int, int] | None:
        """The token counters summed over the engines, only when every engine
        has been scraped since it last (re)started: a partial sum would look
        like a counter going down. The heartbeat's boot id and restart count
        tell the control plane when a new series begins."""
        counters = [e.current_tokens() for e in self.engines]
        if any(c is None for c in counters):
            return None
        present = [c for c in counters if c is not None]
        return (
            min(sum(c[0] for c in present), MAX_TOKEN_COUNTER),
            min(sum(c[1] for c in present), MAX_TOKEN_COUNTER),
        )

    def snapshot(self) -> dict[str, Any]:
        """The `engine` object of a heartbeat."""
        last = max(self.engines, key=lambda e: e.process.last_exit_at)
        out: dict[str, Any] = {
            "ready": self.ready,
            "requests_running": sum(e.requests_running for e in self.engines),
            "requests_waiting": sum(e.requests_waiting for e in self.engines),
            "restarts": sum(e.process.restarts for e in self.engines),
            "last_exit_code": last.process.last_exit_code,
        }
        tokens = self.tokens()
        if tokens is not None:
            out["tokens"] = {"prompt_total": tokens[0], "generation_total": tokens[1]}
        if self.cfg.mode == "multi":
            out["backends"] = [
                {"port": e.port, "gpu_index": e.gpu_index, "ready": e.ready} for e in self.engines
            ]
        return out


def _connectable(host: str | None) -> str:
    """Where to connect to a server bound to `host`: a wildcard address is
    reached on loopback."""
    return {None: "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host or "127.0.0.1")
