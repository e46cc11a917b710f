"""Small local SQLite files many processes write at once: the spool, an output's own state.

What they share: a private file (0600 in a 0700 directory), or one shared by a group in a
directory of that group (see `new_file_mode`), WAL mode, short `BEGIN
IMMEDIATE` transactions, `database is locked` retried with jitter until a busy timeout, and a
file SQLite finds corrupt renamed aside (with its -wal and -shm) so that a fresh one can
take over instead of failing every write forever.
"""

from __future__ import annotations

import os
import sqlite3
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

CORRUPT_MARK = ".corrupt-"
CORRUPTION_ERRORS = ("SQLITE_NOTADB", "SQLITE_CORRUPT")


def is_corruption(exc: BaseException) -> bool:
    """Whether SQLite says the file is not a database, or a damaged one."""
    return isinstance(exc, sqlite3.DatabaseError) and (
        getattr(exc, "sqlite_errorname", "") in CORRUPTION_ERRORS
        or "not a database" in str(exc)
        or "malformed" in str(exc)
    )


def is_busy(exc: BaseException) -> bool:
    """`database is locked` (or busy): another process holds the write lock right now."""
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


SHARED_DIRECTORY = 0o2070  # setgid and group rwx: `install -d -g GROUP -m 2770 DIR`


def new_file_mode(directory: str) -> int:
    """The mode of a file made in `directory`: 0660 where the directory is shared by a group
    (setgid, so the file takes the directory's group, and group-writable), else 0600.

    One spool per node serves every user that runs checks (and the shipper): their group
    owns the directory, and each file any of them creates must stay writable by the others,
    whatever that user's umask. SQLite gives its -wal and -shm files the database's mode.
    """
    mode = os.stat(directory or ".").st_mode
    return 0o660 if mode & SHARED_DIRECTORY == SHARED_DIRECTORY else 0o600


def open_new_or_existing(path: str, flags: int) -> int:
    """A descriptor on `path`, created with `new_file_mode` (exactly, despite the umask)
    if it does not exist; an existing file keeps the mode it was given."""
    mode = new_file_mode(os.path.dirname(path))
    while True:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            try:
                return os.open(path, flags)
            except FileNotFoundError:  # removed meanwhile (set aside): make it afresh
                continue
        if mode != 0o600:
            os.fchmod(fd, mode)
        return fd


def create_private(path: str) -> None:
    """Make sure `path` exists: readable by this user only, in a directory only it enters
    (made 0700 when missing), or by the group of a shared directory (`new_file_mode`)."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    if not os.path.exists(path):
        os.close(open_new_or_existing(path, os.O_WRONLY | os.O_CLOEXEC))


def retry_busy(
    operation: Callable[[], Any],
    busy_timeout: float,
    on_corruption: Callable[[BaseException], None] | None = None,
) -> Any:
    """Run `operation`, retrying while the database is locked (until `busy_timeout` has
    passed), and once more after `on_corruption` when the file turns out to be corrupt.

    SQLite's own busy handler covers most waits; a few cases (a WAL reset, a lock upgrade)
    return SQLITE_BUSY at once, and those are retried here with jitter.
    """
    deadline = time.monotonic() + busy_timeout
    delay = 0.005
    recovered = False
    while True:
        try:
            return operation()
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc) and on_corruption is not None and not recovered:
                on_corruption(exc)
                recovered = True
                continue
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
        import random  # only when there is contention: a lone writer never needs it

        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.25)


def set_aside(path: str) -> str:
    """Rename `path` and its -wal and -shm to `PATH.corrupt-STAMP-PID`; the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = f"{path}{CORRUPT_MARK}{stamp}-{os.getpid()}"
    os.rename(path, target)
    for suffix in ("-wal", "-shm"):
        try:  # noqa: SIM105 - contextlib costs a check run more than this whole module
            os.rename(path + suffix, target + suffix)
        except FileNotFoundError:
            pass
    return target


def set_aside_files(path: str) -> list[str]:
    """Files set aside as corrupt next to `path` (without their -wal and -shm)."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    prefix = base + CORRUPT_MARK
    return sorted(
        os.path.join(directory, name)
        for name in names
        if name.startswith(prefix) and not name.endswith(("-wal", "-shm"))
    )


class transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT`: take the write lock up front, so a transaction never
    has to upgrade a read lock (an upgrade that fails is not retried by SQLite)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: Any, *_: Any) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def run_script(db: sqlite3.Connection, script: str) -> None:
    """executescript() would COMMIT our transaction first; run the statements one by one."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
