"""Run a piece of code as another, unprivileged user, from tests that run as root."""

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

OTHER = 65534  # nobody
needs_root = pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")


def run_as(uid: int, func: Callable[[], str], groups: tuple[int, ...] = ()) -> str:
    """`func()` in a forked child that has become `uid`, with only the supplementary
    `groups` (none by default): what it returned.

    A fork rather than a new interpreter: that user may not be able to reach this Python.
    An exception in the child comes back as its type and message.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        answer = "child failed"
        try:
            os.close(read_end)
            os.setgroups(list(groups))
            os.setgid(uid)
            os.setuid(uid)
            answer = func()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent instead
            answer = f"{type(exc).__name__}: {exc}"
        finally:
            os.write(write_end, answer.encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read().decode()
    assert os.waitpid(pid, 0)[1] == 0
    return answer


def shared_directory() -> Iterator[Path]:
    """For a fixture: a sticky directory directly in /tmp, like /tmp, that any user can reach."""
    path = Path(tempfile.mkdtemp(prefix="accre-test-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)
