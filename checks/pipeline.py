"""Checks on accre-monitor's own shipping of results."""

from accre_monitor import monitor_command
from accre_monitor.status import CRITICAL, OK, UNKNOWN, WARNING, worst

from ._options import OptionError, bad_options, check_known, number

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
    """Backlog of the local spool: results not yet delivered to their stores.

    Alerts when shipping has stalled: a store down for long, a broken config, records
    refused for good. Reads the spool named by the config (`[spool] path`).

    Options:
      --backlog_warning N   WARNING when an output has N or more spooled records (default 100)
      --backlog_critical N  CRITICAL at N or more (default 1000)
      --age_warning SECS    WARNING when an output's oldest spooled record is SECS seconds
                            old or older (default 900)
      --age_critical SECS   CRITICAL at SECS or older (default 3600)
      --dead_warning N      WARNING when there are N or more dead letters (default 1)
      --dead_critical N     CRITICAL at N or more dead letters (default: never)
      --config PATH         read this config file instead of the usual lookup

    Status: the worst over all outputs; OK when nothing is spooled (or no spool exists).
    Data: {"spool": path, "outputs": {NAME: {"spooled", "oldest_age", "due",
    "dead_letters", "status"}}, "dropped": records dropped at the size cap so far}.
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
    except OptionError as exc:
        return bad_options("SPOOL", exc)

    from accre_monitor.config import load_config
    from accre_monitor.pipeline.spool import Spool

    spool = None
    try:
        spool = Spool.from_config(load_config(opts.get("config")))
        stats = spool.stats() if spool.exists() else {}
        dropped = spool.dropped() if spool.exists() else 0
    except Exception as exc:  # a spool that cannot be read is itself news
        return UNKNOWN, {"error": str(exc)}, f"SPOOL UNKNOWN - cannot read the spool: {exc}"
    finally:
        if spool is not None:
            spool.close()

    status = OK
    problems = []
    for output, row in sorted(stats.items()):
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
            problems.append(
                f"{output} {row['spooled']} spooled, oldest "
                f"{values['age']:.0f}s, {row['dead_letters']} dead"
            )
    total = sum(row["spooled"] for row in stats.values())
    summary = "; ".join(problems) if problems else f"{total} records spooled"
    data = {"spool": spool.path, "outputs": stats, "dropped": dropped}
    return status, data, f"SPOOL {status} - {summary}"
