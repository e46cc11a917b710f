"""Checks on accre-monitor's own shipping of results."""

from accre_monitor import Option, monitor_command, run_config
from accre_monitor.status import CRITICAL, OK, WARNING, worst


def _limit(name: str, default: int | None, minimum: int, help: str, metavar: str = "N") -> Option:
    return Option(name, float, default, help, metavar=metavar, minimum=minimum)


OPTIONS = [
    _limit("backlog_warning", 100, 1, "WARNING when an output has N or more spooled records"),
    _limit("backlog_critical", 1000, 1, "CRITICAL at N or more"),
    _limit(
        "age_warning",
        900,
        0,
        "WARNING when an output's oldest spooled record is SECS seconds old or older",
        "SECS",
    ),
    _limit("age_critical", 3600, 0, "CRITICAL at SECS or older", "SECS"),
    _limit("dead_warning", 1, 1, "WARNING when there are N or more dead letters"),
    _limit("dead_critical", None, 1, "CRITICAL at N or more dead letters (default: never)"),
    Option("config", str, help="read this config file instead of the run's", metavar="PATH"),
]


@monitor_command(label="SPOOL", options=OPTIONS)
def spool_health(opts: dict) -> tuple:
    """Shipping of results: the spool's backlog, and every delivery setting of the config.

    Alerts when shipping has stalled (a store down for long, records refused for good) and
    when delivery is misconfigured, once per node instead of on every check: a bad setting
    of an output or of `[spool]`/`[bus]`, an output's missing client package, a corrupt
    spool file set aside. Reads the configuration of its own run (`accre-monitor --config
    PATH spool_health` looks at PATH) and the spool it names (`[spool] path`); every output
    the config defines is checked, whatever `--outputs` a run names.

    Status: CRITICAL for a delivery setting that is wrong, a spool that cannot be read, or a
    corrupt spool file set aside (delete it once inspected to clear the alert); otherwise the
    worst over all outputs; OK when nothing is spooled (or no spool exists).
    Data: {"spool": path, "outputs": {NAME: {"spooled", "oldest_age", "due", "next_due",
    "dead_letters", "expired", "status"}}, "dropped": records dropped at the size cap so far,
    "problems": [...], "set_aside": [...]}.
    """
    limits = {
        kind: (opts[f"{kind}_warning"], opts[f"{kind}_critical"])
        for kind in ("backlog", "age", "dead")
    }
    config_path = opts["config"]

    from accre_monitor.config import load_config
    from accre_monitor.pipeline.report import read_spool
    from accre_monitor.redaction import scrub

    config = load_config(config_path) if config_path else run_config()
    report = read_spool(config.spool)
    output_problems = [*_bus_problems(config), *_output_problems(config)]
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


def _bus_problems(config) -> list[str]:
    """Why the configured bus cannot work here (the RabbitMQ bus without pika), if so."""
    if config.bus["kind"] != "rabbitmq":
        return []
    from accre_monitor.pipeline.amqp import PIKA_MISSING, pika_installed

    return [] if pika_installed() else [PIKA_MISSING]


def _output_problems(config) -> list[str]:
    """Why each output the config defines cannot be built, if it cannot, and why one that
    renders in the check's process cannot work here (a file it cannot write)."""
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
            output = build_output(name, config)
            if is_synchronous(name):  # one that writes a file says whether it can
                problems += getattr(output, "problems", list)()
                continue
            output.close()
        except (ConfigError, UserError) as exc:
            # a synchronous output of this very run already reported it, "; using the defaults"
            if not (is_synchronous(name) and any(p.startswith(str(exc)) for p in config.problems)):
                problems.append(str(exc))
        except Exception as exc:  # an output's own bug must not hide the rest of the report
            problems.append(f"output {name} cannot be built: {type(exc).__name__}: {exc}")
    return problems
