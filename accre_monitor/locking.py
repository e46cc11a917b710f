"""One run of a check at a time: flock(2) locks in a private lock directory.

A check stuck on a hung file system must not pile up a new copy every minute. The
default lock directory, /tmp/<user>/accre-monitor, lives in shared sticky /tmp, where
another user may have planted /tmp/<user> (a directory or a link of theirs) to hold or
swap our locks. So the path is walked from / without following links, and refused
before anything is created when a directory on the way belongs to another user or is
writable by others without the sticky bit, or a link on the way belongs to neither root
nor this user; the lock directory itself must be this user's, not a link, and writable by
no one else.
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
    """Make sure the lock directory is safe to use, creating it (0700) when missing.

    The path is walked from / one component at a time, each opened without following
    links, and everything is checked before anything is created: whoever may rename
    entries in a directory on the way could swap the lock directory out.
    """
    start = path if path.startswith("/") else os.path.join(os.getcwd(), path)
    fd = _walk(_components(start), path)
    try:
        _check_lockdir(os.fstat(fd), path)
    finally:
        os.close(fd)
    return path


_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_DETOURS = 40  # links followed plus creation races lost (the kernel follows 40 links)


def _components(path: str) -> list[str]:
    """The names of `path`, last first (the walk pops them)."""
    return [name for name in reversed(path.split("/")) if name not in ("", ".")]


def _walk(pending: list[str], path: str) -> int:
    """Descend from / through `pending`; return the open descriptor of the last directory.

    A symlink on the way is followed only when root or this user owns it; a missing
    component is created 0700, which happens only once every one before it was checked.
    """
    fd, shown, detours = os.open("/", _DIRECTORY_FLAGS), "/", 0
    try:
        while pending:
            _check_parent(os.fstat(fd), shown, path)
            name = pending.pop()
            here = os.path.join(shown, name)
            try:
                info = os.lstat(name, dir_fd=fd)
            except FileNotFoundError:
                info = None
            if info is None or stat.S_ISLNK(info.st_mode):
                detours += 1
                if detours > _MAX_DETOURS:
                    raise UserError(f"refusing lock directory {path}: too many symbolic links")
            if info is None:
                _make_directory(fd, name, path)
                pending.append(name)  # check what is there now, whoever made it
            elif stat.S_ISLNK(info.st_mode):
                _check_link(info, here, path, last=not pending)
                target = os.readlink(name, dir_fd=fd)
                pending.extend(_components(target))
                if target.startswith("/"):
                    os.close(fd)
                    fd, shown = os.open("/", _DIRECTORY_FLAGS), "/"
            elif not stat.S_ISDIR(info.st_mode):
                what = here if pending else "it"
                raise UserError(f"refusing lock directory {path}: {what} is not a directory")
            else:
                child = os.open(name, _DIRECTORY_FLAGS, dir_fd=fd)
                os.close(fd)
                fd, shown = child, here
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError):
            raise UserError(f"cannot use lock directory {path}: {exc.strerror or exc}") from None
        raise
    return fd


def _check_link(info: os.stat_result, here: str, path: str, last: bool) -> None:
    """The lock directory itself is never a link; a link on the way must be root's or ours."""
    if last:
        raise UserError(f"refusing lock directory {path}: it is a symlink")
    if info.st_uid not in (0, os.getuid()):
        raise UserError(
            f"refusing lock directory {path}: {here} is a symlink owned by uid {info.st_uid}, "
            "not by root or this user"
        )


def _make_directory(fd: int, name: str, path: str) -> None:
    try:
        os.mkdir(name, 0o700, dir_fd=fd)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UserError(f"cannot create lock directory {path}: {exc.strerror or exc}") from None


def _check_parent(info: os.stat_result, shown: str, path: str) -> None:
    """A directory on the way must belong to root or this user, and be sticky if others write."""
    if info.st_uid not in (0, os.getuid()):
        raise UserError(
            f"refusing lock directory {path}: {shown} is owned by uid {info.st_uid}, "
            "not by root or this user"
        )
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise UserError(f"refusing lock directory {path}: {shown} is writable by others")


def _check_lockdir(info: os.stat_result, path: str) -> None:
    """The lock directory itself must be this user's and writable by no one else."""
    if info.st_uid != os.getuid():
        raise UserError(
            f"refusing lock directory {path}: it is owned by uid {info.st_uid}, "
            f"not by this user (uid {os.getuid()})"
        )
    if info.st_mode & 0o022:
        raise UserError(f"refusing lock directory {path}: it is writable by others")


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
