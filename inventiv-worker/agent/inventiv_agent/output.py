"""A supervised process's output (the engine's stdout and stderr, written to
a file by its Supervisor) carried into the event log line by line, as
``engine_output`` events, so that ``GET /logs`` and the control plane's log
viewer show the engine's own lines beside the agent's, live.

The output is the tenant's engine's: each line is cut at MAX_LINE_CHARS and
at most MAX_LINES_PER_READ lines are carried per read (every READ_INTERVAL_S);
what is skipped is counted in one ``engine_output_skipped`` event, so a
chatty engine cannot flood the event log (which rotates at 10 MB anyway).
The access-log lines of the agent's own probes (``GET /health``,
``/v1/models``, ``/metrics`` answered 200, several a second) are left out:
they would push everything else out of the log."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .events import EventLog

READ_INTERVAL_S = 0.5
MAX_LINES_PER_READ = 100
MAX_LINE_CHARS = 1000
# The most of the file read at once; the rest waits for the next read.
MAX_READ_BYTES = 256 * 1024
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ERROR = re.compile(r"\b(ERROR|CRITICAL|FATAL|Traceback)\b")
_WARNING = re.compile(r"\bWARN(ING)?\b")
# Quotes may come escaped: an engine logging JSON (LOG_FORMAT=json).
_PROBE = re.compile(r'"GET /(health|metrics|v1/models)(\?\S*)? HTTP/[0-9.]+\\?" 200\b')


def level_of(line: str) -> str:
    """The level an engine line is shown with: from its own words."""
    if _ERROR.search(line):
        return "error"
    if _WARNING.search(line):
        return "warning"
    return "info"


class OutputFollower:
    """Follows `path` from its end at start (what an earlier run of the agent
    wrote is not repeated); a file replaced by a smaller one (rotation) is
    read again from its start."""

    def __init__(
        self,
        path: Path,
        events: EventLog,
        labels: Mapping[str, Any] | None = None,
        *,
        event: str = "engine_output",
        interval_s: float = READ_INTERVAL_S,
    ) -> None:
        self.path = path
        self.events = events
        self.labels = dict(labels or {})
        self.event = event
        self.interval_s = interval_s
        self._offset = self._size()
        self._partial = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"{event}-follower", daemon=True)

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops following, after carrying what was written up to now."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.read_once()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.read_once()

    def read_once(self) -> int:
        """Carries the complete lines written since the last read; returns how many."""
        size = self._size()
        if size < self._offset:  # replaced by a new file
            self._offset, self._partial = 0, b""
        if size == self._offset:
            return 0
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read(MAX_READ_BYTES)
        except OSError:
            return 0
        self._offset += len(chunk)
        *lines, rest = (self._partial + chunk).split(b"\n")
        # A line longer than a read is carried cut rather than held forever.
        if len(rest) > MAX_READ_BYTES:
            lines.append(rest)
            rest = b""
        self._partial = rest
        texts = [_ANSI.sub("", b.decode("utf-8", errors="replace")).rstrip("\r") for b in lines]
        texts = [t for t in texts if t.strip() and not _PROBE.search(t)]
        for text in texts[:MAX_LINES_PER_READ]:
            cut = text[:MAX_LINE_CHARS]
            self.events.emit(
                self.event,
                **self.labels,
                level=level_of(cut),
                line=cut,
                **({"truncated": True} if len(text) > MAX_LINE_CHARS else {}),
            )
        skipped = len(texts) - MAX_LINES_PER_READ
        if skipped > 0:
            self.events.emit(f"{self.event}_skipped", **self.labels, lines=skipped)
        return min(len(texts), MAX_LINES_PER_READ)
