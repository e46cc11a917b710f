"""A per-user cache of parsed config files, so a run does not pay for parsing TOML.

Importing tomllib and parsing costs a run about as much as Python's own start-up does;
the JSON of the parsed file, read back with the json module the run imports anyway,
costs a fraction of that. An entry is valid only for the exact file it was made from
(device, inode, size, mtime and ctime in nanoseconds): any edit, replacement or
`touch` makes the next run parse the file again. Validation is not cached: its warnings
appear on every run. A cache that cannot be written (read-only home) is simply skipped.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def cache_file(path: str) -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    name = os.path.abspath(path).replace("%", "%25").replace("/", "%2F")
    return os.path.join(base, "accre-monitor", "config", name + ".json")


def _key(info: os.stat_result) -> list[int]:
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def load(path: str, info: os.stat_result) -> dict[str, Any] | None:
    """The parsed config cached for this very file, or None."""
    try:
        with open(cache_file(path), "rb") as handle:
            entry = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != _key(info):
        return None
    data = entry.get("data")
    return data if isinstance(data, dict) else None


def save(path: str, info: os.stat_result, data: dict[str, Any]) -> None:
    """Cache `data` for this file; silently skipped when it cannot be (no JSON form, no disk)."""
    try:
        payload = json.dumps({"key": _key(info), "data": data}).encode()
    except (TypeError, ValueError):  # e.g. TOML dates, which JSON cannot hold
        return
    target = cache_file(path)
    try:
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        temporary = f"{target}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, payload)
        finally:
            os.close(fd)
        os.replace(temporary, target)
    except OSError:
        return
