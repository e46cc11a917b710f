"""`accre-pipeline`: ship results, and look after the spool and the broker's queues.

    accre-pipeline [--config PATH] status [--json]
    accre-pipeline [--config PATH] replay [--output NAME] [--due]
    accre-pipeline [--config PATH] dead-letters [list|retry|purge] [--output NAME]
    accre-pipeline [--config PATH] ship [--outputs NAME,...]
    accre-pipeline [--config PATH] topology

The config is found as `accre-monitor` finds it. A problem with a delivery setting is
reported in one line and the command goes on with the defaults.
"""

from __future__ import annotations

import sys
import time
from typing import Any, NoReturn

import argh

from accre_monitor import log
from accre_monitor.errors import ConfigError, UserError
from accre_monitor.redaction import scrub, scrub_all

_config_path: str | None = None


def _config() -> Any:
    from accre_monitor.config import load_config

    return load_config(_config_path)


def _spool(config: Any) -> Any:
    from accre_monitor.pipeline.spool import Spool

    return Spool.from_config(config)


def _remote_outputs(config: Any, names: list[str]) -> list[Any]:
    """The outputs to replay to; one that cannot be built is reported and left out (its
    records stay spooled)."""
    from accre_monitor.outputs import build_output, is_known_output, is_synchronous

    outputs = []
    for name in names:
        if name == "broker":
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
    from accre_monitor.pipeline.rabbitmq_bus import BrokerForwarder, remote_outputs

    return [BrokerForwarder(config, remote_outputs(config))]


def _broker_status(config: Any) -> dict[str, Any] | None:
    """The broker's queues for every remote output (depth, consumers), or why not."""
    if config.bus["kind"] != "rabbitmq":
        return None
    from accre_monitor.pipeline.amqp import BrokerUnavailable, connect, describe_urls
    from accre_monitor.pipeline.rabbitmq_bus import remote_outputs
    from accre_monitor.pipeline.topology import depths

    result: dict[str, Any] = {"url": describe_urls(config.bus), "queues": {}, "error": None}
    try:
        connection = connect(config.bus)
    except BrokerUnavailable as exc:
        result["error"] = scrub(str(exc))
        return result
    try:
        result["queues"] = depths(connection.channel(), config.bus, remote_outputs(config))
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
    """Per output: spooled records, the oldest one's age, due now, dead letters, expired."""
    from accre_monitor.pipeline.report import read_spool

    config = _config()
    report = read_spool(config.spool)
    broker = _broker_status(config)
    if json:
        import orjson

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
        print(f"cannot reach the broker: {broker['error']}")
        return
    if not broker["queues"]:
        print("no queues declared yet")
        return
    print(f"{'queue':<40} {'messages':>9} {'consumers':>10}")
    for name, row in sorted(broker["queues"].items()):
        print(f"{name:<40} {row['messages']:>9} {row['consumers']:>10}")


def _print_status(report: Any) -> None:
    print(f"spool: {report.path}")
    if report.corrupt:
        print(f"{report.corrupt}; the next write sets it aside and starts a fresh spool")
    elif report.error:
        print(f"cannot read the spool: {report.error}")
    elif not report.outputs:
        print("nothing spooled")
    else:
        print(f"{'output':<24} {'spooled':>8} {'oldest':>8} {'due':>8} {'dead':>6} {'expired':>8}")
        for output, row in sorted(report.outputs.items()):
            print(
                f"{output:<24} {row['spooled']:>8} {_age(row['oldest_age']):>8} "
                f"{row['due']:>8} {row['dead_letters']:>6} {row['expired']:>8}"
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
    from accre_monitor.pipeline.replay import describe, terminal_progress
    from accre_monitor.pipeline.replay import replay as run_replay

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


@argh.arg("action", choices=["list", "retry", "purge"])
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
def ship(*, outputs: str | None = None) -> None:
    """Deliver results continuously until SIGTERM: from the broker's queues with [bus] kind =
    "rabbitmq", and from the local spool (records owed to stores or to the broker)."""
    from accre_monitor.pipeline.shipper import ship as run_shipper

    names = [n.strip() for n in outputs.split(",") if n.strip()] if outputs else None
    sys.exit(run_shipper(_config(), names))


def topology() -> None:
    """Declare the broker's exchange and queues for every remote output, and print each
    queue's bindings, depth and consumers."""
    from accre_monitor.pipeline.amqp import connect, describe_urls
    from accre_monitor.pipeline.rabbitmq_bus import remote_outputs
    from accre_monitor.pipeline.topology import declare, depths, queue_name, queue_specs

    config = _config()
    if config.bus["kind"] != "rabbitmq":
        raise UserError('no broker: [bus] kind is not "rabbitmq"')
    from accre_monitor.pipeline.amqp import BrokerUnavailable

    specs = queue_specs(config, remote_outputs(config))
    try:
        connection = connect(config.bus)
    except BrokerUnavailable as exc:
        raise UserError(str(exc)) from None
    try:
        channel = connection.channel()
        declare(channel, config.bus, specs)
        counts = depths(channel, config.bus, [spec.output for spec in specs])
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
        for name in (main, f"{main}.retry", f"{main}.dead"):
            row = counts.get(name, {"messages": "-", "consumers": "-"})
            print(f"  {name:<44} messages {row['messages']:>7}  consumers {row['consumers']:>3}")


COMMANDS = [status, replay, dead_letters, ship, topology]


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: `--config PATH` before the subcommand, as for accre-monitor."""
    global _config_path
    from accre_monitor.pipeline.spool import SpoolCorrupt

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0].startswith("--config"):
        key, has_value, value = args.pop(0).partition("=")
        if key == "--config":
            if not has_value:
                if not args:
                    log.error("option --config needs a value")
                    sys.exit(2)
                value = args.pop(0)
            _config_path = value
    parser = argh.ArghParser(prog="accre-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="config file (as for accre-monitor)")
    parser.add_commands(
        COMMANDS, name_mapping_policy=argh.assembling.NameMappingPolicy.BY_NAME_IF_KWONLY
    )
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
