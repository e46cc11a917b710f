#!/usr/bin/env python3
"""The watchdog's cost: how late a stale record comes, and what a round costs when nothing
is due.

A cluster of NODES x CHECKS entries (2,000 x 30 = 60,000 by default) is taken into the
state, every check with a ttl of an hour. Then, in each episode, the last results of one
check in a hundred (1%) arrive at one moment with a ttl of TTL seconds, and nothing after
them: they all come due at once. The watchdog runs in its thread as the shipper runs it
(`watchdog_interval` INTERVAL) and publishes through the bus: the spool for every remote
output (the in-process bus), or confirmed publishes to RabbitMQ (`--bus rabbitmq`, a
private node unless `--broker URL`).

Figures, in one run:
- the detection delay of every stale record: when the bus confirmed it, past the moment
  its check came due (p50, p99, max, over every episode);
- one idle round (nothing due, the lease held, `node_ttl` on), in milliseconds and as a
  ratio to the reference: one `take` of a batch of 500 results (updates of known entries,
  as the `state` output takes them from a queue).

Usage: python benchmarks/watchdog.py [--nodes 2000] [--checks 30] [--stale 0.01] [--ttl 3]
           [--interval 1] [--episodes 5] [--bus inprocess|rabbitmq] [--broker URL]
           [--store sqlite|redis]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from support import broker, median, note, percentile, wait_for

from accre_monitor.config import Config
from accre_monitor.pipeline.daemon import Stopping
from accre_monitor.pipeline.state_store import open_state
from accre_monitor.pipeline.watchdog import Watchdog, bus_outlet
from accre_monitor.record import iso_now, new_id

BATCH = 500  # records per take, as the state output takes them


def result(node: str, check: str, date: float, ttl: float) -> dict[str, Any]:
    return {
        "id": new_id(),
        "node": node,
        "date": iso_now(date),
        "name": check,
        "status": "OK",
        "data": {"value": 1},
        "runtime": 0.01,
        "short": "fine",
        "ttl": ttl,
    }


def cluster(nodes: int, checks: int) -> list[tuple[str, str]]:
    return [(f"node{n:05}", f"check{c:02}") for n in range(nodes) for c in range(checks)]


def take_all(store: Any, records: list[dict[str, Any]]) -> list[float]:
    """Take `records` in batches; the seconds each take lasted."""
    times = []
    for start in range(0, len(records), BATCH):
        began = time.perf_counter()
        store.take(records[start : start + BATCH])
        times.append(time.perf_counter() - began)
    return times


class TimedOutlet:
    """The bus's outlet, noting when each record was confirmed."""

    def __init__(self, outlet: Any) -> None:
        self.outlet = outlet
        self.confirmed: list[tuple[dict[str, Any], float]] = []
        self.lock = threading.Lock()

    def publish(self, records: list[dict[str, Any]]) -> int:
        count = self.outlet.publish(records)
        now = time.time()
        with self.lock:
            self.confirmed += [(record, now) for record in records[:count]]
        return count

    def stale_since(self, start: int) -> list[tuple[dict[str, Any], float]]:
        with self.lock:
            return [(r, t) for r, t in self.confirmed[start:] if r.get("stale")]

    def close(self) -> None:
        self.outlet.close()


def config_for(work: Path, args: argparse.Namespace, amqp: str | None, state_url: str) -> Config:
    data: dict[str, Any] = {
        "monitoring": {"outputs": ["stdout", "redis"]},
        "spool": {"path": str(work / "spool.db")},
        "state": {"url": state_url, "watchdog_interval": args.interval, "lease": 15.0},
        # the store is never written to: the watchdog's records end in the spool or a queue
        "outputs": {"redis": {"url": "redis://127.0.0.1:1/0"}},
    }
    if amqp:
        data["bus"] = {"kind": "rabbitmq", "url": amqp, "exchange": "wd", "queue_prefix": "wd"}
    return Config(data=data)


def declare(config: Config) -> None:
    from accre_monitor.pipeline.amqp import connect
    from accre_monitor.pipeline.broker_backlog import remote_outputs
    from accre_monitor.pipeline.topology import declare as declare_queues
    from accre_monitor.pipeline.topology import queue_specs

    connection = connect(config.bus)
    try:
        declare_queues(
            connection.channel(), config.bus, queue_specs(config, remote_outputs(config))
        )
    finally:
        connection.close()


def run(args: argparse.Namespace, work: Path, amqp: str | None, state_url: str) -> dict:
    config = config_for(work, args, amqp, state_url)
    if amqp:
        declare(config)
    store = open_state(config.state)
    keys = cluster(args.nodes, args.checks)
    now = time.time()
    note(f"taking {len(keys)} entries into the state")
    take_all(store, [result(node, check, now - 60, 3600.0) for node, check in keys])
    note("timing the reference: takes of 500 known entries")
    updates = [result(node, check, time.time() - 30, 3600.0) for node, check in keys[:10_000]]
    reference = median(take_all(store, updates))

    idle_settings = {**config.state, "node_ttl": 600.0}
    idle = Watchdog(open_state(config.state), TimedOutlet(bus_outlet(config)), idle_settings)
    idle.round()  # takes the lease
    idle_times = []
    for _ in range(args.idle_rounds):
        began = time.perf_counter()
        outcome = idle.round()
        idle_times.append(time.perf_counter() - began)
        assert outcome.active and not outcome.acted, outcome
    # 1% of the nodes dead: called silent, their checks overdue and spared every round
    dead = [
        (f"dead{n:03}", f"check{c:02}")
        for n in range(args.nodes // 100)
        for c in range(args.checks)
    ]
    take_all(store, [result(node, check, time.time() - 700, 5.0) for node, check in dead])
    idle.round()  # their keepalives
    dead_times = []
    for _ in range(args.idle_rounds):
        began = time.perf_counter()
        outcome = idle.round()
        dead_times.append(time.perf_counter() - began)
        assert outcome.active and not outcome.acted and outcome.spared == len(dead), outcome
    for node in {node for node, _ in dead}:
        store.forget(node)
    idle.close()  # releases the lease for the one that runs

    outlet = TimedOutlet(bus_outlet(config))
    stopping = Stopping()
    watchdog = Watchdog(open_state(config.state), outlet, config.state, stopping)
    thread = threading.Thread(target=watchdog.run, name="watchdog", daemon=True)
    thread.start()
    step = max(1, round(1 / args.stale))
    delays: list[float] = []
    try:
        for episode in range(args.episodes):
            going = keys[episode % step :: step]
            count = len(going)
            time.sleep(random.uniform(0, args.interval))  # any phase against the rounds
            last = time.time()
            due = last + args.ttl
            before = len(outlet.confirmed)
            take_all(store, [result(node, check, last, args.ttl) for node, check in going])
            wait_for(
                lambda before=before, count=count: len(outlet.stale_since(before)) >= count,
                args.ttl + 60,
                f"episode {episode + 1}: {len(going)} stale records",
            )
            wanted = set(going)
            found = [
                t - due for r, t in outlet.stale_since(before) if (r["node"], r["name"]) in wanted
            ]
            assert len(found) == len(going), (len(found), len(going))
            delays += found
            note(f"episode {episode + 1}: {len(found)} stale records")
            # every check reports again before the next episode
            take_all(store, [result(node, check, time.time(), 3600.0) for node, check in going])
    finally:
        stopping.event.set()
        thread.join(timeout=30)
        store.close()
    return {
        "stale": len(delays),
        "p50": percentile(delays, 0.5),
        "p99": percentile(delays, 0.99),
        "max": max(delays),
        "idle": median(idle_times),
        "idle_dead": median(dead_times),
        "dead": len(dead),
        "reference": reference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--checks", type=int, default=30)
    parser.add_argument("--stale", type=float, default=0.01, help="fraction going stale (0.01)")
    parser.add_argument("--ttl", type=float, default=3.0, help="their ttl, seconds (3)")
    parser.add_argument("--interval", type=float, default=1.0, help="watchdog_interval (1)")
    parser.add_argument("--episodes", type=int, default=5, help="times 1%% go stale (5)")
    parser.add_argument("--idle-rounds", type=int, default=30)
    parser.add_argument("--bus", choices=["inprocess", "rabbitmq"], default="inprocess")
    parser.add_argument("--broker", help="AMQP URL (default: a private RabbitMQ node)")
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-watchdog-")))
        amqp = stack.enter_context(broker(args.broker)) if args.bus == "rabbitmq" else None
        if args.store == "redis":
            try:
                from accre_monitor.pipeline import state_redis  # noqa: F401
            except ImportError:
                raise SystemExit(
                    "no Redis state store in this tree (pipeline/state_redis.py)"
                ) from None
            from support import redis_server

            server = stack.enter_context(redis_server())
            state_url = server.url
        else:
            state_url = f"sqlite:///{work / 'state.db'}"
        figures = run(args, work, amqp, state_url)

    entries = args.nodes * args.checks
    print(
        f"watchdog: {args.nodes} nodes x {args.checks} checks = {entries} entries, "
        f"{args.stale:.0%} going stale at once (ttl {args.ttl:g} s), "
        f"watchdog_interval {args.interval:g} s, {args.episodes} episodes"
    )
    print(
        f"{'store':<7} {'bus':<10} {'stale':>6} {'p50_s':>7} {'p99_s':>7} {'max_s':>7}"
        f" {'idle_ms':>8} {'take500_ms':>11} {'idle/take':>10} {'idle_dead_ms':>13}"
    )
    print(
        f"{args.store:<7} {args.bus:<10} {figures['stale']:>6} {figures['p50']:>7.3f}"
        f" {figures['p99']:>7.3f} {figures['max']:>7.3f} {figures['idle'] * 1000:>8.2f}"
        f" {figures['reference'] * 1000:>11.2f} {figures['idle'] / figures['reference']:>10.3f}"
        f" {figures['idle_dead'] * 1000:>13.2f}"
    )
    print(
        f"idle_dead: an idle round while 1% of the nodes are dead ({figures['dead']} entries"
        " overdue, spared: their nodes are silent)"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
