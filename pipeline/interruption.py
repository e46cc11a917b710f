"""SIGTERM while a record is in flight: raise, so that the record is kept before the exit.

Nagios (or NRPE) gives up on a slow run with SIGTERM; the run must still spool its record.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Interrupted(KeyboardInterrupt):
    """SIGTERM arrived while records were in flight (handled like ^C by the CLI)."""


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(f"signal {signum}")


def interrupt_on_sigterm() -> Callable[[], Any]:
    """Make SIGTERM raise Interrupted; returns the function that puts the previous handler
    back."""
    import _signal  # the C module: `signal` would import enum for a run that needs none

    try:
        previous = _signal.signal(_signal.SIGTERM, _raise_interrupted)
    except ValueError:  # not the main thread: leave signals alone
        return lambda: None
    return lambda: _signal.signal(_signal.SIGTERM, previous)
