#!/usr/bin/env python3
"""A fleet's results through RabbitMQ and the shipper into Redis, for a bounded time.

N simulated nodes each publish `rate` results per second for `seconds` seconds, spread
evenly in time, through the bus code (`Publisher.publish`: persistent, mandatory,
confirmed), while K shippers (`accre-pipeline ship`, from a regular install of this checkout)
deliver the output's queue to Redis. Reported per number of shippers:

  throughput  records published and stored per second (stored: over the span of arrivals)
  lag         from the record's `date` (set when it is published) to its arrival in Redis:
              the entry id of the `accre-monitor:history` stream is its arrival time in ms;
              p50, p99 and the maximum
  loss        ids confirmed by the broker that Redis does not hold: must be 0
              (also: ids stored twice, ids stored that were never confirmed)
  backlog     the deepest the queue got (messages ready, sampled every second)
  shipper CPU the shippers' CPU time over the wall time of the scenario, in cores

The simulated nodes publish from a few processes over persistent connections. A real node
opens one connection per run; the connection is amortised here because N x rate runs per
second would each start a Python process and open an AMQP connection, and that load on this
machine's cores would bury what is measured: the broker, the shippers and Redis at the
fleet's message rate. A real fleet adds N x rate connections opened and closed per second on
the broker (see benchmarks/rabbitmq.py for what one run costs the node).

Usage: python benchmarks/load_simulation.py [--nodes 1000] [--rate 1] [--seconds 60]
           [--shippers 1,2] [--publishers 8] [--bus KEY=VALUE] [--venv DIR] [--broker URL]
           [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import queue as queue_module
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from support import (
    QueueWatch,
    broker,
    bus_section,
    clean_env,
    config_for,
    declare_queues,
    install,
    load_average,
    note,
    percentile,
    redis_server,
    wait_for,
    work_directory,
    write_private,
)

CHECKS = ["loadavg", "disk_usage", "memory", "gpfs", "slurmd", "infiniband", "gpu", "procs"]
HISTORY = "accre-monitor:history"


# -- the simulated nodes ----------------------------------------------------------------------


def publisher_process(
    number: int,
    nodes: list[int],
    node_count: int,
    rate: float,
    seconds: float,
    bus: dict[str, Any],
    ids_path: str,
    ready: Any,
    go: Any,
    start_at: Any,
    results: Any,
) -> None:
    """Publish for `nodes`: each node `rate` results per second, at evenly spread moments;
    write every id the broker confirmed to `ids_path`, and a summary to `results`."""
    from accre_monitor.pipeline.amqp import BrokerUnavailable
    from accre_monitor.pipeline.bus import record_bytes as message_body
    from accre_monitor.pipeline.publisher import Publisher, Timeout
    from accre_monitor.record import build_record

    def result(node: int, k: int) -> dict[str, Any]:
        name = CHECKS[(node + k) % len(CHECKS)]
        status = "WARNING" if (node + k) % 20 == 0 else "OK"
        load = [round((node % 100) / 10, 2), 0.5, 0.25]
        return build_record(
            name, status, load, f"{name.upper()} {status}", runtime=0.002, node=f"sim{node:05d}"
        )

    publisher = Publisher(config_for({"bus": bus}), ["redis"])
    # connected before the clock starts: one warm-up record, left out of the figures
    warm_up = result(nodes[0], 0)
    publisher.publish(warm_up, message_body(warm_up), time.monotonic() + 30)
    period = 1.0 / rate
    schedule = sorted(((i / node_count) * period, i) for i in nodes)
    behind: list[float] = []
    failed = 0
    published = 0
    ready.put(warm_up["id"])
    go.wait()
    start = start_at.value
    with open(ids_path, "w") as ids:
        for k in range(round(seconds * rate)):
            for offset, node in schedule:
                due = start + k * period + offset
                late = time.time() - due
                if late < 0:
                    time.sleep(-late)  # the node's next result is not due yet
                behind.append(max(late, 0.0))
                record = result(node, k)
                try:
                    publisher.publish(record, message_body(record), time.monotonic() + 5)
                except (BrokerUnavailable, Timeout):
                    failed += 1  # a real node would spool it; here it is counted
                    continue
                ids.write(record["id"] + "\n")
                published += 1
    publisher.close()
    results.put(
        {
            "number": number,
            "published": published,
            "failed": failed,
            "behind_p99": percentile(behind, 0.99) if behind else 0.0,
            "behind_max": max(behind, default=0.0),
            "ended": time.time(),
        }
    )


# -- the shippers -----------------------------------------------------------------------------


class Shipper:
    """`accre-pipeline ship` with its log in a file; its CPU time read from /proc."""

    def __init__(self, bindir: Path, config: Path, env: dict, log: Path) -> None:
        self.log = log
        self.handle = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(bindir / "accre-pipeline"), "--config", str(config), "ship"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.handle,
        )

    def connected(self) -> bool:
        if self.process.poll() is not None:
            raise SystemExit(f"the shipper exited with {self.process.returncode}:\n{self.tail()}")
        return "connected to the broker" in self.log.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.handle.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.handle.close()

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# -- one scenario -----------------------------------------------------------------------------


def wait_for_depth(amqp: str, queue: str) -> int:
    """Messages left in `queue` once the stopped shippers' unacked ones are back in it."""
    watch = QueueWatch(amqp)
    try:
        deadline = time.monotonic() + 5
        depth = watch.depth(queue)
        while time.monotonic() < deadline:  # the broker requeues a closed channel's messages
            time.sleep(0.1)
            depth, previous = watch.depth(queue), depth
            if depth == previous:
                return depth
        return depth
    finally:
        watch.close()


def arrivals(client: Any) -> list[tuple[int, str, float]]:
    """(arrival ms, record id, record date in ms) of every entry of the history stream."""
    entries = []
    start = "-"
    while True:
        chunk = client.xrange(HISTORY, min=start, count=10000)
        for entry_id, fields in chunk:
            record = json.loads(fields[b"record"])
            date = dt.datetime.fromisoformat(record["date"]).timestamp() * 1000
            entries.append((int(entry_id.split(b"-")[0]), record["id"], date))
        if len(chunk) < 10000:
            return entries
        start = "(" + chunk[-1][0].decode()


def run_scenario(
    args: Any, shippers: int, work: Path, bindir: Path, env: dict, amqp: str, redis_url: str
) -> dict:
    import redis

    total = round(args.nodes * args.rate * args.seconds)
    prefix = f"sim-{uuid.uuid4().hex[:8]}"
    bus = {"kind": "rabbitmq", "url": amqp, "exchange": prefix, "queue_prefix": prefix}
    config = write_private(
        work / f"sim-{shippers}.toml",
        bus_section(amqp, prefix, **settings(args.bus))
        + f'[spool]\npath = "{work / f"sim-{shippers}.db"}"\n'
        + f'[outputs.redis]\nurl = "{redis_url}"\nhistory_length = {2 * total + 10000}\n',
    )
    declare_queues(config_for({"bus": bus}), ["redis"])
    queue = f"{prefix}.redis"
    client = redis.Redis.from_url(redis_url)
    client.flushall()

    running = [
        Shipper(bindir, config, env, work / f"sim-{shippers}-shipper-{n}.log")
        for n in range(shippers)
    ]
    context = multiprocessing.get_context("spawn")
    ready, go, start_at = context.Queue(), context.Event(), context.Value("d", 0.0)
    results = context.Queue()
    workers = []
    try:
        wait_for(lambda: all(s.connected() for s in running), 60, "the shippers to connect", 0.1)
        cpu_before = sum(s.cpu_seconds() for s in running)
        for number in range(args.publishers):
            nodes = list(range(number, args.nodes, args.publishers))
            worker = context.Process(
                target=publisher_process,
                args=(
                    number,
                    nodes,
                    args.nodes,
                    args.rate,
                    args.seconds,
                    bus,
                    str(work / f"sim-{shippers}-ids-{number}.txt"),
                    ready,
                    go,
                    start_at,
                    results,
                ),
            )
            worker.start()
            workers.append(worker)
        warm_ups = {ready.get(timeout=60) for _ in workers}  # each connected, one published
        start_at.value = time.time() + 0.1
        go.set()
        note(f"{shippers} shipper(s): publishing {total:,} records over {args.seconds:.0f} s")
        watch = QueueWatch(amqp)
        deepest = 0
        summaries = []
        try:
            while len(summaries) < len(workers):
                try:
                    summaries.append(results.get(timeout=1.0))
                except queue_module.Empty:
                    if not any(w.is_alive() for w in workers):
                        raise SystemExit("a publisher process ended without its summary") from None
                deepest = max(deepest, watch.depth(queue))
            published = sum(s["published"] for s in summaries)
            ended = max(s["ended"] for s in summaries)
            progress = (client.xlen(HISTORY), time.monotonic())
            expected = published + len(warm_ups)
            while client.xlen(HISTORY) < expected:  # the shippers catch up, or stall
                deepest = max(deepest, watch.depth(queue))
                stored = client.xlen(HISTORY)
                if stored != progress[0]:
                    progress = (stored, time.monotonic())
                elif time.monotonic() - progress[1] > args.stall:
                    note(f"no progress for {args.stall:.0f} s: {stored}/{expected} stored")
                    break
                time.sleep(0.2)
        finally:
            watch.close()
        started = start_at.value
        wall = time.time() - started
        cpu = sum(s.cpu_seconds() for s in running) - cpu_before
        codes = [s.stop() for s in running]
        left = wait_for_depth(amqp, queue)
    finally:
        for shipper in running:
            shipper.kill()
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    if any(codes):
        raise SystemExit(f"a shipper exited with {codes}:\n{running[0].tail()}")

    confirmed = set()
    for number in range(args.publishers):
        confirmed.update((work / f"sim-{shippers}-ids-{number}.txt").read_text().split())
    entries = [e for e in arrivals(client) if e[1] not in warm_ups]
    client.close()
    stored_ids = [record_id for _, record_id, _ in entries]
    lags = [(arrived - date) / 1000 for arrived, _, date in entries]
    span = (entries[-1][0] - entries[0][0]) / 1000 if len(entries) > 1 else 0.0
    return {
        "shippers": shippers,
        "offered": total,
        "published": len(confirmed),
        "failed": sum(s["failed"] for s in summaries),
        "stored": len(set(stored_ids)),
        "lost": len(confirmed - set(stored_ids)),
        "twice": len(stored_ids) - len(set(stored_ids)),
        "unknown": len(set(stored_ids) - confirmed),
        "left": left,
        "published_rate": len(confirmed) / (ended - started),
        "stored_rate": len(entries) / span if span else 0.0,
        "lag": [percentile(lags, 0.5), percentile(lags, 0.99), max(lags)] if lags else [0] * 3,
        "deepest": deepest,
        "behind_max": max(s["behind_max"] for s in summaries),
        "behind_p99": max(s["behind_p99"] for s in summaries),
        "drained_after": entries[-1][0] / 1000 - ended if entries else 0.0,
        "cpu": cpu / wall,
    }


def settings(pairs: list[str]) -> dict[str, Any]:
    """`--bus KEY=VALUE` options as `[bus]` settings (numbers as numbers)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            result[key] = int(value)
        except ValueError:
            try:
                result[key] = float(value)
            except ValueError:
                result[key] = value
    return result


# -- main -------------------------------------------------------------------------------------


def print_results(args: Any, rows: list[dict], loads: list[str]) -> None:
    head = (
        f"{'shippers':>8} {'offered':>8} {'confirmed':>9} {'stored':>8} {'lost':>5} "
        f"{'twice':>5} {'pub/s':>7} {'stored/s':>8} {'lag p50':>8} {'p99':>7} {'max':>7} "
        f"{'backlog':>7} {'CPU':>5}"
    )
    tuned = f" ([bus] {', '.join(args.bus)})" if args.bus else ""
    print(
        f"{args.nodes} simulated nodes x {args.rate:g} result/s for {args.seconds:g} s, "
        f"published from {args.publishers} processes, delivered to Redis{tuned}\n"
    )
    print(head)
    for r in rows:
        p50, p99, worst = r["lag"]
        print(
            f"{r['shippers']:>8} {r['offered']:>8,} {r['published']:>9,} {r['stored']:>8,} "
            f"{r['lost']:>5} {r['twice']:>5} {r['published_rate']:>7,.0f} "
            f"{r['stored_rate']:>8,.0f} {p50:>7.2f}s {p99:>6.2f}s {worst:>6.2f}s "
            f"{r['deepest']:>7,} {r['cpu']:>5.2f}"
        )
    print()
    for r in rows:
        print(
            f"{r['shippers']} shipper(s): publishers at most {r['behind_max']:.2f} s behind "
            f"their schedule (p99 {r['behind_p99']:.3f} s); {r['failed']} publishes not "
            f"confirmed; {r['unknown']} stored ids never confirmed; {r['left']} left in the "
            f"queue; the last record stored {r['drained_after']:.2f} s after the last publish"
        )
    print(
        "\nlost = confirmed by the broker and not in Redis (must be 0); twice = stored more "
        "than once; pub/s = confirmed / time from the start to the last confirmation; "
        "stored/s = stored / the span of their arrivals; lag = arrival in Redis (stream "
        "entry id) - the record's date (set as it is published); backlog = "
        "most messages ready in the queue (sampled each second); CPU = the shippers' CPU "
        "time / wall time, in cores.\n"
        "The simulated nodes keep their connections open: a real node opens one per run, "
        f"which would mean {args.nodes * args.rate:,.0f} process starts and AMQP connections "
        "per second on this machine, burying what is measured here (broker, shippers, "
        "Redis at the fleet's message rate); on a real broker they are extra connection "
        "churn, not measured here."
        f"\nload average at the start: {loads[0]}; at the end: {loads[-1]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1.0, help="results per node per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--shippers", default="1,2", help="a scenario per count (1,2)")
    parser.add_argument("--publishers", type=int, default=8, help="publishing processes (8)")
    parser.add_argument("--stall", type=float, default=60.0, help="give up after no progress")
    parser.add_argument(
        "--bus",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a [bus] setting for the shippers, e.g. batch_wait=0.25 (repeatable)",
    )
    parser.add_argument("--venv", help="reuse this virtualenv (with the package installed)")
    parser.add_argument("--broker", help="use this AMQP URL instead of a private RabbitMQ")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()

    loads = [load_average()]
    rows = []
    with contextlib.ExitStack() as stack:
        work = work_directory(stack, "accre-bench-load-", args.keep)
        bindir = install(work, args.venv)
        env = clean_env(work / "home")
        amqp = stack.enter_context(broker(args.broker))
        redis = stack.enter_context(redis_server())
        for count in [int(n) for n in args.shippers.split(",")]:
            rows.append(run_scenario(args, count, work, bindir, env, amqp, redis.url))
            loads.append(load_average())
    print_results(args, rows, loads)


if __name__ == "__main__":
    main()
