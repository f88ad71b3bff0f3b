"""System samples from /proc (CPU, load, memory, data-dir disk, network rates)
and GPU samples from NVML or nvidia-smi. A value the machine cannot give is
left out, never invented: no GPU tool means no ``gpus`` at all."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

PROC = Path("/proc")
NVIDIA_SMI_FIELDS = "index,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw"


class SystemSampler:
    """Keeps the previous counters so CPU % and network rates are deltas
    between two calls (the first call compares with construction time)."""

    def __init__(self, data_dir: str = "/", proc: Path = PROC) -> None:
        self.data_dir = data_dir
        self.proc = proc
        self._lock = threading.Lock()
        self._cpu = self._read_cpu()
        self._net = self._read_net()
        self._net_at = time.monotonic()

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with self._lock:
            cpu = self._read_cpu()
            if cpu is not None and self._cpu is not None:
                busy = cpu[0] - self._cpu[0]
                total = cpu[1] - self._cpu[1]
                out["cpu_pct"] = (
                    round(min(max(100.0 * busy / total, 0.0), 100.0), 1) if total > 0 else 0.0
                )
            self._cpu = cpu or self._cpu
            net = self._read_net()
            now = time.monotonic()
            dt = now - self._net_at
            if net is not None and self._net is not None and dt > 0:
                out["net_rx_bytes_per_s"] = round(max(net[0] - self._net[0], 0) / dt, 1)
                out["net_tx_bytes_per_s"] = round(max(net[1] - self._net[1], 0) / dt, 1)
            if net is not None:
                self._net, self._net_at = net, now
        if "cpu_pct" not in out:
            return {}  # the schema requires cpu_pct: no /proc, no system block
        try:
            load1, load5, load15 = os.getloadavg()
            out.update(load1=round(load1, 2), load5=round(load5, 2), load15=round(load15, 2))
        except OSError:
            return {}
        mem = self._read_meminfo()
        if mem is None:
            return {}
        out.update(mem)
        try:
            disk = shutil.disk_usage(self.data_dir)
            out["disk_used_gib"] = round(disk.used / 2**30, 2)
            out["disk_total_gib"] = round(disk.total / 2**30, 2)
        except OSError:
            pass
        return out

    def _read_cpu(self) -> tuple[int, int] | None:
        """(busy, total) jiffies over all CPUs."""
        try:
            with (self.proc / "stat").open(encoding="ascii") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu":
            return None
        values = [int(x) for x in fields[1:]]
        # user nice system idle iowait irq softirq steal [guest guest_nice]:
        # guest time is already counted in user/nice.
        values = values[:8]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        total = sum(values)
        return total - idle, total

    def _read_net(self) -> tuple[int, int] | None:
        """(rx, tx) bytes summed over every interface but loopback."""
        try:
            lines = (self.proc / "net" / "dev").read_text(encoding="ascii").splitlines()[2:]
        except OSError:
            return None
        rx = tx = 0
        for line in lines:
            name, _, data = line.partition(":")
            if name.strip() == "lo":
                continue
            cols = data.split()
            if len(cols) >= 9:
                rx += int(cols[0])
                tx += int(cols[8])
        return rx, tx

    def _read_meminfo(self) -> dict[str, float] | None:
        info: dict[str, int] = {}
        try:
            for line in (self.proc / "meminfo").read_text(encoding="ascii").splitlines():
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    info[key] = int(parts[0])  # kB
        except (OSError, ValueError):
            return None
        if "MemTotal" not in info or "MemAvailable" not in info:
            return None
        total = info["MemTotal"] / 1024
        used = max(info["MemTotal"] - info["MemAvailable"], 0) / 1024
        return {"memory_used_mib": round(used, 1), "memory_total_mib": round(total, 1)}


def gpu_samples() -> list[dict[str, Any]] | None:
    """Per-GPU samples, or None when no GPU tool is available on this host."""
    try:
        return _nvml_samples()
    except ImportError:
        pass
    except Exception:  # NVML failing (no driver) is "no GPU data"
        return None
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    return _nvidia_smi_samples(smi)


def _nvml_samples() -> list[dict[str, Any]]:
    import pynvml  # type: ignore[import-not-found]  # noqa: PLC0415 - optional dependency

    pynvml.nvmlInit()
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            util = pynvml.nvmlDeviceGetUtilizationRates(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            gpu: dict[str, Any] = {
                "index": i,
                "name": (name.decode() if isinstance(name, bytes) else str(name))[:100],
                "utilization_pct": float(util.gpu),
                "memory_used_mib": round(mem.used / 2**20, 1),
                "memory_total_mib": round(mem.total / 2**20, 1),
                "temperature_c": _optional(
                    lambda h=h: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)
                ),
                "power_w": _optional(lambda h=h: pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
            }
            out.append(gpu)
        return out
    finally:
        pynvml.nvmlShutdown()


def _optional(read: Any) -> float | None:
    try:
        return float(read())
    except Exception:  # a sensor the card lacks
        return None


def _nvidia_smi_samples(smi: str) -> list[dict[str, Any]] | None:
    try:
        proc = subprocess.run(
            [smi, f"--query-gpu={NVIDIA_SMI_FIELDS}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return parse_nvidia_smi(proc.stdout)


def parse_nvidia_smi(text: str) -> list[dict[str, Any]] | None:
    """Rows of `nvidia-smi --query-gpu=<NVIDIA_SMI_FIELDS> --format=csv,noheader,nounits`."""
    out = []
    for line in text.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) != 7:
            continue
        index, util, used, total = (_number(cols[i]) for i in (0, 2, 3, 4))
        if index is None or util is None or used is None or total is None:
            continue  # a row without its required values is no sample
        out.append(
            {
                "index": int(index),
                "name": cols[1][:100],
                "utilization_pct": min(max(util, 0.0), 100.0),
                "memory_used_mib": max(used, 0.0),
                "memory_total_mib": max(total, 0.0),
                "temperature_c": _number(cols[5]),
                "power_w": _number(cols[6]),
            }
        )
    return out or None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]", ...
