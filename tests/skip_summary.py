"""A pytest plugin: after pytest's own last line, how many tests were skipped because a server
they start is not installed here, and the one command that installs the servers.

A test skipped for a missing server says so with `missing_reason`, whose every reason names
`.ci/install-servers`; that is what is counted. Printed at unconfigure, the last thing pytest
does, so that it stays the last lines of `./run-tests` however long the run.
"""

from __future__ import annotations

import os
from typing import Any

MARK = ".ci/install-servers"  # in every reason missing_reason gives


def skipped_for_a_missing_server(report: Any) -> bool:
    """Whether a test report is a skip whose reason names the servers' install script."""
    if not report.skipped or getattr(report, "wasxfail", None) is not None:
        return False
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return MARK in reason


def summary_lines(skipped: int, as_root: bool) -> list[str]:
    """What to say last: nothing when no test was skipped for a missing server."""
    if not skipped:
        return []
    tests = "test was" if skipped == 1 else "tests were"
    command = MARK if as_root else f"sudo {MARK}"
    return [
        f"{skipped} integration {tests} skipped: a server they start is not installed here.",
        f"Install the servers with: {command}",
    ]


class SkipSummary:
    """Counts the tests skipped for a missing server, and says so after everything else."""

    def __init__(self) -> None:
        self.skipped: set[str] = set()

    def pytest_runtest_logreport(self, report: Any) -> None:
        if skipped_for_a_missing_server(report):
            self.skipped.add(report.nodeid)

    def pytest_unconfigure(self, config: Any) -> None:
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        if terminal is None:
            return
        lines = summary_lines(len(self.skipped), os.geteuid() == 0)
        if lines:
            terminal.write_line("")
        for line in lines:
            terminal.write_line(line, yellow=True, bold=True)


def pytest_configure(config: Any) -> None:
    if not hasattr(config, "workerinput"):  # one summary, from the controlling process
        config.pluginmanager.register(SkipSummary(), "skip-summary")
