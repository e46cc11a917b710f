"""Running a check so that nothing it does can break the run.

With a timeout, the check runs in a forked child process: a check stuck in a
system call (a hung NFS mount is the classic) is killed, or abandoned if the kernel
will not let it die, and the parent still reports in time. The child sends its result
framed by its length, so the parent has it as soon as it is complete, even while a
process the check left running (a daemon it started) still holds the pipe. The child's
stdout and stderr are one pipe that the parent relays to its own stderr until the child
has exited: a stray `print` cannot corrupt what Nagios reads, and a daemon left behind
never holds accre-monitor's stdout or stderr open (once the check has returned, its
output is no longer relayed).

With a timeout of 0 the check runs in-process (handy under a debugger). Its stdout,
the descriptor as well as `sys.stdout`, points at stderr while it runs, so `print`
and `os.write(1, ...)` still cannot corrupt the result. What in-process mode cannot
guard: a check that calls `os._exit` ends the run without a record, a hang is never
stopped, and a child process the check leaves running keeps stderr open.
"""

from __future__ import annotations

import os
import select
import time

from accre_monitor.record import (
    BadReturn,
    clean_text,
    exception_result,
    failure_result,
    normalize_return,
    safe_repr,
)

# The `signal` module would pull in `enum` on every run just for this constant.
SIGKILL = 9
HEADER = 8  # bytes of the big-endian payload length in front of the result
CHUNK = 65536
# Where pidfd_open is missing (Linux < 5.3), how soon and how often to look for the exit.
FIRST_NAP = 0.00005
EXIT_POLL = 0.02

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Result = tuple[str, Any, str | None, str | None, dict | None]
    from accre_monitor.registry import CheckFunction


def run_in_process(func: CheckFunction, options: dict[str, Any]) -> Result:
    """Call the check in this process, its stdout (descriptor and `sys.stdout`) sent to stderr."""
    import sys

    saved_stdout = sys.stdout
    _flush(saved_stdout)  # what was written before the check keeps its place
    saved_fd = _dup_or_none(1)
    try:
        _point_stdout_at_stderr()
        sys.stdout = sys.stderr
        return _call(func, options)
    finally:
        # Text the check wrote through an earlier reference to sys.stdout goes to stderr too.
        _flush(saved_stdout, sys.stdout)
        sys.stdout = saved_stdout
        if saved_fd is None:
            os.close(1)
        else:
            os.dup2(saved_fd, 1)
            os.close(saved_fd)


def _call(func: CheckFunction, options: dict[str, Any]) -> Result:
    """Call the check and validate its return; exceptions become UNKNOWN results."""
    try:
        retval = func(options)
    except (Exception, SystemExit) as exc:
        import traceback

        return exception_result(exc, traceback.format_exc())
    try:
        return normalize_return(retval)
    except BadReturn as exc:
        return failure_result(str(exc), {"returned": safe_repr(retval)})
    except Exception as exc:  # noqa: BLE001 - a value of the check's own making may fail any way
        return failure_result(
            f"check returned a value that cannot be examined: {type(exc).__name__}",
            {"returned": safe_repr(retval)},
        )


def _flush(*streams: Any) -> None:
    for stream in streams:
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # closed or broken: nothing more to do for it
            pass


def _dup_or_none(fd: int) -> int | None:
    try:
        return os.dup(fd)
    except OSError:  # closed: nothing to restore
        return None


def _point_stdout_at_stderr() -> None:
    try:
        os.dup2(2, 1)
    except OSError:  # no stderr either: the check's output goes nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)


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
    import json  # noqa: F401 - before the fork, so the child inherits it, not imports it again
    import sys

    _open_std_fds()
    _flush(sys.stdout, sys.stderr)  # else the child would hold, and might write, a copy
    result_r, result_w = os.pipe()
    output_r, output_w = os.pipe()
    # Set up before the fork: each page the parent writes while the child lives gets copied.
    watch = _Watch(result_r, output_r)
    pid = os.fork()
    if pid == 0:  # child
        _child(func, options, result_w, output_w, (result_r, output_r, *keep_fds))
    os.close(result_w)
    os.close(output_w)
    try:
        wait_status = watch.run(pid, started + timeout)
        watch.drain_output()
    except BaseException:  # interrupted: the check must not outlive the run
        if not watch.reaped:  # once reaped, its pid may belong to another process
            _kill(pid)
        raise
    finally:
        os.close(result_r)
        os.close(output_r)
    runtime = time.perf_counter() - started
    if wait_status is None:
        _kill(pid)
    return _outcome(watch, wait_status, timeout), runtime


def _outcome(watch: _Watch, wait_status: int | None, timeout: float) -> Result:
    """The check's own result when it arrived whole, else UNKNOWN saying what went wrong."""
    payload = watch.payload()
    if payload is not None:
        return decode_result(payload)
    if wait_status is None:
        return failure_result(f"timed out after {_seconds(timeout)} s", {"timeout": timeout})
    if watch.received:
        return failure_result(
            f"check process ended with an incomplete result ({_describe(wait_status)})",
            {"wait_status": wait_status, "received_bytes": len(watch.received)},
        )
    return failure_result(
        f"check process ended without a result ({_describe(wait_status)})",
        {"wait_status": wait_status},
    )


def _open_std_fds() -> None:
    """Give a closed stdout or stderr /dev/null, so the pipes never take their numbers."""
    for fd in (1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def decode_result(payload: bytes) -> Result:
    """The (status, data, short, long, perf) the child sent, or UNKNOWN saying it cannot be
    read."""
    import json

    from accre_monitor.status import STATUSES

    try:
        status, data, short, long, perf = json.loads(payload)
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        for text in (short, long):
            if text is not None and not isinstance(text, str):
                raise ValueError(f"text of type {type(text).__name__}")
        if perf is not None and not isinstance(perf, dict):
            raise ValueError(f"performance data hints of type {type(perf).__name__}")
    except Exception as exc:  # noqa: BLE001 - whatever arrived, the run must report
        return failure_result(
            f"check process sent a result that cannot be decoded: {type(exc).__name__}",
            {"reason": clean_text(str(exc))[:1000], "received_bytes": len(payload)},
        )
    return status, data, short, long, perf


def _child(
    func: CheckFunction, options: dict[str, Any], result_fd: int, output_fd: int, close_fds: tuple
) -> None:
    """Run the check, send its validated result, and leave without cleanup handlers."""
    code = 0
    try:
        for fd in close_fds:
            os.close(fd)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        import sys

        sys.stdout = sys.stderr
        try:
            payload = _encode(_call(func, options))
        except Exception as exc:  # noqa: BLE001 - report it rather than end without a result
            payload = _encode(
                failure_result(f"check result cannot be sent: {type(exc).__name__}", {})
            )
        _flush(sys.stdout, sys.stderr, sys.__stdout__)  # os._exit would drop buffered output
        view = memoryview(payload)
        while view:
            view = view[os.write(result_fd, view) :]
    except BaseException:  # noqa: BLE001 - the child must never return into the parent's code
        code = 70
    finally:
        os._exit(code)


def _encode(result: Result) -> bytes:
    from accre_monitor.record import to_json

    body = to_json(list(result)).encode()
    return len(body).to_bytes(HEADER, "big") + body


class _Watch:
    """The parent's side of a forked check: collects the framed result, relays its output.

    The result is complete when its length says so; the output pipe is relayed to our
    stderr until the check process exits, whoever else (a daemon it started) still holds it.
    """

    def __init__(self, result_fd: int, output_fd: int) -> None:
        self.result_fd = result_fd
        self.output_fd = output_fd
        self.received = bytearray()
        self.pending = b""  # output read but not yet written to stderr
        self.stderr_ok = True
        self.nap = FIRST_NAP
        self.pidfd: int | None = None
        self.reaped = False
        self.poller = select.poll()
        self.poller.register(result_fd, select.POLLIN)
        self.poller.register(output_fd, select.POLLIN)

    def payload(self) -> bytes | None:
        """The result's bytes once complete, else None."""
        if len(self.received) < HEADER:
            return None
        end = HEADER + int.from_bytes(self.received[:HEADER], "big")
        return bytes(self.received[HEADER:end]) if len(self.received) >= end else None

    def run(self, pid: int, deadline: float) -> int | None:
        """Wait for the child to exit; its wait status, or None when the deadline passed first."""
        try:
            self.pidfd = os.pidfd_open(pid)  # readable once the child has exited
            self.poller.register(self.pidfd, select.POLLIN)
        except (AttributeError, OSError):
            pass
        try:
            while True:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None
                for fd, events in self._events(remaining):
                    if fd == self.result_fd:
                        self._read_result()
                    elif fd == self.output_fd:
                        self._read_output()
                    elif fd == 2:
                        self._write_output(events)
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:  # SIGCHLD ignored by whoever started us: the
                    done, status = pid, 0  # kernel reaped the child, its status is gone
                if done:
                    self.reaped = True
                    self._read_result_left()
                    return status
        finally:
            if self.pidfd is not None:
                os.close(self.pidfd)

    def _events(self, remaining: float) -> list[tuple[int, int]]:
        """Wait for events, at most `remaining` s; without a pidfd, briefly after each event.

        The child's exit then shows only to waitpid: its pipes close just before it
        becomes a zombie, so after an event the next look comes within microseconds.
        """
        if self.pidfd is not None:
            return self.poller.poll(remaining * 1000)
        wait = min(remaining, self.nap)
        self.nap = min(self.nap * 2, EXIT_POLL)
        if wait < 0.001:  # poll counts in milliseconds
            time.sleep(wait)
            wait = 0
        ready = self.poller.poll(wait * 1000)
        if ready:
            self.nap = FIRST_NAP
        return ready

    def _read_result(self) -> None:
        chunk = os.read(self.result_fd, CHUNK)
        self.received += chunk
        if not chunk or self.payload() is not None:
            self.poller.unregister(self.result_fd)

    def _read_result_left(self) -> None:
        """What the exited child wrote is all in the pipe: take it without waiting for EOF."""
        if self.payload() is not None:
            return
        probe = select.poll()
        probe.register(self.result_fd, select.POLLIN)
        while self.payload() is None and probe.poll(0):
            chunk = os.read(self.result_fd, CHUNK)
            if not chunk:
                return
            self.received += chunk

    def _read_output(self) -> None:
        """Take output from the check, and hold it until stderr can take it without blocking."""
        chunk = os.read(self.output_fd, CHUNK)
        if not chunk:
            self.poller.unregister(self.output_fd)
            return
        if not self.stderr_ok:
            return
        self.pending = chunk
        self.poller.unregister(self.output_fd)
        self.poller.register(2, select.POLLOUT)

    def _write_output(self, events: int) -> None:
        """Relay the held output: a PIPE_BUF at a time, which a writable pipe takes at once."""
        if events & select.POLLOUT:
            try:
                written = os.write(2, self.pending[: select.PIPE_BUF])
                self.pending = self.pending[written:]
            except OSError:
                self.stderr_ok = False
        else:  # stderr closed or broken: drop the output from now on
            self.stderr_ok = False
        if self.pending and self.stderr_ok:
            return
        self.pending = b""
        self.poller.unregister(2)
        self.poller.register(self.output_fd, select.POLLIN)

    def drain_output(self) -> None:
        """Relay what the check wrote before it exited, as far as stderr takes it now."""
        probe = select.poll()
        probe.register(self.output_fd, select.POLLIN)
        stderr = select.poll()
        stderr.register(2, select.POLLOUT)
        for _ in range(64):  # more than a pipe holds; a daemon writing on cannot keep us here
            if not self.pending:
                if not probe.poll(0):
                    return
                self.pending = os.read(self.output_fd, CHUNK)
                if not self.pending:
                    return
            ready = stderr.poll(0)
            if not ready or not ready[0][1] & select.POLLOUT:
                return
            try:
                written = os.write(2, self.pending[: select.PIPE_BUF])
            except OSError:
                return
            self.pending = self.pending[written:]


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
