#!/usr/bin/env python3
"""What `--metrics-listen` costs the shipper draining a spool: `accre-pipeline ship` with
the in-process bus, N records preloaded into the node's spool for Redis, timed from the
shipper's start until Redis holds them all, and from the first record stored (the rate once
running, without the start-up: importing prometheus_client and binding the port); with
`--metrics-listen` (scraped every second while it runs) against without, in alternating
rounds of a fresh order, medians.

The broker's path is measured by benchmarks/rabbitmq.py (`--only ship`), in the same way.

Usage: python benchmarks/ship_metrics.py [--records N] [--rounds R] [--venv DIR] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
from pathlib import Path

from rabbitmq import RedisStore, Scraper, consume_once, make_records
from support import (
    clean_env,
    install,
    load_average,
    median,
    redis_server,
    test_servers,
    work_directory,
    write_private,
)


def preload(spool_path: Path, records: list[dict]) -> None:
    """`records` spooled for Redis, due now, as `[spool] inline = false` leaves them."""
    from accre_monitor.pipeline.spool import Spool, spool_settings

    spool = Spool(spool_settings({"path": str(spool_path)}))
    try:
        spool.add([(r["id"], "redis", json.dumps(r).encode()) for r in records], attempts=0)
    finally:
        spool.close()


def bench(work: Path, bindir: Path, redis: RedisStore, count: int, rounds: int) -> tuple:
    spool = work / "spool.db"
    config = write_private(
        work / "ship.toml",
        f'[spool]\npath = "{spool}"\n' + redis.section(max(10 * count, 10000)),
    )
    env = clean_env(work / "home")
    port = test_servers().free_port()
    shipper = [str(bindir / "accre-pipeline"), "--config", str(config), "ship"]
    commands = {
        "without": shipper,
        "metrics": [*shipper, "--metrics-listen", f"127.0.0.1:{port}"],
    }
    runs: dict[str, list[float]] = {kind: [] for kind in commands}
    running: dict[str, list[float]] = {kind: [] for kind in commands}
    order = list(commands)
    shuffle = random.Random(7).shuffle
    scrapes = 0
    for round_ in range(rounds + 1):  # round 0 warms up
        shuffle(order)
        for kind in order:
            redis.reset()
            spool.unlink(missing_ok=True)
            preload(spool, make_records(count))
            scraper = Scraper(f"http://127.0.0.1:{port}/metrics")
            log = work / f"ship-{kind}-{round_}.log"
            with scraper if kind == "metrics" else contextlib.nullcontext():
                seconds, first = consume_once(redis, commands[kind], env, count, log)
            scrapes += scraper.scrapes
            if round_:
                runs[kind].append(count / seconds)
                running[kind].append((count - 1) / max(seconds - first, 0.001))
    rows = [
        ("from the start", median(runs["metrics"]), median(runs["without"])),
        ("once running", median(running["metrics"]), median(running["without"])),
    ]
    return rows, scrapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000, help="records per run (20000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (5)")
    parser.add_argument("--venv", help="reuse this virtualenv (with the package installed)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    loads = [load_average()]
    with contextlib.ExitStack() as stack:
        work = work_directory(stack, "accre-bench-ship-metrics-", args.keep)
        bindir = install(work, args.venv)
        redis = RedisStore(stack.enter_context(redis_server()))
        rows, scrapes = bench(work, bindir, redis, args.records, args.rounds)
        loads.append(load_average())
    print(f"{'measure':<58} {'value':>13} {'reference':>22} {'ratio':>6}")
    for timed, with_metrics, without in rows:
        label = f"spool -> shipper with /metrics -> redis, {timed}"
        print(
            f"{label:<58} {with_metrics:>9,.0f} rec/s "
            f"{without:>12,.0f} rec/s without {with_metrics / without:6.2f}"
        )
    print(
        f"\n{args.records} records per run, {args.rounds} alternating rounds (medians), timed "
        f"from the shipper's start until Redis held them all; {scrapes} scrapes in all."
        f"\nload average at the start: {loads[0]}; at the end: {loads[-1]}"
    )


if __name__ == "__main__":
    main()
