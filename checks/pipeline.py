"""Checks on accre-monitor's own shipping of results."""

from accre_monitor import monitor_command, run_config
from accre_monitor.status import CRITICAL, OK, WARNING, worst

from ._options import OptionError, bad_options, check_known, number, text

_OPTIONS = (
    "backlog_warning",
    "backlog_critical",
    "age_warning",
    "age_critical",
    "dead_warning",
    "dead_critical",
    "config",
)


@monitor_command
def spool_health(opts: dict) -> tuple:
    """Shipping of results: the spool's backlog, and every delivery setting of the config.

    Alerts when shipping has stalled (a store down for long, records refused for good) and
    when delivery is misconfigured, once per node instead of on every check: a bad setting
    of an output or of `[spool]`/`[bus]`, an output's missing client package, a corrupt
    spool file set aside. Reads the configuration of its own run (`accre-monitor --config
    PATH spool_health` looks at PATH) and the spool it names (`[spool] path`); every output
    the config defines is checked, whatever `--outputs` a run names.

    Options:
      --backlog_warning N   WARNING when an output has N or more spooled records (default 100)
      --backlog_critical N  CRITICAL at N or more (default 1000)
      --age_warning SECS    WARNING when an output's oldest spooled record is SECS seconds
                            old or older (default 900)
      --age_critical SECS   CRITICAL at SECS or older (default 3600)
      --dead_warning N      WARNING when there are N or more dead letters (default 1)
      --dead_critical N     CRITICAL at N or more dead letters (default: never)
      --config PATH         read this config file instead of the run's

    Status: CRITICAL for a delivery setting that is wrong, a spool that cannot be read, or a
    corrupt spool file set aside (delete it once inspected to clear the alert); otherwise the
    worst over all outputs; OK when nothing is spooled (or no spool exists).
    Data: {"spool": path, "outputs": {NAME: {"spooled", "oldest_age", "due", "next_due",
    "dead_letters", "expired", "status"}}, "dropped": records dropped at the size cap so far,
    "problems": [...], "set_aside": [...]}.
    """
    try:
        opts = check_known(opts, _OPTIONS)
        limits = {
            "backlog": (
                number(opts, "backlog_warning", 100, minimum=1),
                number(opts, "backlog_critical", 1000, minimum=1),
            ),
            "age": (
                number(opts, "age_warning", 900, minimum=0),
                number(opts, "age_critical", 3600, minimum=0),
            ),
            "dead": (
                number(opts, "dead_warning", 1, minimum=1),
                number(opts, "dead_critical", None, minimum=1),
            ),
        }
        config_path = text(opts, "config")
    except OptionError as exc:
        return bad_options("SPOOL", exc)

    from accre_monitor.config import load_config
    from accre_monitor.pipeline.report import read_spool
    from accre_monitor.redaction import scrub

    config = load_config(config_path) if config_path else run_config()
    report = read_spool(config.spool)
    output_problems = _output_problems(config)
    problems = [*config.problems, *output_problems]
    if report.corrupt or report.error:
        problems.append(report.corrupt or f"cannot read the spool: {report.error}")
    problems += [
        f"corrupt spool set aside: {path} (inspect, then delete it)" for path in report.set_aside
    ]
    problems = [scrub(problem) for problem in problems]  # shown by Nagios, shipped to stores

    status = CRITICAL if problems else OK
    backlog = []
    for output, row in sorted(report.outputs.items()):
        values = {
            "backlog": row["spooled"],
            "age": row["oldest_age"] or 0,
            "dead": row["dead_letters"],
        }
        row_status = OK
        for key, (warn, crit) in limits.items():
            if crit is not None and values[key] >= crit:
                row_status = worst(row_status, CRITICAL)
            elif warn is not None and values[key] >= warn and (key != "age" or row["spooled"]):
                row_status = worst(row_status, WARNING)
        row["status"] = row_status
        status = worst(status, row_status)
        if row_status != OK:
            backlog.append(
                f"{output} {row['spooled']} spooled, oldest "
                f"{values['age']:.0f}s, {row['dead_letters']} dead"
            )
    total = sum(row["spooled"] for row in report.outputs.values())
    summary = "; ".join([*problems, *backlog]) or f"{total} records spooled"
    data = {**report.as_dict(), "problems": problems}
    long = "\n".join(problems) if len(problems) > 1 else None
    return status, data, f"SPOOL {status} - {summary}", long


def _output_problems(config) -> list[str]:
    """Why each remote output the config defines cannot be built, if it cannot."""
    from accre_monitor.errors import ConfigError, UserError
    from accre_monitor.outputs import PRESETS, build_output, is_known_output, is_synchronous
    from accre_monitor.pipeline.wiring import filter_stages

    problems = []
    names = config.defined_outputs()
    for section in list(names):  # [outputs.slack]: checked as the outputs reading it are
        if not is_known_output(section):
            users = [n for n, (s, _) in PRESETS.items() if s == section and n not in names]
            names += users[:1]
    for name in names:
        try:
            if not is_known_output(name):
                continue
            filter_stages(name, config)  # a bad filter setting lands in config.problems
            if is_synchronous(name):
                continue
            build_output(name, config).close()
        except (ConfigError, UserError) as exc:
            problems.append(str(exc))
        except Exception as exc:  # an output's own bug must not hide the rest of the report
            problems.append(f"output {name} cannot be built: {type(exc).__name__}: {exc}")
    return problems
