"""`accre-monitor`: run one check, deliver its result, exit with the monitoring system's code."""

from __future__ import annotations

import sys

from accre_monitor.errors import UserError
from accre_monitor.status import EXITCODE_MAPS, UNKNOWN

USAGE = (
    "usage: accre-monitor [--config PATH] [--options JSON] [--outputs NAME,...]"
    " [--timeout SECONDS] CHECK [--key value ...]\n"
    "       accre-monitor -h | --version"
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


def main(argv: list[str] | None = None) -> NoReturn:
    sys.exit(run(sys.argv[1:] if argv is None else argv))


def run(argv: list[str]) -> int:
    """The whole command; returns the exit code. User errors are one line on stderr."""
    from accre_monitor.config import load_config
    from accre_monitor.options import parse_command_line

    unknown = EXITCODE_MAPS["nagios"][UNKNOWN]
    config = line = None
    try:
        line = parse_command_line(argv)
        if line.version:  # needs no config: it must work even when the config is broken
            return print_version()
        config = load_config(line.globals.get("config"))
        unknown = EXITCODE_MAPS[config.system][UNKNOWN]
        if line.check is None:
            if line.help:
                return print_overview(config)
            raise UserError("no check given; run `accre-monitor -h` for the list of checks")
        return run_check(config, line)
    except UserError as exc:
        report_unknown(str(exc), config, line)
        return unknown
    except KeyboardInterrupt:
        return unknown


def report_unknown(reason: str, config: Any, line: Any) -> None:
    """Say why the run is UNKNOWN on stderr and where Nagios looks: stdout.

    Rendered as an UNKNOWN record by the run's synchronous outputs when they are known
    (`nagios-stdout` prints `UNKNOWN - reason | {...}`), otherwise one plain line
    `ACCRE-MONITOR UNKNOWN - reason`.
    """
    from accre_monitor import log
    from accre_monitor.redaction import scrub

    reason = scrub(reason)  # stdout is Nagios', and Nagios shows it to everyone
    log.error(reason)
    try:
        if config is None:
            raise UserError(reason)
        from accre_monitor.options import parse_outputs
        from accre_monitor.outputs import is_synchronous
        from accre_monitor.pipeline.bus import emit_synchronous
        from accre_monitor.pipeline.wiring import destination
        from accre_monitor.record import build_record

        names = config.outputs
        if line is not None and "outputs" in line.globals:
            names = parse_outputs(line.globals["outputs"])
        shown = [destination(n, config) for n in dict.fromkeys(names) if is_synchronous(n)]
        name = (line.check if line is not None and line.check else None) or "accre-monitor"
        record = build_record(
            name, UNKNOWN, {"error": reason}, f"UNKNOWN - {reason}", node=config.node
        )
        shown = [d for d in shown if d.wants(record)]
        if not shown:
            raise UserError(reason)
        emit_synchronous(record, shown)
    except Exception:
        sys.stdout.write(f"ACCRE-MONITOR UNKNOWN - {' '.join(reason.split())}\n")
    try:  # noqa: SIM105 - contextlib is not worth importing on every run
        sys.stdout.flush()
    except OSError:
        pass


def run_check(config: Any, line: Any) -> int:
    """Find the check, take its lock, run it guarded, publish the result."""
    from accre_monitor.api import publish
    from accre_monitor.discovery import canonical, find_check
    from accre_monitor.options import build_payload, parse_outputs, parse_timeout
    from accre_monitor.pipeline.wiring import build_bus
    from accre_monitor.record import build_record, exception_result

    name = canonical(line.check)
    func = None
    result = None
    try:
        func = find_check(name, config.check_modules, config.auditor)
    except UserError:
        raise
    except Exception as exc:  # the check's module failed to import: report it as the check's result
        result = exception_result(exc)
    if func is None and result is None:
        raise UserError(unknown_check(line.check, config))
    if line.help:
        return print_check_help(name, func)
    options = build_payload(line.globals.get("options"), line.check_args)
    timeout = config.timeout
    if "timeout" in line.globals:
        timeout = parse_timeout(line.globals["timeout"])
    outputs = parse_outputs(line.globals["outputs"]) if "outputs" in line.globals else None
    bus = build_bus(config, outputs)
    from accre_monitor.config import set_run_config

    set_run_config(config)

    runtime = None
    if result is None:
        result = take_lock(config, name)
    if result is None:
        from accre_monitor.locking import held_descriptors, release_lock
        from accre_monitor.runner import run_guarded

        try:
            result, runtime = run_guarded(func, options, timeout, held_descriptors())
        finally:
            release_lock(name)
    record = build_record(name, *result, runtime=runtime, node=config.node)
    ttl = config.check_ttl(name)
    if ttl:  # freshness: no newer result within ttl seconds makes the state call it stale
        record["ttl"] = ttl
    return publish(config, record, bus)


def take_lock(config: Any, name: str) -> tuple | None:
    """None when the check may run (no lock configured, or lock taken); else its CRITICAL result."""
    if not config.lockdir:
        return None
    from accre_monitor.locking import (
        maybe_acquire_lock,
        prepare_lockdir,
        resolve_lockdir,
        use_lockdir,
    )

    use_lockdir(prepare_lockdir(resolve_lockdir(config.lockdir)))
    status, data = maybe_acquire_lock(name)
    if status == "OK":
        return None
    return status, data, f"CRITICAL: {data['error']}", None


def summary(func: Any) -> str:
    """A docstring's first paragraph, on one line."""
    doc = (func.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def print_overview(config: Any) -> int:
    from accre_monitor import log
    from accre_monitor.discovery import all_checks

    checks, problems = all_checks(config.check_modules, config.auditor)
    for problem in problems:
        log.warning(problem)
    width = max((len(name) for name in checks), default=0)
    lines = [
        USAGE,
        "",
        "Run a monitoring check, deliver its result to the configured outputs, and exit",
        "with the monitoring system's code for its status.",
        "",
        "options (before the check name):",
        "  -h, --help          this help; `accre-monitor CHECK -h` for a check's help",
        "  --config PATH       config file (default: $ACCRE_MONITOR_CONFIG, then",
        "                      ~/.config/accre-monitor/config.toml,",
        "                      then /etc/accre-monitor/config.toml)",
        "  --options JSON      the check's options as a JSON object",
        "  --outputs NAME,...  outputs for this run, instead of the configured ones",
        "  --timeout SECONDS   stop the check after this long (0: no limit)",
        "  --version           the installed version of accre-monitor",
        "",
        "check options (after the check name): --key value, --key=value, --flag",
        "",
        "checks:",
    ]
    lines += [f"  {name:<{width}}  {summary(func)}".rstrip() for name, func in checks.items()]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def print_version() -> int:
    from accre_monitor.version import version_line

    sys.stdout.write(version_line("accre-monitor") + "\n")
    return 0


def print_check_help(name: str, func: Any) -> int:
    from accre_monitor.check_options import help_text

    sys.stdout.write(help_text(name, func))
    return 0


def unknown_check(given: str, config: Any) -> str:
    """`unknown check 'disk_usag'; did you mean disk_usage?`, or where to find the list."""
    import difflib

    from accre_monitor.discovery import check_names

    names = check_names(config.check_modules, config.auditor)
    near = difflib.get_close_matches(given.replace("-", "_"), names, n=3, cutoff=0.6)
    if not near:
        return f"unknown check {given!r}; run `accre-monitor -h` for the list"
    return f"unknown check {given!r}; did you mean {' or '.join(near)}?"
