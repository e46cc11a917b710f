"""One run of a check at a time: flock(2) locks in a private lock directory.

A check stuck on a hung file system must not pile up a new copy every minute. The
lock directory usually lives in shared /tmp, so it is created 0700 and refused when
it is a symlink or belongs to another user (another user could otherwise pre-create
it and hold or swap our locks).
"""

from __future__ import annotations

import os
import stat

from accre_monitor.errors import UserError
from accre_monitor.status import CRITICAL, OK

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_LOCKDIR = "[DEFAULT]"

# (check name, flock id) -> open descriptor holding the lock
_HELD: dict[tuple[str, str | None], int] = {}
_lockdir: str | None = None


def default_lockdir() -> str:
    import pwd

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    return os.path.join("/tmp", user, "accre-monitor")


def resolve_lockdir(configured: str | None) -> str | None:
    """The directory a `lockdir` setting names (`"[DEFAULT]"`: `/tmp/<user>/accre-monitor`)."""
    if not configured:
        return None
    return default_lockdir() if configured == DEFAULT_LOCKDIR else configured


def prepare_lockdir(path: str) -> str:
    """Create the lock directory (0700) if missing and make sure it is safe to use."""
    parent = os.path.dirname(path.rstrip("/"))
    try:
        if parent and not os.path.lexists(parent):
            os.makedirs(parent, mode=0o700, exist_ok=True)
        if not os.path.lexists(path):
            os.mkdir(path, 0o700)
        info = os.lstat(path)
    except FileExistsError:
        info = os.lstat(path)
    except OSError as exc:
        raise UserError(f"cannot create lock directory {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise UserError(f"refusing lock directory {path}: it is a symlink")
    if not stat.S_ISDIR(info.st_mode):
        raise UserError(f"refusing lock directory {path}: it is not a directory")
    if info.st_uid != os.getuid():
        raise UserError(
            f"refusing lock directory {path}: it is owned by uid {info.st_uid}, "
            f"not by this user (uid {os.getuid()})"
        )
    if info.st_mode & 0o022:
        raise UserError(f"refusing lock directory {path}: it is writable by others")
    _check_parent(parent or ".", path)
    return path


def _check_parent(parent: str, path: str) -> None:
    """Whoever may rename entries in the parent could swap the lock directory out."""
    info = os.stat(parent)
    foreign = info.st_uid not in (0, os.getuid())
    open_to_others = info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX
    if foreign or open_to_others:
        raise UserError(
            f"refusing lock directory {path}: its parent {parent} is "
            f"{'owned by another user' if foreign else 'writable by others'}"
        )


def use_lockdir(path: str | None) -> None:
    """Set the lock directory that `maybe_acquire_lock` uses (the CLI does this from config)."""
    global _lockdir
    _lockdir = path


def lock_path(lockdir: str, check_name: str, flock_id: Any = None) -> str:
    suffix = "" if flock_id is None else f".{flock_id}"
    return os.path.join(lockdir, f"{check_name}{suffix}.lock".replace("/", "_"))


def maybe_acquire_lock(check_name: str, flock_id: Any = None) -> tuple[str, Any]:
    """Take the lock for `check_name` (and `flock_id`), without waiting.

    Returns `('OK', {'lock': path})` when the lock is now held by this process, or
    `('CRITICAL', data)` when it is not, with the exception's information in `data`.
    Give each of N concurrent instances of a check its own `flock_id`.
    """
    import fcntl

    key = (check_name, None if flock_id is None else str(flock_id))
    path = None
    try:
        lockdir = prepare_lockdir(_lockdir or default_lockdir())
        path = lock_path(lockdir, check_name, flock_id)
        if key in _HELD:
            return OK, {"lock": path}
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
    except BlockingIOError as exc:
        return CRITICAL, {
            "error": f"check {check_name} is already running (lock {path} is held)",
            "exception": type(exc).__name__,
            "message": str(exc),
            "lock": path,
        }
    except (OSError, UserError) as exc:
        return CRITICAL, {
            "error": f"cannot take the lock of check {check_name}: {exc}",
            "exception": type(exc).__name__,
            "message": str(exc),
            "lock": path,
        }
    _HELD[key] = fd
    return OK, {"lock": path}


def held_descriptors() -> tuple[int, ...]:
    return tuple(_HELD.values())


def release_lock(check_name: str, flock_id: Any = None) -> None:
    """Release a lock taken by `maybe_acquire_lock` (process exit releases it too)."""
    fd = _HELD.pop((check_name, None if flock_id is None else str(flock_id)), None)
    if fd is not None:
        os.close(fd)
