"""Agent configuration: a JSON file (``--config`` or ``INVENTIV_AGENT_CONFIG``)
whose every key can be overridden by ``INVENTIV_AGENT_<KEY>`` in the
environment, validated once into a frozen :class:`Config`."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import shlex
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_CONFIG_PATH = "INVENTIV_AGENT_CONFIG"
ENV_PREFIX = "INVENTIV_AGENT_"

DEFAULT_ENGINE_COMMAND: tuple[str, ...] = (
    "vllm",
    "serve",
    "{model}",
    "--port",
    "{port}",
    "--host",
    "{host}",
    "--tensor-parallel-size",
    "{tp}",
    # Cached prompt tokens in usage (prefix caching is on by default): the
    # control plane prices them at their own rate.
    "--enable-prompt-tokens-details",
)
DEFAULT_DEAD_MAN_COMMAND: tuple[str, ...] = ("shutdown", "-h", "now")
DEAD_MAN_ACTIONS = ("off", "shutdown", "scaleway-poweroff")
DEFAULT_DEAD_MAN_METADATA_URL = "http://169.254.42.42/conf?format=json"
DEFAULT_DEAD_MAN_API_URL = "https://api.scaleway.com"
# Under the directory of the config file (bootstrap.sh's install dir).
DEFAULT_DEAD_MAN_KEY_FILE = "secrets/scaleway_poweroff_key"
# Placeholders an engine_command may use; anything else in braces is a typo.
# Under the directory of the config file: the relay's certificate and private
# key in one PEM (HAProxy's `crt`), made by bootstrap.sh on the node.
DEFAULT_RELAY_CERT_FILE = "secrets/relay.pem"
PLACEHOLDERS = ("model", "port", "host", "tp", "gpu")
MAX_ENGINES = 16


class ConfigError(ValueError):
    """The configuration is unusable; the message lists every problem."""


class Secret:
    """A string that never shows up in repr(), logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Config:
    control_plane_url: str
    instance_id: str
    worker_token: Secret
    model_id: str
    # SHA-256 (hex) of the relay key the control plane's proxy sends in
    # X-Inventiv-Relay-Key; the key itself never reaches the node.
    relay_key_sha256: str = ""
    engine_command: tuple[str, ...] = DEFAULT_ENGINE_COMMAND
    # Where the engines bind: a loopback address only, so that nothing but
    # the relay on this host reaches them.
    engine_host: str = "127.0.0.1"
    # None = relay_port + 1.
    engine_port: int | None = None
    # The relay (HAProxy, TLS + relay key) serving the OpenAI API. None = the
    # instance's own address (see own_address), never 0.0.0.0 by default.
    relay_host: str | None = None
    relay_port: int = 8000
    # None = DEFAULT_RELAY_CERT_FILE beside the config file.
    relay_cert_file: str | None = None
    agent_host: str | None = None
    agent_port: int = 8090
    mode: str = "mono"
    gpu_count: int = 1
    # The GPUs this worker may use (nvidia-smi indices), on a machine it
    # shares with other workers (an own host of the `ssh` provider): mono
    # mode sees all of them, multi mode runs engine i on the i-th. Empty =
    # every GPU of the machine (CUDA_VISIBLE_DEVICES left alone in mono).
    gpu_devices: tuple[int, ...] = ()
    # None = gpu_count (mono); always 1 per engine in multi mode.
    tensor_parallel_size: int | None = None
    heartbeat_interval_s: float = 5.0
    log_dir: str = "/var/log/inventiv-agent"
    data_dir: str = "/"
    haproxy_bin: str = "haproxy"
    engine_env: Mapping[str, str] = field(default_factory=dict)
    # A file (mode 600) holding the organization's Hugging Face token, written
    # by the orchestrator for gated models; read at engine start into the
    # engine's HF_TOKEN, never into this config, a log or a heartbeat.
    hf_token_file: str | None = None
    engine_stop_grace_s: float = 20.0
    engine_backoff_initial_s: float = 1.0
    engine_backoff_max_s: float = 60.0
    drain_timeout_s: float = 30.0
    # The dead-man switch (deadman.py). "off" by default: on the mock provider
    # the agent runs on the developer's own machine. The orchestrator asks for
    # "shutdown" on cloud nodes, or "scaleway-poweroff" (scaleway_poweroff.py:
    # through Scaleway's API, then dead_man_command if that fails).
    dead_man_after_s: float = 1800.0
    dead_man_action: str = "off"
    dead_man_command: tuple[str, ...] = DEFAULT_DEAD_MAN_COMMAND
    dead_man_metadata_url: str = DEFAULT_DEAD_MAN_METADATA_URL
    dead_man_api_url: str = DEFAULT_DEAD_MAN_API_URL
    # None = DEFAULT_DEAD_MAN_KEY_FILE beside the config file (after resolve(),
    # always an absolute path). The file itself holds the organization's
    # Scaleway secret key; only its path is configuration.
    dead_man_key_file: str | None = None

    # --- derived values (after resolve(), never None) ---------------------------

    @property
    def dead_man_enabled(self) -> bool:
        return self.dead_man_action != "off" and self.dead_man_after_s > 0

    @property
    def engine_ports(self) -> list[int]:
        assert self.engine_port is not None
        n = self.gpu_count if self.mode == "multi" else 1
        return [self.engine_port + i for i in range(n)]

    def redacted(self) -> dict[str, Any]:
        """The configuration as JSON-able data, token hidden."""
        out = dataclasses.asdict(self)
        out["worker_token"] = "***"  # noqa: S105 - the redaction marker
        out["engine_command"] = list(self.engine_command)
        out["engine_env"] = dict(self.engine_env)
        out["dead_man_command"] = list(self.dead_man_command)
        return out


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_INT_KEYS = {"engine_port", "agent_port", "gpu_count", "tensor_parallel_size", "relay_port"}
# Must be > 0; dead_man_after_s is a number too, but 0 means "disabled".
_FLOAT_KEYS = {
    "heartbeat_interval_s",
    "engine_stop_grace_s",
    "engine_backoff_initial_s",
    "engine_backoff_max_s",
    "drain_timeout_s",
}
# Lists of strings, given in the environment as a JSON array or a shell-quoted string.
_ARGV_KEYS = {"engine_command", "dead_man_command"}
_REQUIRED = ("control_plane_url", "instance_id", "worker_token", "model_id", "relay_key_sha256")


def load(path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the file (if any), apply the environment overrides, validate."""
    env = os.environ if environ is None else environ
    path = path or env.get(ENV_CONFIG_PATH)
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
        except json.JSONDecodeError as e:
            raise ConfigError(f"config file {path} is not valid JSON: {e}") from e
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path} must hold a JSON object")
    errors: list[str] = []
    for key in sorted(set(raw) - set(_FIELDS)):
        errors.append(f"unknown key '{key}'")
    for name in _FIELDS:
        value = env.get(ENV_PREFIX + name.upper())
        if value is not None:
            raw[name] = _from_env(name, value, errors)
    base_dir = str(Path(path).resolve().parent) if path else None
    return from_mapping({k: v for k, v in raw.items() if k in _FIELDS}, errors, base_dir)


def _from_env(name: str, value: str, errors: list[str]) -> Any:
    if name in _ARGV_KEYS:
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                errors.append(f"{ENV_PREFIX}{name.upper()} is not a JSON array")
                return None
        return shlex.split(value)
    if name == "engine_env":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            errors.append(f"{ENV_PREFIX}ENGINE_ENV is not a JSON object")
            return None
    return value  # converted and checked by from_mapping like the file's values


def from_mapping(
    raw: Mapping[str, Any], errors: list[str] | None = None, base_dir: str | None = None
) -> Config:
    """`base_dir`: where relative defaults live (the config file's directory;
    the working directory when None)."""
    errors = [] if errors is None else errors
    values: dict[str, Any] = {}
    for name in _REQUIRED:
        if raw.get(name) in (None, ""):
            errors.append(f"'{name}' is required")
    for name, value in raw.items():
        converted = value
        if name in _INT_KEYS and value is not None:
            converted = _as_number(name, value, int, errors)
        elif name in _FLOAT_KEYS | {"dead_man_after_s"} and value is not None:
            converted = _as_number(name, value, float, errors)
        if converted is not None:
            values[name] = converted
    if errors:
        raise ConfigError(_message(errors))
    cfg = _build(values, errors, base_dir or os.getcwd())
    if errors:
        raise ConfigError(_message(errors))
    return cfg


def _message(errors: list[str]) -> str:
    return "invalid agent configuration: " + "; ".join(errors)


def _as_number(name: str, value: Any, kind: type, errors: list[str]) -> Any:
    if isinstance(value, bool):
        errors.append(f"'{name}' must be a number, got {value!r}")
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        errors.append(f"'{name}' must be {'an integer' if kind is int else 'a number'}")
        return None
    if kind is int and isinstance(value, float) and value != number:
        errors.append(f"'{name}' must be an integer, got {value!r}")
        return None
    return number


def _build(v: dict[str, Any], errors: list[str], base_dir: str) -> Config:
    url = str(v["control_plane_url"]).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors.append(f"'control_plane_url' must be an http(s) URL, got {url!r}")
    try:
        instance_id = str(uuid.UUID(str(v["instance_id"])))
    except ValueError:
        errors.append("'instance_id' must be a UUID")
        instance_id = str(v["instance_id"])
    token = v["worker_token"]
    if not isinstance(token, str) or any(c.isspace() for c in token):
        errors.append("'worker_token' must be a string without spaces")
        token = ""
    model_id = str(v["model_id"])
    if len(model_id) > 200:
        errors.append("'model_id' is longer than 200 characters")

    command = _engine_command(v.get("engine_command", DEFAULT_ENGINE_COMMAND), errors)
    mode = v.get("mode", "mono")
    if mode not in ("mono", "multi"):
        errors.append(f"'mode' must be 'mono' or 'multi', got {mode!r}")
    gpu_count = v.get("gpu_count", 1)
    low = 1 if mode == "multi" else 0
    if not low <= gpu_count <= MAX_ENGINES:
        errors.append(f"'gpu_count' must be between {low} and {MAX_ENGINES} in {mode} mode")
    tp = v.get("tensor_parallel_size")
    if tp is None:
        tp = 1 if mode == "multi" else max(gpu_count, 1)
    if tp < 1:
        errors.append("'tensor_parallel_size' must be at least 1")

    relay_port = v.get("relay_port", 8000)
    engine_port = v.get("engine_port")
    if engine_port is None:
        engine_port = relay_port + 1
    agent_port = v.get("agent_port", 8090)
    own = None
    agent_host = v.get("agent_host") or None
    relay_host = v.get("relay_host") or None
    if agent_host is None or relay_host is None:
        own = own_address(parts.hostname or "127.0.0.1")
    cfg = Config(
        control_plane_url=url,
        instance_id=instance_id,
        worker_token=Secret(token),
        model_id=model_id,
        relay_key_sha256=_relay_key_sha256(v["relay_key_sha256"], errors),
        engine_command=command,
        engine_host=_engine_host(v.get("engine_host", Config.engine_host), errors),
        engine_port=engine_port,
        relay_host=relay_host or own,
        relay_port=relay_port,
        relay_cert_file=_relay_cert_file(v.get("relay_cert_file"), base_dir, errors),
        agent_host=agent_host or own,
        agent_port=agent_port,
        mode=mode,
        gpu_count=gpu_count,
        gpu_devices=_gpu_devices(v.get("gpu_devices", []), mode, gpu_count, errors),
        tensor_parallel_size=tp,
        heartbeat_interval_s=v.get("heartbeat_interval_s", 5.0),
        log_dir=str(v.get("log_dir", Config.log_dir)),
        data_dir=str(v.get("data_dir", Config.data_dir)),
        haproxy_bin=str(v.get("haproxy_bin", Config.haproxy_bin)),
        engine_env=_engine_env(v.get("engine_env", {}), errors),
        hf_token_file=_hf_token_file(v.get("hf_token_file"), errors),
        engine_stop_grace_s=v.get("engine_stop_grace_s", Config.engine_stop_grace_s),
        engine_backoff_initial_s=v.get("engine_backoff_initial_s", 1.0),
        engine_backoff_max_s=v.get("engine_backoff_max_s", 60.0),
        drain_timeout_s=v.get("drain_timeout_s", Config.drain_timeout_s),
        dead_man_after_s=_dead_man_after_s(v.get("dead_man_after_s", 1800.0), errors),
        dead_man_action=_dead_man_action(v.get("dead_man_action", "off"), errors),
        dead_man_command=_dead_man_command(v.get("dead_man_command"), errors),
        dead_man_metadata_url=_http_url(
            "dead_man_metadata_url", v.get("dead_man_metadata_url"), errors
        )
        or DEFAULT_DEAD_MAN_METADATA_URL,
        dead_man_api_url=(
            _http_url("dead_man_api_url", v.get("dead_man_api_url"), errors)
            or DEFAULT_DEAD_MAN_API_URL
        ).rstrip("/"),
        dead_man_key_file=_dead_man_key_file(v.get("dead_man_key_file"), base_dir, errors),
    )
    _check_ranges(cfg, errors)
    return cfg


def _engine_command(command: Any, errors: list[str]) -> tuple[str, ...]:
    if (
        not isinstance(command, (list, tuple))
        or not command
        or not all(isinstance(a, str) for a in command)
    ):
        errors.append("'engine_command' must be a non-empty list of strings")
        return DEFAULT_ENGINE_COMMAND
    for arg in command:
        try:
            arg.format(**{p: "" for p in PLACEHOLDERS})
        except (KeyError, IndexError, ValueError):
            errors.append(
                f"'engine_command' argument {arg!r} uses an unknown placeholder "
                f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})"
            )
    return tuple(command)


def _relay_key_sha256(value: Any, errors: list[str]) -> str:
    text = str(value).lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        errors.append("'relay_key_sha256' must be 64 hexadecimal digits (a SHA-256)")
    return text


def _engine_host(value: Any, errors: list[str]) -> str:
    try:
        loopback = ipaddress.ip_address(str(value)).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        errors.append(
            f"'engine_host' must be a loopback address (127.0.0.0/8 or ::1), got {value!r}: "
            "the engines are reached through the relay only"
        )
    return str(value)


def _relay_cert_file(value: Any, base_dir: str, errors: list[str]) -> str:
    path = os.path.join(base_dir, DEFAULT_RELAY_CERT_FILE) if value is None else value
    if not isinstance(path, str) or not os.path.isabs(path):
        errors.append("'relay_cert_file' must be an absolute path")
        return str(path)
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        errors.append(f"'relay_cert_file' {path} is not a readable file")
    return path


def _dead_man_after_s(value: float, errors: list[str]) -> float:
    if not 0 <= value < math.inf:  # NaN fails both comparisons
        errors.append("'dead_man_after_s' must be 0 (disabled) or a positive number of seconds")
        return 0.0
    return value


def _dead_man_action(value: Any, errors: list[str]) -> str:
    if value not in DEAD_MAN_ACTIONS:
        errors.append(
            f"'dead_man_action' must be one of {', '.join(map(repr, DEAD_MAN_ACTIONS))}, "
            f"got {value!r}"
        )
        return "off"
    return str(value)


def _dead_man_command(value: Any, errors: list[str]) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_DEAD_MAN_COMMAND
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(a, str) and a for a in value)
    ):
        errors.append("'dead_man_command' must be a non-empty list of non-empty strings")
        return DEFAULT_DEAD_MAN_COMMAND
    return tuple(value)


def _http_url(name: str, value: Any, errors: list[str]) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        errors.append(f"'{name}' must be an http(s) URL, got {value!r}")
        return None
    return str(value)


def _dead_man_key_file(value: Any, base_dir: str, errors: list[str]) -> str:
    if value is None:
        return os.path.join(base_dir, DEFAULT_DEAD_MAN_KEY_FILE)
    if not isinstance(value, str) or not os.path.isabs(value):
        errors.append("'dead_man_key_file' must be an absolute path")
    return str(value)


def _gpu_devices(value: Any, mode: str, gpu_count: int, errors: list[str]) -> tuple[int, ...]:
    ok = (
        isinstance(value, (list, tuple))
        and all(isinstance(g, int) and not isinstance(g, bool) and 0 <= g < 64 for g in value)
        and len(set(value)) == len(value)
        and len(value) <= MAX_ENGINES
    )
    if not ok:
        errors.append("'gpu_devices' must be a list of distinct GPU indices (0 to 63)")
        return ()
    if value and mode == "multi" and len(value) != gpu_count:
        errors.append("'gpu_devices' must name one GPU per engine ('gpu_count') in multi mode")
    return tuple(value)


def visible_devices(cfg: Config, engine: int | None) -> str | None:
    """CUDA_VISIBLE_DEVICES for engine `engine` of a multi-mode worker (None:
    the one engine of mono mode); None leaves the variable alone."""
    if engine is not None:
        return str(cfg.gpu_devices[engine] if cfg.gpu_devices else engine)
    if cfg.gpu_devices:
        return ",".join(str(g) for g in cfg.gpu_devices)
    return None


def _engine_env(value: Any, errors: list[str]) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(x, str) for k, x in value.items()
    ):
        errors.append("'engine_env' must be an object of string values")
        return {}
    return dict(value)


def _hf_token_file(value: Any, errors: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not os.path.isabs(value):
        errors.append("'hf_token_file' must be an absolute path")
        return None
    if not os.path.isfile(value) or not os.access(value, os.R_OK):
        errors.append(f"'hf_token_file' {value} is not a readable file")
    return value


def read_hf_token(path: str) -> str:
    """The token in `path`, without the blanks around it."""
    return Path(path).read_text(encoding="utf-8").strip()


def _check_ranges(cfg: Config, errors: list[str]) -> None:
    ports = {"agent_port": cfg.agent_port, "relay_port": cfg.relay_port}
    assert cfg.engine_port is not None
    ports["engine_port"] = cfg.engine_port
    for name, port in ports.items():
        if not 1 <= port <= 65535:
            errors.append(f"'{name}' must be between 1 and 65535, got {port}")
    engine_ports = cfg.engine_ports
    if engine_ports and engine_ports[-1] > 65535:
        errors.append("the engine ports run past 65535")
    # Checked whatever the addresses: on the mock provider the relay, the
    # agent and the engines share the VM's one loopback address.
    taken = {cfg.agent_port: "agent_port", cfg.relay_port: "relay_port"}
    for port in engine_ports:
        if port in taken:
            errors.append(f"engine port {port} collides with '{taken[port]}'")
    if cfg.relay_port == cfg.agent_port:
        errors.append("'relay_port' collides with 'agent_port'")
    for name in _FLOAT_KEYS:
        if getattr(cfg, name) <= 0:
            errors.append(f"'{name}' must be positive")
    if cfg.engine_backoff_max_s < cfg.engine_backoff_initial_s:
        errors.append("'engine_backoff_max_s' must be >= 'engine_backoff_initial_s'")
    if not cfg.log_dir:
        errors.append("'log_dir' must not be empty")


def own_address(toward: str) -> str:
    """The local address this host uses to reach `toward` (the control plane).

    A UDP connect() sends no packet; it only makes the kernel pick the route
    and so the source address. Binding there (and not on 0.0.0.0) keeps the
    agent off interfaces it was not asked to serve.
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((socket.gethostbyname(toward), 9))
            return str(s.getsockname()[0])
    except OSError:
        pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def engine_argv(cfg: Config, port: int, host: str, gpu: int | None, tp: int) -> list[str]:
    """The engine command with its placeholders filled in."""
    values = {
        "model": cfg.model_id,
        "port": str(port),
        "host": host,
        "tp": str(tp),
        "gpu": "" if gpu is None else str(gpu),
    }
    return [arg.format(**values) for arg in cfg.engine_command]
