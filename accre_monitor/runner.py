"""Running a check so that nothing it does can break the run.

With a timeout, the check runs in a forked child process: a check stuck in a
system call (a hung NFS mount is the classic) is killed, or abandoned if the kernel
will not let it die, and the parent still reports in time. The child's stdout is
pointed at stderr, so a check that prints cannot corrupt what Nagios reads.
With a timeout of 0 the check runs in-process (handy under a debugger).
"""

from __future__ import annotations

import os
import select
import time

from accre_monitor.record import BadReturn, exception_result, failure_result, normalize_return

# The `signal` module would pull in `enum` on every run just for this constant.
SIGKILL = 9

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Result = tuple[str, Any, str | None, str | None, dict | None]
    from accre_monitor.registry import CheckFunction


def run_in_process(func: CheckFunction, options: dict[str, Any]) -> Result:
    """Call the check and validate its return; exceptions become UNKNOWN results."""
    try:
        retval = func(options)
    except (Exception, SystemExit) as exc:
        import traceback

        return exception_result(exc, traceback.format_exc())
    try:
        return normalize_return(retval)
    except BadReturn as exc:
        return failure_result(str(exc), {"returned": repr(retval)[:1000]})


def run_guarded(
    func: CheckFunction, options: dict[str, Any], timeout: float, keep_fds: tuple[int, ...] = ()
) -> tuple[Result, float]:
    """Run the check with a deadline; return its validated result and its wall-clock runtime.

    `keep_fds` are descriptors the parent holds (such as the check's lock) that the
    child must close, so the lock dies with the parent and never with the child.
    """
    started = time.perf_counter()
    if not timeout:
        return run_in_process(func, options), time.perf_counter() - started
    import json  # before the fork, so the child inherits it instead of importing it again

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        _child(func, options, read_fd, write_fd, keep_fds)
    os.close(write_fd)
    try:
        payload, finished = _read_until(read_fd, started + timeout)
    finally:
        os.close(read_fd)
    runtime = time.perf_counter() - started
    if not finished:
        _kill(pid)
        return failure_result(
            f"timed out after {_seconds(timeout)} s", {"timeout": timeout}
        ), runtime
    _, wait_status = os.waitpid(pid, 0)
    if not payload:
        return failure_result(
            f"check process ended without a result ({_describe(wait_status)})",
            {"wait_status": wait_status},
        ), runtime
    status, data, short, long, perf = json.loads(payload)
    return (status, data, short, long, perf), runtime


def _child(
    func: CheckFunction, options: dict[str, Any], read_fd: int, write_fd: int, keep_fds: tuple
) -> None:
    """Run the check, send its validated result as JSON, and leave without cleanup handlers."""
    code = 0
    try:
        os.close(read_fd)
        for fd in keep_fds:
            os.close(fd)
        os.dup2(2, 1)
        import sys

        sys.stdout = sys.stderr
        from accre_monitor.record import to_json

        payload = to_json(list(run_in_process(func, options))).encode()
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:  # noqa: BLE001 - the child must never return into the parent's code
        code = 70
    finally:
        os._exit(code)


def _read_until(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Everything written to `fd` until EOF, or (partial, False) when the deadline passes."""
    chunks = []
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            return b"".join(chunks), False
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def _kill(pid: int) -> None:
    """SIGKILL the child and reap it if it dies promptly; a child stuck in the kernel is left."""
    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(20):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.005)


def _describe(wait_status: int) -> str:
    if os.WIFSIGNALED(wait_status):
        return f"killed by signal {os.WTERMSIG(wait_status)}"
    return f"exit status {os.waitstatus_to_exitcode(wait_status)}"


def _seconds(value: float) -> str:
    return f"{value:g}"
