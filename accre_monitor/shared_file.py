"""A small file that many processes rewrite: read it, change it, replace it whole, under a lock.

Each writer takes an exclusive flock(2) on a lock file beside it (`PATH.lock`), reads the
current text, and writes the new text to `PATH.tmp` in the same directory, which it
fsyncs and renames over PATH. A reader opening PATH sees the old file or the new one,
never half of either; writers queue on the lock, so none loses another's change. The
lock file is opened read-only (flock needs no more), so users who may not write it can
still lock it; nobody holds it beyond a write, and a writer waits at most `wait` seconds.

The directory is not fsynced after the rename: after a power cut the file may be the
previous version, whole, which the next write replaces.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

LOCK_WAIT = 10.0  # seconds: a write takes milliseconds, so 50 runs at once fit many times over
FIRST_NAP = 0.0005
LONGEST_NAP = 0.02
NEW_FILE_MODE = 0o644  # node_exporter runs as another user and must read it


class SharedFileError(OSError):
    """The file could not be replaced; the message says which file and why, in one line."""


def replace_shared(
    path: str, change: Callable[[str], str | None], *, wait: float = LOCK_WAIT
) -> bool:
    """Replace the text of `path` by `change(current text)` ('' when there is no file yet).

    `change` returning None leaves the file as it is. Returns whether the file was replaced.
    The new file keeps the mode of the one it replaces (0644 for the first one).
    """
    lock = _lock(path, wait)
    try:
        current, mode = _read(path)
        text = change(current)
        if text is None:
            return False
        _write(path, text.encode("utf-8", "replace"), mode)
        return True
    finally:
        os.close(lock)


def _fail(path: str, why: str) -> SharedFileError:
    return SharedFileError(f"cannot write {path}: {why}")


def _why(exc: OSError) -> str:
    return str(exc.strerror or exc)


def _lock(path: str, wait: float) -> int:
    """The descriptor of the lock file, locked exclusively; SharedFileError after `wait` s."""
    import fcntl
    import time

    lock_path = path + ".lock"
    try:
        fd = os.open(
            lock_path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, NEW_FILE_MODE
        )
    except FileNotFoundError:
        directory = os.path.dirname(os.path.abspath(path))
        raise _fail(path, f"directory {directory} does not exist") from None
    except OSError as exc:
        raise _fail(path, f"cannot open its lock file {lock_path}: {_why(exc)}") from None
    deadline = time.monotonic() + wait
    nap = FIRST_NAP
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    why = f"its lock {lock_path} is held for more than {wait:g} s"
                    raise _fail(path, why) from None
                time.sleep(nap)
                nap = min(nap * 2, LONGEST_NAP)
    except BaseException:
        os.close(fd)
        raise


def _read(path: str) -> tuple[str, int]:
    """The current text and mode of `path`: ('', 0644) when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return "", NEW_FILE_MODE
    except OSError as exc:  # unreadable: replacing it would lose what it holds
        raise _fail(path, f"cannot read it: {_why(exc)}") from None
    try:
        mode = os.fstat(fd).st_mode & 0o777
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError as exc:
        raise _fail(path, f"cannot read it: {_why(exc)}") from None
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace"), mode


def _write(path: str, data: bytes, mode: int) -> None:
    """Write `data` to PATH.tmp, fsync it, rename it over `path` (the lock is held)."""
    tmp = path + ".tmp"
    try:
        try:  # noqa: SIM105 - left by a writer that died: a new one is made, whoever's it was
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise _fail(path, f"cannot create {tmp}: {_why(exc)}") from None
    try:
        try:
            os.fchmod(fd, mode)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException as exc:
        try:  # noqa: SIM105 - contextlib is not worth importing on every run
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _fail(path, _why(exc)) from None
        raise
