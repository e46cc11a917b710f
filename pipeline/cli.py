"""`accre-pipeline`: ship results, and look after the spool and the broker's queues.

    accre-pipeline [--config PATH] status [--json]
    accre-pipeline [--config PATH] replay [--output NAME] [--due]
    accre-pipeline [--config PATH] dead-letters [list|retry|purge] [--output NAME]
    accre-pipeline [--config PATH] ship [--outputs NAME,...] [--metrics-listen HOST:PORT]
    accre-pipeline [--config PATH] topology
    accre-pipeline [--config PATH] overview [--json] [--node GLOB] [--check GLOB]
    accre-pipeline [--config PATH] silence add|list|remove ...
    accre-pipeline [--config PATH] forget --node NAME [--check NAME]
    accre-pipeline [--config PATH] serve [--listen HOST:PORT]
    accre-pipeline --version

The config is found as `accre-monitor` finds it (`--config PATH` may also follow the
command). A problem with a delivery setting is
reported in one line and the command goes on with the defaults.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, NoReturn

import argh
import orjson

from accre_monitor import log
from accre_monitor.config import load_config
from accre_monitor.errors import ConfigError, UserError
from accre_monitor.outputs import build_output, is_known_output, is_synchronous
from accre_monitor.pipeline import silence_cli
from accre_monitor.pipeline.amqp import (
    BrokerUnavailable,
    PikaMissing,
    connect,
    describe_urls,
    require_pika,
)
from accre_monitor.pipeline.broker_backlog import BROKER, BrokerForwarder, remote_outputs
from accre_monitor.pipeline.holdings import queue_report
from accre_monitor.pipeline.overview import overview
from accre_monitor.pipeline.replay import describe, terminal_progress
from accre_monitor.pipeline.replay import replay as run_replay
from accre_monitor.pipeline.report import read_spool
from accre_monitor.pipeline.serve import serve
from accre_monitor.pipeline.shipper import ship as run_shipper
from accre_monitor.pipeline.spool import Spool, SpoolCorrupt
from accre_monitor.pipeline.state_cli import forget
from accre_monitor.pipeline.topology import declare, queue_name, queue_specs, retry_queues
from accre_monitor.redaction import scrub, scrub_all
from accre_monitor.version import version_line

_config_path: str | None = None


def _config() -> Any:
    return load_config(_config_path)


def current_config() -> Any:
    """The config this command was given (`--config PATH`, or found as accre-monitor does)."""
    return _config()


def _spool(config: Any) -> Any:
    return Spool.from_config(config)


def _remote_outputs(config: Any, names: list[str]) -> list[Any]:
    """The outputs to replay to; one that cannot be built is reported and left out (its
    records stay spooled)."""
    outputs = []
    for name in names:
        if name == BROKER:
            outputs += _broker_forwarder(config)
            continue
        if not is_known_output(name):
            log.error(f"records spooled for an unknown output {name!r} are left in the spool")
            continue
        if is_synchronous(name):
            raise UserError(f"output {name} is not a remote output; nothing is spooled for it")
        try:
            outputs.append(build_output(name, config))
        except ConfigError as exc:
            config.problem(f"{exc}; records for it stay in the spool")
    return outputs


def _broker_forwarder(config: Any) -> list[Any]:
    """What forwards records spooled for the broker (only with the RabbitMQ bus)."""
    if config.bus["kind"] != "rabbitmq":
        log.error("records spooled for the broker stay in the spool: [bus] kind is not rabbitmq")
        return []
    try:
        require_pika()
    except PikaMissing as exc:
        config.problem(f"{exc}; records for the broker stay in the spool")
        return []
    return [BrokerForwarder(config, remote_outputs(config))]


def _broker_status(config: Any) -> dict[str, Any] | None:
    """The broker's queues for every remote output (messages ready and held unacked by the
    shippers, consumers) and what each shipper holds; or why not."""
    if config.bus["kind"] != "rabbitmq":
        return None
    result: dict[str, Any] = {
        "url": describe_urls(config.bus),
        "queues": {},
        "shippers": [],
        "unanswered": 0,
        "error": None,
    }
    try:
        connection = connect(config.bus)
    except (BrokerUnavailable, PikaMissing) as exc:
        result["error"] = scrub(str(exc))
        return result
    try:
        specs = queue_specs(config, remote_outputs(config))
        result.update(queue_report(connection, config.bus, specs))
    finally:
        connection.close()
    return result


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@argh.arg("--json", help="one JSON object instead of a table")
def status(*, json: bool = False) -> None:
    """Per output: spooled records, the oldest one's age, due now, dead letters, expired,
    duplicates skipped; with the RabbitMQ bus, each queue's messages (ready, and held unacked
    by the shippers) and consumers, and what each shipper holds."""
    config = _config()
    report = read_spool(config.spool)
    broker = _broker_status(config)
    if json:
        payload = {**report.as_dict(), "problems": config.problems}
        if broker is not None:
            payload["broker"] = broker
        payload = scrub_all(payload)
        sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_status(report)
        if broker is not None:
            _print_broker(broker)
    if report.corrupt or report.error or (broker is not None and broker["error"]):
        sys.exit(1)


def _print_broker(broker: dict[str, Any]) -> None:
    print(f"broker: {broker['url']}")
    if broker["error"]:
        print(f"cannot use the broker: {broker['error']}")
        return
    if not broker["queues"]:
        print("no queues declared yet")
        return
    print(f"{'queue':<40} {'messages':>9} {'ready':>8} {'unacked':>8} {'consumers':>10}")
    for name, row in sorted(broker["queues"].items()):
        print(
            f"{name:<40} {row['messages']:>9} {row['ready']:>8} {row['unacked']:>8} "
            f"{row['consumers']:>10}"
        )
    _print_shippers(broker)


def _print_shippers(broker: dict[str, Any]) -> None:
    """One line per shipper that answered: what it holds unacked, per output."""
    for shipper in broker["shippers"]:
        held = ", ".join(
            f"{output} {row.get('held', 0)}" + (" (store down)" if row.get("store_down") else "")
            for output, row in sorted(shipper["outputs"].items())
        )
        print(f"shipper {shipper.get('host')} pid {shipper.get('pid')} holds: {held or 'nothing'}")
    if broker["unanswered"]:
        print(
            f"{broker['unanswered']} consumers did not say what they hold (not `accre-pipeline "
            "ship`, or an older one): their unacked messages are not counted"
        )


def _print_status(report: Any) -> None:
    print(f"spool: {report.path}")
    if report.corrupt:
        print(f"{report.corrupt}; the next write sets it aside and starts a fresh spool")
    elif report.error:
        print(f"cannot read the spool: {report.error}")
    elif not report.outputs:
        print("nothing spooled")
    else:
        print(
            f"{'output':<24} {'spooled':>8} {'oldest':>8} {'due':>8} {'dead':>6} {'expired':>8}"
            f" {'duplicates':>10}"
        )
        for output, row in sorted(report.outputs.items()):
            print(
                f"{output:<24} {row['spooled']:>8} {_age(row['oldest_age']):>8} "
                f"{row['due']:>8} {row['dead_letters']:>6} {row['expired']:>8}"
                f" {row.get('duplicates', 0):>10}"
            )
    if report.dropped:
        print(f"dropped at the size cap so far: {report.dropped}")
    for path in report.set_aside:
        print(f"corrupt spool set aside (inspect, then delete it): {path}")


@argh.arg("--output", help="only this output")
@argh.arg("--due", help="only records whose backoff has passed (for timers and cron)")
@argh.arg("--all", help="(the default now; kept for old scripts)")
def replay(*, output: str | None = None, due: bool = False, all: bool = False) -> None:
    """Deliver what the spool owes now (also what is backing off, unless --due), in order,
    in batches; exit 1 when something is still spooled or was dead-lettered."""
    config = _config()
    spool = _spool(config)
    if not spool.exists():
        print("nothing spooled")
        return
    names = [output] if output else spool.outputs()
    outputs = _remote_outputs(config, names)
    if not names:
        print("nothing spooled")
        return
    try:
        summaries = run_replay(spool, outputs, due_only=due, progress=terminal_progress())
    finally:
        for item in outputs:
            item.close()
    now = time.time()
    complete = len(outputs) == len(names)
    for name, summary in summaries.items():
        print(describe(name, summary, now))
        complete = complete and summary.complete
    if not complete:
        print("some records could not be delivered; they stay in the spool")
        sys.exit(1)


@argh.arg("action", choices=["list", "retry", "purge"], help="what to do (default: list)")
@argh.arg("--output", help="only this output")
def dead_letters(action: str = "list", *, output: str | None = None) -> None:
    """List dead letters (records a store refused for good), retry them, or purge them."""
    config = _config()
    spool = _spool(config)
    if not spool.exists():
        print("no dead letters")
        return
    if action == "retry":
        print(f"{spool.retry_dead_letters(output)} dead letters queued again")
    elif action == "purge":
        print(f"{spool.purge_dead_letters(output)} dead letters purged")
    else:
        spool.readonly = True
        count = 0
        for letter in spool.dead_letters(output):
            count += 1
            print(
                f"{letter['record_id']}  {letter['output']}  attempts={letter['attempts']}  "
                f"{letter['reason']}"
            )
        if not count:
            print("no dead letters")


@argh.arg("--outputs", help="only these remote outputs, comma-separated (default: every one)")
@argh.arg(
    "--metrics-listen",
    metavar="HOST:PORT",
    help="serve /metrics for Prometheus there, e.g. 127.0.0.1:9464 (needs the metrics extra)",
)
def ship(*, outputs: str | None = None, metrics_listen: str | None = None) -> None:
    """Deliver results continuously until SIGTERM: from the broker's queues with [bus] kind =
    "rabbitmq", and from the local spool (records owed to stores or to the broker)."""
    log.with_timestamps()  # a daemon's log: each line says when
    names = [n.strip() for n in outputs.split(",") if n.strip()] if outputs else None
    sys.exit(run_shipper(_config(), names, metrics_listen))


def topology() -> None:
    """Declare the broker's exchange and queues for every remote output, and print each
    queue's bindings, messages (ready, and held unacked by the shippers) and consumers."""
    config = _config()
    if config.bus["kind"] != "rabbitmq":
        raise UserError('no broker: [bus] kind is not "rabbitmq"')
    specs = queue_specs(config, remote_outputs(config))
    try:
        connection = connect(config.bus)
    except BrokerUnavailable as exc:
        raise UserError(str(exc)) from None
    try:
        channel = connection.channel()
        declare(channel, config.bus, specs)
        report = queue_report(connection, config.bus, specs)
    finally:
        connection.close()
    print(f"broker: {describe_urls(config.bus)}")
    print(f"exchange: {config.bus['exchange']} (topic, durable; routing key STATUS.check_name)")
    print(f"queue type: {config.bus['queue_type']}")
    for spec in specs:
        main = queue_name(config.bus, spec.output)
        extra = ", single active consumer" if spec.single_consumer else ""
        print(f"\noutput {spec.output}{extra}")
        print(f"  bindings: {', '.join(spec.keys) or '(none: no record can pass its filters)'}")
        delays = [name for name, _ in retry_queues(config.bus, spec)]
        for name in (main, *delays, f"{main}.dead"):
            row = report["queues"].get(name)
            if row is None:
                print(f"  {name:<44} messages {'-':>7}  consumers {'-':>3}")
                continue
            print(
                f"  {name:<44} messages {row['messages']:>7} (ready {row['ready']}, "
                f"unacked {row['unacked']})  consumers {row['consumers']:>3}"
            )
    if report["shippers"] or report["unanswered"]:
        print()
        _print_shippers(report)


COMMANDS = [status, replay, dead_letters, ship, topology, overview, forget, serve]


def take_config(args: list[str]) -> list[str]:
    """`args` without `--config PATH` (or `--config=PATH`), which may come before or after the
    command; the path is kept for `_config`. A `--config` without a value exits 2."""
    global _config_path
    rest = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest += args[index:]
            break
        key, has_value, value = arg.partition("=")
        if not (len(key) > 2 and "--config".startswith(key)):  # argparse takes `--conf` too
            rest.append(arg)
            index += 1
            continue
        if not has_value:
            if index + 1 >= len(args):
                log.error("option --config needs a value")
                sys.exit(2)
            index += 1
            value = args[index]
        _config_path = value
        index += 1
    return rest


def build_parser() -> argh.ArghParser:
    """The parser: help shows a default only where the help text says it."""
    parser = argh.ArghParser(
        prog="accre-pipeline",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="PATH", help="config file (as for accre-monitor)")
    parser.add_argument("--version", action=_PrintVersion, help="the installed version, and exit")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="config file (as for accre-monitor)")
    func_kwargs = {"formatter_class": argparse.RawDescriptionHelpFormatter, "parents": [common]}
    policy = argh.assembling.NameMappingPolicy.BY_NAME_IF_KWONLY
    parser.add_commands(COMMANDS, name_mapping_policy=policy, func_kwargs=func_kwargs)
    parser.add_commands(
        silence_cli.COMMANDS,
        name_mapping_policy=policy,
        group_name="silence",
        group_kwargs={"help": "silence notifications: add, list, remove"},
        func_kwargs=func_kwargs,
    )
    _require_subcommand(parser, "silence")
    return parser


class _PrintVersion(argparse.Action):
    """`--version`: the installed distribution's version, read only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        sys.stdout.write(version_line(parser.prog) + "\n")
        parser.exit()


def _require_subcommand(parser: argparse.ArgumentParser, group: str) -> None:
    """`accre-pipeline GROUP` alone is a usage error (exit 2), not the top-level help."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    inner = next(
        a for a in commands.choices[group]._actions if isinstance(a, argparse._SubParsersAction)
    )
    inner.required = True
    inner.metavar = "{" + ",".join(inner.choices) + "}"


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: `--config PATH` before or after the command."""
    args = take_config(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    if not args:
        parser.print_usage(sys.stderr)
        sys.stderr.write("accre-pipeline: error: a command is required\n")
        sys.exit(2)
    try:
        parser.dispatch(argv=args)
    except UserError as exc:
        log.error(str(exc))
        sys.exit(2)
    except SpoolCorrupt as exc:
        log.error(str(exc))
        sys.exit(1)
    sys.exit(0)
