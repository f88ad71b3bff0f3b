"""What build of the agent is running: version, build date and the sha256 of
the bundle it was installed from.

bootstrap.sh extracts a bundle into ``<release>/`` and keeps the tarball
beside the package as ``<release>/bundle.tar.gz``; scripts/agent-bundle.sh
writes ``<release>/build-info.json``. Run from a source checkout (no tarball),
the checksum is a digest of the package's own files instead, so it still
changes with the code and still has the shape the control plane expects.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from . import AGENT_VERSION

PACKAGE_DIR = Path(__file__).resolve().parent
RELEASE_DIR = PACKAGE_DIR.parent
BUNDLE_FILE = "bundle.tar.gz"
BUILD_INFO_FILE = "build-info.json"

__all__ = ["AGENT_VERSION", "build_date", "bundle_sha256"]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.cache
def bundle_sha256() -> str:
    bundle = RELEASE_DIR / BUNDLE_FILE
    if bundle.is_file():
        return _sha256_file(bundle)
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        h.update(path.name.encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


@functools.cache
def build_date() -> str | None:
    """ISO 8601 date of the bundle's build, None for a source checkout."""
    try:
        info = json.loads((RELEASE_DIR / BUILD_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = info.get("build_date") if isinstance(info, dict) else None
    return value if isinstance(value, str) else None
