"""Structured event log: one JSON object per line in ``<log_dir>/events.jsonl``,
rotated at 10 MB, mirrored to stderr, and read back for ``GET /logs``."""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

MAX_BYTES = 10 * 1024 * 1024
KEEP_ROTATED = 3
FILE_NAME = "events.jsonl"


def utc_now_iso() -> str:
    """RFC 3339 UTC timestamp with milliseconds, e.g. 2025-01-31T12:00:00.123Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso8601(value: str) -> datetime:
    """An aware datetime from ISO 8601 text ('Z' accepted; naive means UTC)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


class EventLog:
    """Thread-safe append-only JSON-lines log with size-based rotation."""

    def __init__(
        self,
        log_dir: str | Path,
        max_bytes: int = MAX_BYTES,
        mirror: TextIO | None = sys.stderr,
    ) -> None:
        self.dir = Path(log_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / FILE_NAME
        self.max_bytes = max_bytes
        self.mirror = mirror
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record: dict[str, Any] = {"ts": utc_now_iso(), "event": event, **fields}
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            self._rotate_if_needed(len(line))
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
            if self.mirror is not None:
                try:
                    self.mirror.write(line)
                    self.mirror.flush()
                except (OSError, ValueError):
                    pass  # a closed stderr must not stop the agent
        return record

    def _rotate_if_needed(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size + incoming <= self.max_bytes:
            return
        for i in range(KEEP_ROTATED - 1, 0, -1):
            older = self._rotated(i)
            if older.exists():
                older.replace(self._rotated(i + 1))
        self.path.replace(self._rotated(1))

    def _rotated(self, i: int) -> Path:
        return self.dir / f"{FILE_NAME}.{i}"

    def read(self, tail: int | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
        """Events oldest first: those after `since`, then the last `tail` of them."""
        newest_first = [self.path] + [self._rotated(i) for i in range(1, KEEP_ROTATED + 1)]
        chunks: list[list[dict[str, Any]]] = []
        count = 0
        with self._lock:
            for path in newest_first:
                try:
                    text = path.read_text(encoding="utf-8")
                except FileNotFoundError:
                    continue
                records = [r for r in map(_parse_line, text.splitlines()) if r is not None]
                if since is not None:
                    records = [r for r in records if _after(r, since)]
                chunks.append(records)
                count += len(records)
                if tail is not None and count >= tail:
                    break  # older files cannot be part of the tail
        out = [r for chunk in reversed(chunks) for r in chunk]
        if tail is not None:
            out = out[-tail:] if tail > 0 else []
        return out


def _parse_line(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None  # a torn line after a crash
    return record if isinstance(record, dict) else None


def _after(record: dict[str, Any], since: datetime) -> bool:
    try:
        return parse_iso8601(str(record.get("ts", ""))) > since
    except ValueError:
        return False
