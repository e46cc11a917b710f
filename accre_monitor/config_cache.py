"""A per-user cache of parsed config files, so a run does not pay for parsing TOML.

Importing tomllib and parsing costs a run about as much as Python's own start-up does;
the JSON of the parsed file, read back with the json module the run imports anyway,
costs a fraction of that. An entry is valid only for the exact file it was made from
(device, inode, size, mtime and ctime in nanoseconds): any edit, replacement or
`touch` makes the next run parse the file again. Validation is not cached: its warnings
appear on every run.

An entry holds the whole parsed file, passwords included, so it must never be more
readable than the file it copies: it is written 0600 into `accre-monitor/config/`, both
directories this user's own and mode 0700, each opened without following links and
checked with fstat. A directory or an entry that is a link, belongs to another user or
is open to group or others is never read (nor written: the file is parsed instead), and
the entry of a file this user may no longer read is removed. A cache that cannot be
kept private or written (read-only home) is simply skipped, and
ACCRE_MONITOR_CONFIG_CACHE=off turns it off.
"""

from __future__ import annotations

import json
import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SWITCH = "ACCRE_MONITOR_CONFIG_CACHE"
_DIRECTORIES = ("accre-monitor", "config")
_OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_ENTRY = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not hang us


def enabled() -> bool:
    return os.environ.get(SWITCH, "").lower() != "off"


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, *_DIRECTORIES)


def entry_name(path: str) -> str:
    """The entry's file name in the cache directory: the config's absolute path, quoted."""
    return os.path.abspath(path).replace("%", "%25").replace("/", "%2F") + ".json"


def cache_file(path: str) -> str:
    return os.path.join(cache_dir(), entry_name(path))


def _private(info: os.stat_result) -> bool:
    """Owned by this user, and nothing for group or others."""
    return info.st_uid == os.getuid() and not info.st_mode & 0o077


def _open_cache_dir(create: bool) -> int:
    """The cache directory, open; OSError unless it is this user's alone (`create`: make it so).

    The base (`$XDG_CACHE_HOME`, `~/.cache`) is the user's choice and may be a link; the
    two directories below it are ours and are never followed as links. Creating also
    closes a directory of this user's that an older version made with the umask's mode.
    """
    base = os.path.dirname(os.path.dirname(cache_dir()))
    if create:
        os.makedirs(base, 0o700, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in _DIRECTORIES:
            if create:
                _make_directory(name, fd)
            child = os.open(name, _OPEN_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            info = os.fstat(fd)
            if create and info.st_uid == os.getuid() and info.st_mode & 0o077:
                os.fchmod(fd, 0o700)
                info = os.fstat(fd)
            if not _private(info):
                raise PermissionError(f"cache directory {name} is not private")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _make_directory(name: str, directory: int) -> bool:
    """Create `name` 0700 in `directory`; False when something of that name is there already."""
    try:
        os.mkdir(name, 0o700, dir_fd=directory)
    except FileExistsError:
        return False
    return True


def _key(info: os.stat_result) -> list[int]:
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def load(path: str, info: os.stat_result) -> dict[str, Any] | None:
    """The parsed config cached for this very file, or None (also for an entry not private)."""
    if not enabled():
        return None
    try:
        directory = _open_cache_dir(create=False)
        try:
            fd = os.open(entry_name(path), _OPEN_ENTRY, dir_fd=directory)
        finally:
            os.close(directory)
        with open(fd, "rb") as handle:
            held = os.fstat(fd)
            if not stat.S_ISREG(held.st_mode) or not _private(held):
                return None
            entry = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != _key(info):
        return None
    data = entry.get("data")
    return data if isinstance(data, dict) else None


def save(path: str, info: os.stat_result, data: dict[str, Any]) -> None:
    """Cache `data` for this file; silently skipped when it cannot be (no JSON form, no disk)."""
    if not enabled():
        return
    try:
        payload = json.dumps({"key": _key(info), "data": data}).encode()
    except (TypeError, ValueError):  # e.g. TOML dates, which JSON cannot hold
        return
    name = entry_name(path)
    temporary = f"{name}.{os.getpid()}.tmp"
    try:
        directory = _open_cache_dir(create=True)
    except OSError:
        return
    try:
        _discard(temporary, directory)  # left by a run that died with this pid
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o600, dir_fd=directory)
        try:
            if not _private(os.fstat(fd)):
                raise PermissionError("cache entry is not private")
            os.write(fd, payload)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except OSError:
        _discard(temporary, directory)
    finally:
        os.close(directory)


def forget(path: str) -> None:
    """Remove the entry of `path`: called when this user may no longer read the file."""
    try:
        directory = _open_cache_dir(create=False)
    except OSError:
        return
    try:
        _discard(entry_name(path), directory)
    finally:
        os.close(directory)


def _discard(name: str, directory: int) -> bool:
    """Remove `name` from `directory`; False when it could not be (most often: not there)."""
    try:
        os.unlink(name, dir_fd=directory)
    except OSError:
        return False
    return True
