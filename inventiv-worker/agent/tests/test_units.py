"""Configuration, event log, samples and HAProxy config, without processes."""

from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import RELAY_KEY_SHA256, make_relay_cert, validator

from inventiv_agent import config, haproxy, output, samples
from inventiv_agent.engine import MAX_TOKEN_COUNTER, parse_queue_metrics, parse_token_counters
from inventiv_agent.events import EventLog, parse_iso8601
from inventiv_agent.output import OutputFollower

HEARTBEAT = validator("heartbeat.v2.json")
BASE = {
    "control_plane_url": "http://127.0.0.1:8080/",
    "instance_id": str(uuid.uuid4()),
    "worker_token": "secret-token",
    "model_id": "Qwen/Qwen2.5-0.5B-Instruct",
    "relay_key_sha256": RELAY_KEY_SHA256,
}


def write(tmp_path: Path, data: dict) -> Path:
    """The config file, with the relay's certificate where the default wants it."""
    if not (tmp_path / config.DEFAULT_RELAY_CERT_FILE).exists():
        make_relay_cert(tmp_path / "secrets")
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(data))
    return path


# --- config ------------------------------------------------------------------------


def test_config_defaults(tmp_path):
    cfg = config.load(write(tmp_path, BASE), environ={})
    assert cfg.control_plane_url == "http://127.0.0.1:8080"
    assert cfg.relay_port == 8000
    assert cfg.engine_port == 8001
    assert cfg.agent_port == 8090
    assert cfg.heartbeat_interval_s == 5.0
    assert cfg.mode == "mono"
    assert cfg.tensor_parallel_size == 1
    assert cfg.engine_command == config.DEFAULT_ENGINE_COMMAND
    # The instance's own address (the route to the control plane), never 0.0.0.0.
    assert cfg.agent_host == "127.0.0.1"
    assert cfg.relay_host == "127.0.0.1"
    # The engines: loopback only, behind the relay.
    assert cfg.engine_host == "127.0.0.1"
    assert cfg.relay_cert_file == str(tmp_path / "secrets" / "relay.pem")
    assert "secret-token" not in repr(cfg)
    assert cfg.redacted()["worker_token"] == "***"
    argv = config.engine_argv(cfg, 8000, "10.0.0.5", None, 2)
    assert argv == [
        "vllm",
        "serve",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "--port",
        "8000",
        "--host",
        "10.0.0.5",
        "--tensor-parallel-size",
        "2",
        # vLLM reports usage.prompt_tokens_details.cached_tokens only when asked.
        "--enable-prompt-tokens-details",
    ]


def test_config_path_from_env_and_env_overrides(tmp_path):
    path = write(tmp_path, {**BASE, "agent_port": 9000})
    env = {
        "INVENTIV_AGENT_CONFIG": str(path),
        "INVENTIV_AGENT_AGENT_PORT": "9100",
        "INVENTIV_AGENT_HEARTBEAT_INTERVAL_S": "0.5",
        "INVENTIV_AGENT_ENGINE_COMMAND": "mock-engine --port {port} --model {model}",
        "INVENTIV_AGENT_ENGINE_ENV": '{"HF_HOME": "/data/hf"}',
        "INVENTIV_AGENT_MODEL_ID": "other/model",
    }
    cfg = config.load(None, environ=env)
    assert cfg.agent_port == 9100
    assert cfg.heartbeat_interval_s == 0.5
    assert cfg.model_id == "other/model"
    assert cfg.engine_command == ("mock-engine", "--port", "{port}", "--model", "{model}")
    assert cfg.engine_env == {"HF_HOME": "/data/hf"}
    env["INVENTIV_AGENT_ENGINE_COMMAND"] = '["a b", "{port}"]'
    assert config.load(None, environ=env).engine_command == ("a b", "{port}")


def test_config_multi_mode_ports(tmp_path):
    cfg = config.load(write(tmp_path, {**BASE, "mode": "multi", "gpu_count": 4}), environ={})
    assert cfg.relay_port == 8000
    assert cfg.engine_ports == [8001, 8002, 8003, 8004]
    assert cfg.tensor_parallel_size == 1


def test_config_gpu_devices_on_a_shared_host(tmp_path):
    # Mono mode on GPUs 2 and 3 of a host: the engine sees exactly those.
    cfg = config.load(write(tmp_path, {**BASE, "gpu_count": 2, "gpu_devices": [2, 3]}), environ={})
    assert config.visible_devices(cfg, None) == "2,3"
    # Multi mode: engine i on the i-th GPU of the seat.
    multi = {**BASE, "mode": "multi", "gpu_count": 2, "gpu_devices": [1, 3]}
    cfg = config.load(write(tmp_path, multi), environ={})
    assert [config.visible_devices(cfg, i) for i in range(2)] == ["1", "3"]
    # Without a seat: every GPU in mono, GPU i for engine i in multi.
    cfg = config.load(write(tmp_path, BASE), environ={})
    assert config.visible_devices(cfg, None) is None
    assert config.visible_devices(cfg, 1) == "1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"instance_id": "not-a-uuid"}, "'instance_id' must be a UUID"),
        ({"gpu_devices": [0, 0]}, "'gpu_devices' must be a list of distinct GPU indices"),
        ({"gpu_devices": "0"}, "'gpu_devices' must be a list of distinct GPU indices"),
        ({"gpu_devices": [True]}, "'gpu_devices' must be a list of distinct GPU indices"),
        (
            {"mode": "multi", "gpu_count": 2, "gpu_devices": [0]},
            "'gpu_devices' must name one GPU per engine",
        ),
        ({"control_plane_url": "ftp://x"}, "must be an http(s) URL"),
        ({"worker_token": ""}, "'worker_token' is required"),
        ({"agent_port": 70000}, "'agent_port' must be between 1 and 65535"),
        ({"agent_port": "abc"}, "'agent_port' must be an integer"),
        ({"mode": "duo"}, "'mode' must be 'mono' or 'multi'"),
        ({"mode": "multi", "gpu_count": 0}, "'gpu_count' must be between 1 and 16"),
        ({"engine_command": ["vllm", "{modle}"]}, "unknown placeholder"),
        ({"engine_command": []}, "non-empty list of strings"),
        ({"heartbeat_interval_s": 0}, "'heartbeat_interval_s' must be positive"),
        ({"agent_port": 8001}, "engine port 8001 collides with 'agent_port'"),
        ({"agent_port": 8000}, "'relay_port' collides with 'agent_port'"),
        ({"relay_key_sha256": "abc"}, "'relay_key_sha256' must be 64 hexadecimal digits"),
        ({"relay_cert_file": "/nowhere/relay.pem"}, "'relay_cert_file' /nowhere/relay.pem is not"),
        ({"tyop": 1}, "unknown key 'tyop'"),
    ],
)
def test_config_errors_are_clear(tmp_path, change, message):
    with pytest.raises(config.ConfigError) as err:
        config.load(write(tmp_path, {**BASE, **change}), environ={})
    assert message in str(err.value)


def test_config_missing_keys_are_all_listed(tmp_path):
    with pytest.raises(config.ConfigError) as err:
        config.load(write(tmp_path, {}), environ={})
    for key in ("control_plane_url", "instance_id", "worker_token", "model_id", "relay_key_sha256"):
        assert f"'{key}' is required" in str(err.value)


def test_config_file_errors(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read config file"):
        config.load(tmp_path / "missing.json", environ={})
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(config.ConfigError, match="not valid JSON"):
        config.load(bad, environ={})


# --- events ------------------------------------------------------------------------


def test_event_log_rotates_and_reads_across_files(tmp_path):
    log = EventLog(tmp_path, max_bytes=2000, mirror=None)
    for i in range(300):
        log.emit("tick", i=i)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.jsonl", "events.jsonl.1", "events.jsonl.2", "events.jsonl.3"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    tail = log.read(tail=30)
    assert [e["i"] for e in tail] == list(range(270, 300))
    everything = log.read()
    assert [e["i"] for e in everything] == list(range(everything[0]["i"], 300))
    assert everything[0]["i"] > 0  # the oldest file was dropped


def test_event_log_since(tmp_path):
    log = EventLog(tmp_path, mirror=None)
    first = log.emit("a")
    since = parse_iso8601(first["ts"])
    path = tmp_path / "events.jsonl"
    later = (since + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    with path.open("a") as f:
        f.write(json.dumps({"ts": later, "event": "b"}) + "\n")
        f.write("torn line {\n")
    assert [e["event"] for e in log.read(since=since)] == ["b"]
    assert [e["event"] for e in log.read(since=since - timedelta(seconds=1))] == ["a", "b"]
    assert parse_iso8601("2025-01-01T00:00:00") == datetime(2025, 1, 1, tzinfo=timezone.utc)


# --- samples -----------------------------------------------------------------------


def test_system_sample_fits_the_schema(tmp_path):
    sampler = samples.SystemSampler(str(tmp_path))
    sample = sampler.sample()
    assert {"cpu_pct", "load1", "memory_used_mib", "memory_total_mib", "disk_total_gib"} <= set(
        sample
    )
    assert "net_rx_bytes_per_s" in sample
    assert 0 <= sample["cpu_pct"] <= 100
    assert 0 < sample["memory_used_mib"] <= sample["memory_total_mib"]
    schema = HEARTBEAT.schema["$defs"]["system"]
    HEARTBEAT.evolve(schema=schema).validate(sample)


def test_no_gpu_tool_means_no_gpu_samples(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert samples.gpu_samples() is None


def test_gpu_samples_from_nvidia_smi(monkeypatch, tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        "echo '0, NVIDIA L4, 37, 1024, 23034, 41, 27.53'\n"
        "echo '1, NVIDIA L4, 0, 0, 23034, [N/A], [N/A]'\n"
    )
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    gpus = samples.gpu_samples()
    assert gpus == [
        {
            "index": 0,
            "name": "NVIDIA L4",
            "utilization_pct": 37.0,
            "memory_used_mib": 1024.0,
            "memory_total_mib": 23034.0,
            "temperature_c": 41.0,
            "power_w": 27.53,
        },
        {
            "index": 1,
            "name": "NVIDIA L4",
            "utilization_pct": 0.0,
            "memory_used_mib": 0.0,
            "memory_total_mib": 23034.0,
            "temperature_c": None,
            "power_w": None,
        },
    ]
    schema = HEARTBEAT.schema["$defs"]["gpu"]
    for gpu in gpus:
        HEARTBEAT.evolve(schema=schema).validate(gpu)


def test_failing_nvidia_smi_gives_no_gpu_samples(monkeypatch, tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert samples.gpu_samples() is None


# --- engine metrics and HAProxy config ---------------------------------------------


def test_queue_metrics_parsing():
    text = (
        "# HELP vllm:num_requests_running Number of requests running\n"
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{model_name="m"} 3.0\n'
        'vllm:num_requests_waiting{model_name="m"} 2.0\n'
        'vllm:num_requests_waiting_by_reason{model_name="m"} 9.0\n'
        'vllm:request_success_total{model_name="m"} 40.0\n'
    )
    assert parse_queue_metrics(text) == (3, 2)
    assert parse_queue_metrics("") == (0, 0)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        # vLLM's shape: one series per model (and engine), summed.
        (
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
            "# TYPE vllm:prompt_tokens_total counter\n"
            'vllm:prompt_tokens_total{engine="0",model_name="m"} 1200.0\n'
            'vllm:prompt_tokens_total{engine="1",model_name="m"} 34.0\n'
            'vllm:prompt_tokens_created{model_name="m"} 1.7e9\n'
            'vllm:generation_tokens_total{model_name="m"} 560.0\n',
            (1234, 560),
        ),
        # Only one of the two exported: the other counted as 0.
        ('vllm:generation_tokens_total{model_name="m"} 7.0\n', (0, 7)),
        # Neither: nothing reported, never a made-up 0.
        ('vllm:num_requests_running{model_name="m"} 1.0\n', None),
        ("", None),
        # Garbage, NaN and negative values are not counter values.
        (
            "vllm:prompt_tokens_total{} oops\n"
            'vllm:prompt_tokens_total{a="1"} NaN\n'
            'vllm:prompt_tokens_total{a="2"} -5\n'
            'vllm:prompt_tokens_total{a="3"} 10\n',
            (10, 0),
        ),
        # Bounded to what the control plane accepts.
        (f"vllm:prompt_tokens_total {float(2**60)}\n", (MAX_TOKEN_COUNTER, 0)),
    ],
)
def test_token_counter_parsing(text, want):
    assert parse_token_counters(text) == want


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "::", "localhost", "2001:db8::1"])
def test_engines_may_not_bind_anything_but_loopback(tmp_path, host):
    """An engine on a routable address would be reachable without the relay."""
    with pytest.raises(config.ConfigError, match="'engine_host' must be a loopback address"):
        config.load(write(tmp_path, {**BASE, "engine_host": host}), environ={})
    for loopback in ("127.0.0.1", "127.0.10.3", "::1"):
        cfg = config.load(write(tmp_path, {**BASE, "engine_host": loopback}), environ={})
        assert cfg.engine_host == loopback


def test_haproxy_config_is_valid(tmp_path, haproxy_bin):
    pem, _ = make_relay_cert(tmp_path)
    backends = [("127.0.0.1", 18001), ("127.0.0.1", 18002)]
    text = haproxy.render_config(
        "127.0.0.1", 18000, str(pem), RELAY_KEY_SHA256, backends, agent=("127.0.0.1", 18090)
    )
    assert f"ssl crt {pem}" in text
    assert "server agent 127.0.0.1:18090" in text
    assert RELAY_KEY_SHA256 in text
    assert "balance leastconn" in text
    assert "stick on req.hdr(X-Inventiv-Session)" in text
    assert "http-check send meth GET uri /health" in text
    path = tmp_path / "haproxy.cfg"
    haproxy.write_config(path, text)
    assert haproxy.check_config(haproxy_bin, path) is None
    path.write_text("frontend broken\n    bind nowhere\n")
    assert haproxy.check_config(haproxy_bin, path) is not None


# --- engine output -----------------------------------------------------------------


def test_engine_output_lines_become_events(tmp_path: Path):
    out = tmp_path / "engine-8001.log"
    out.write_bytes(b"written before the agent started\n")
    log = EventLog(tmp_path / "logs", mirror=None)
    follower = OutputFollower(out, log, {"port": 8001})
    assert follower.read_once() == 0  # the earlier run's lines are not repeated
    with out.open("ab") as f:
        f.write(b'INFO: 127.0.0.1 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n')
        # The agent's own probes are not carried.
        f.write(b'INFO: 127.0.0.1 - "GET /health HTTP/1.1" 200 OK\n')
        f.write(b'{"message":"\\"GET /metrics HTTP/1.1\\" 200"}\n')  # JSON logs
        f.write(b"\x1b[31mERROR boom\x1b[0m\r\nhalf a li")
    assert follower.read_once() == 2
    with out.open("ab") as f:
        f.write(b"ne\n\n" + b"x" * 3000 + b"\nWARNING: slow\n")
    assert follower.read_once() == 3
    events = [e for e in log.read() if e["event"] == "engine_output"]
    assert [e["line"] for e in events][:3] == [
        'INFO: 127.0.0.1 - "POST /v1/chat/completions HTTP/1.1" 200 OK',
        "ERROR boom",
        "half a line",
    ]
    assert [e["level"] for e in events] == ["info", "error", "info", "info", "warning"]
    assert all(e["port"] == 8001 for e in events)
    assert len(events[3]["line"]) == output.MAX_LINE_CHARS and events[3]["truncated"] is True

    # Rotated: the new, smaller file is read from its start.
    out.write_bytes(b"after rotation\n")
    assert follower.read_once() == 1
    assert log.read(tail=1)[0]["line"] == "after rotation"


def test_engine_output_floods_are_counted_not_carried(tmp_path: Path):
    out = tmp_path / "engine.log"
    out.touch()
    log = EventLog(tmp_path / "logs", mirror=None)
    follower = OutputFollower(out, log)
    out.write_bytes(b"".join(b"line %d\n" % i for i in range(output.MAX_LINES_PER_READ + 30)))
    assert follower.read_once() == output.MAX_LINES_PER_READ
    events = log.read()
    assert sum(e["event"] == "engine_output" for e in events) == output.MAX_LINES_PER_READ
    assert events[-1] == {**events[-1], "event": "engine_output_skipped", "lines": 30}


def test_engine_output_follower_carries_what_is_left_when_stopped(tmp_path: Path):
    out = tmp_path / "engine.log"
    out.touch()
    log = EventLog(tmp_path / "logs", mirror=None)
    follower = OutputFollower(out, log, interval_s=3600)
    follower.start()
    out.write_bytes(b"last words\n")
    follower.stop()
    assert log.read(tail=1)[0]["line"] == "last words"
