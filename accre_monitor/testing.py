"""Helpers for people writing checks: run a check, get its record; no stdout, no exit.

from accre_monitor.testing import run_check
record = run_check(my_check, {"warning": 5})
assert record["status"] == "WARNING"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from accre_monitor.record import build_record

if TYPE_CHECKING:
    from accre_monitor.record import Record
    from accre_monitor.registry import CheckFunction


def run_check(
    check: CheckFunction | str,
    options: dict[str, Any] | None = None,
    timeout: float = 0,
    check_modules: list[str] | None = None,
) -> Record:
    """Run `check` (a function, or a name found like the CLI finds it) guarded, as the CLI would.

    Exceptions, bad return values and (with `timeout` > 0) hangs become UNKNOWN records,
    exactly as on the command line; nothing exits, and what the check prints goes to stderr.
    """
    from accre_monitor.runner import run_guarded

    if isinstance(check, str):
        from accre_monitor.discovery import canonical, find_check

        found = find_check(canonical(check), check_modules or [], auditor=True)
        if found is None:
            raise LookupError(f"unknown check {check!r}")
        check = found
    result, runtime = run_guarded(check, dict(options or {}), timeout)
    return build_record(check.__name__, *result, runtime=runtime)
