"""The agent assembled: configuration + event log + engines + heartbeats +
dead-man switch + HTTP server, its status, the payloads it sends, and the drain on shutdown.
``__main__`` and the tests build it the same way, through :class:`Agent`."""

from __future__ import annotations

import time
import uuid
from typing import Any

from . import AGENT_VERSION, scaleway_poweroff
from .config import Config
from .deadman import LAST_CALL_TIMEOUT_S, DeadManSwitch
from .engine import EngineSet
from .events import EventLog, utc_now_iso
from .heartbeat import ControlPlaneClient, HeartbeatLoop
from .samples import SystemSampler, gpu_samples
from .server import AgentServer
from .version import build_date, bundle_sha256

SCHEMA_VERSION = 2
DRAIN_POLL_S = 0.5
DRAIN_REQUEST_TIMEOUT_S = 3.0


class Agent:
    def __init__(self, cfg: Config, events: EventLog | None = None) -> None:
        self.cfg = cfg
        self.boot_id = uuid.uuid4().hex
        self.started_at = time.time()
        self.events = events or EventLog(cfg.log_dir)
        self.draining = False
        self.system = SystemSampler(cfg.data_dir)
        self.engines = EngineSet(cfg, self.events, notify=self._changed)
        self.heartbeat = HeartbeatLoop(
            ControlPlaneClient(cfg.control_plane_url, cfg.worker_token.reveal()),
            self.events,
            cfg.heartbeat_interval_s,
            build_register=self.register_payload,
            build_heartbeat=self.heartbeat_payload,
        )
        self.dead_man: DeadManSwitch | None = None
        if cfg.dead_man_enabled:
            self.dead_man = DeadManSwitch(
                cfg.dead_man_after_s,
                cfg.dead_man_command,
                self.events,
                last_contact=lambda: self.heartbeat.last_contact,
                load=self.engines.load,
                last_call=lambda: self.heartbeat.send_once(timeout=LAST_CALL_TIMEOUT_S),
                power_off=self._scaleway_power_off if self._uses_scaleway_api else None,
            )
        self.server = AgentServer(self)

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Serve first (bootstrap waits on /healthz), then engines and heartbeats."""
        self.server.start()
        self.events.emit(
            "agent_started",
            version=AGENT_VERSION,
            bundle_sha256=bundle_sha256(),
            boot_id=self.boot_id,
            mode=self.cfg.mode,
            model_id=self.cfg.model_id,
            agent=f"{self.cfg.agent_host}:{self.cfg.agent_port}",
            relay=f"{self.cfg.relay_host}:{self.cfg.relay_port}",
            engine_ports=self.cfg.engine_ports,
            dead_man_after_s=self.cfg.dead_man_after_s if self.dead_man else None,
            dead_man_action=self.cfg.dead_man_action if self.dead_man else "off",
        )
        self.engines.start()
        self.heartbeat.start()
        if self.dead_man is not None:
            if self._uses_scaleway_api:
                self._check_scaleway_key()
            self.dead_man.start()

    def drain(self) -> None:
        """Tell the control plane (status draining), let in-flight requests
        finish (up to drain_timeout_s), stop the engines, stop serving."""
        self.draining = True
        self.events.emit("draining", drain_timeout_s=self.cfg.drain_timeout_s)
        if self.dead_man is not None:
            self.dead_man.stop()  # the agent is leaving anyway
        self.heartbeat.stop()
        # Short timeouts: a control plane that is down must not hold the node.
        self.heartbeat.client.timeout = DRAIN_REQUEST_TIMEOUT_S
        if not self.heartbeat.registered:
            self.heartbeat.send_once()
        if self.heartbeat.registered and not self.heartbeat.send_once():
            self.heartbeat.send_once()
        deadline = time.monotonic() + self.cfg.drain_timeout_s
        while not self.engines.idle() and time.monotonic() < deadline:
            time.sleep(DRAIN_POLL_S)
        self.engines.stop()
        if self.heartbeat.registered:
            self.heartbeat.send_once()  # engine.ready false, still draining
        self.server.stop()
        self.events.emit("agent_stopped", boot_id=self.boot_id)

    @property
    def _uses_scaleway_api(self) -> bool:
        return self.cfg.dead_man_action == "scaleway-poweroff"

    def _scaleway_power_off(self) -> bool:
        assert self.cfg.dead_man_key_file is not None
        return scaleway_poweroff.power_off(
            self.cfg.dead_man_metadata_url,
            self.cfg.dead_man_api_url,
            self.cfg.dead_man_key_file,
            self.events,
        )

    def _check_scaleway_key(self) -> None:
        """Said at start rather than only when it fires, 30 minutes too late."""
        assert self.cfg.dead_man_key_file is not None
        problem = scaleway_poweroff.key_problem(self.cfg.dead_man_key_file)
        if problem is not None:
            self.events.emit(
                "dead_man_key_refused",
                key_file=self.cfg.dead_man_key_file,
                reason=problem,
                fallback=self.cfg.dead_man_command[0],
            )

    def _changed(self) -> None:
        self.heartbeat.wake()

    # --- state --------------------------------------------------------------------

    def status(self) -> str:
        if self.draining:
            return "draining"
        if self.engines.ready:
            return "ready"
        return "error" if self.engines.failed() else "starting"

    def agent_info(self) -> dict[str, str]:
        return {"version": AGENT_VERSION, "bundle_sha256": bundle_sha256()}

    def register_payload(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "schema_version": SCHEMA_VERSION,
            "instance_id": cfg.instance_id,
            "boot_id": self.boot_id,
            "agent": self.agent_info(),
            "model_id": cfg.model_id,
            "mode": cfg.mode,
            "gpu_count": cfg.gpu_count,
            "agent_port": cfg.agent_port,
            "engine_port": cfg.relay_port,
        }

    def heartbeat_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "instance_id": self.cfg.instance_id,
            "boot_id": self.boot_id,
            "agent": self.agent_info(),
            "status": self.status(),
            "model_id": self.cfg.model_id,
            "engine": self.engines.snapshot(),
        }
        gpus = gpu_samples()
        if gpus is not None:
            payload["gpus"] = gpus[:16]
        system = self.system.sample()
        if system:
            payload["system"] = system
        payload["sent_at"] = utc_now_iso()
        return payload

    def info(self) -> dict[str, Any]:
        return {
            **self.agent_info(),
            "build_date": build_date(),
            "boot_id": self.boot_id,
            "instance_id": self.cfg.instance_id,
            "model_id": self.cfg.model_id,
            "mode": self.cfg.mode,
            "status": self.status(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "agent_port": self.cfg.agent_port,
            "engine_port": self.cfg.relay_port,
        }
