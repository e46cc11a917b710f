"""`accre-pipeline`: look after the spool (status, replay, dead letters).

    accre-pipeline [--config PATH] status
    accre-pipeline [--config PATH] replay [--output NAME] [--all]
    accre-pipeline [--config PATH] dead-letters [list|retry|purge] [--output NAME]

The config is found as `accre-monitor` finds it.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import argh

from accre_monitor import log
from accre_monitor.errors import UserError

_config_path: str | None = None


def _config() -> Any:
    from accre_monitor.config import load_config

    return load_config(_config_path)


def _spool(config: Any) -> Any:
    from accre_monitor.pipeline.spool import Spool

    return Spool.from_config(config)


def _outputs(config: Any, names: list[str]) -> list[Any]:
    from accre_monitor.outputs import create_output

    outputs = []
    for name in names:
        output = create_output(name, config.output_section(name))
        if output.synchronous:
            raise UserError(f"output {name} is not a remote output; nothing is spooled for it")
        outputs.append(output)
    return outputs


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@argh.arg("--json", help="one JSON object instead of a table")
def status(*, json: bool = False) -> None:
    """Per output: spooled records, the oldest one's age, records due now, dead letters."""
    config = _config()
    spool = _spool(config)
    stats = spool.stats() if spool.exists() else {}
    dropped = spool.dropped() if spool.exists() else 0
    if json:
        import orjson

        payload = {"spool": spool.path, "outputs": stats, "dropped": dropped}
        sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    print(f"spool: {spool.path}")
    if not stats:
        print("nothing spooled")
    else:
        print(f"{'output':<24} {'spooled':>8} {'oldest':>8} {'due':>8} {'dead':>6}")
        for output, row in sorted(stats.items()):
            print(
                f"{output:<24} {row['spooled']:>8} {_age(row['oldest_age']):>8} "
                f"{row['due']:>8} {row['dead_letters']:>6}"
            )
    if dropped:
        print(f"dropped at the size cap so far: {dropped}")


@argh.arg("--output", help="only this output")
@argh.arg("--all", help="also records whose next attempt is not due yet")
def replay(*, output: str | None = None, all: bool = False) -> None:
    """Deliver everything due now, in order, in batches; non-zero exit if anything is left."""
    from accre_monitor.pipeline.replay import replay as run_replay
    from accre_monitor.pipeline.replay import terminal_progress

    config = _config()
    spool = _spool(config)
    if not spool.exists():
        print("nothing spooled")
        return
    names = [output] if output else spool.outputs()
    if not names:
        print("nothing spooled")
        return
    outputs = _outputs(config, names)
    try:
        summaries = run_replay(spool, outputs, due_only=not all, progress=terminal_progress())
    finally:
        for item in outputs:
            item.close()
    failed = False
    for name, summary in summaries.items():
        print(
            f"{name}: delivered {summary.delivered}, failed {summary.retried}, "
            f"dead-lettered {summary.dead}, still spooled {summary.left}"
        )
        failed = failed or not summary.complete
    if failed:
        raise argh.CommandError("some records could not be delivered; they stay spooled")


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
        count = 0
        for letter in spool.dead_letters(output):
            count += 1
            print(
                f"{letter['record_id']}  {letter['output']}  attempts={letter['attempts']}  "
                f"{letter['reason']}"
            )
        if not count:
            print("no dead letters")


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: `--config PATH` before the subcommand, as for accre-monitor."""
    global _config_path
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
        [status, replay, dead_letters],
        name_mapping_policy=argh.assembling.NameMappingPolicy.BY_NAME_IF_KWONLY,
    )
    try:
        parser.dispatch(argv=args)
    except UserError as exc:
        log.error(str(exc))
        sys.exit(2)
    sys.exit(0)
