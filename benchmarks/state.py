#!/usr/bin/env python3
"""State updates per second through the shipper's delivery code, against a raw upsert loop.

Every node reports every check once per round (2,000 nodes x 30 checks: 60,000 records a
round, each newer than the last of its check, with a `ttl`), delivered in batches of 500:

- state: `StateOutput` through `deliver_batch` (what the shipper and the run call), so the
  rules (occurrences, watermark, silences, the node's liveness, the watchdog's indexes)
  and the store's transaction are counted; one transaction per batch.
- raw: the same upserts by hand, the floor of each store: SQLite `INSERT ... ON CONFLICT DO
  UPDATE` of (node, check, the record's JSON) in one transaction per batch, in WAL mode with
  `synchronous = NORMAL` like the state; Redis one non-transactional redis-py pipeline of
  `SET P:raw:NODE:CHECK JSON` per batch.

The first round creates the entries and is not timed; then raw and state alternate on fresh
records, and medians are compared (ratios from the same run). Last, the watchdog's two
questions against the full state: `overdue` (1% of the entries due) and
`silent_candidates`, in milliseconds per call.

Redis is a private redis-server from tests/servers.py (loopback, append-only file with
fsync always, as the tests run it); SQLite a file in a temporary directory.

Usage: python benchmarks/state.py [--nodes N] [--checks C] [--rounds R] [--batch B]
                                  [--stores sqlite,redis]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from support import load_average, note, redis_server

from accre_monitor.outcome import DELIVERED
from accre_monitor.outputs import create_output
from accre_monitor.pipeline.delivery import deliver_batch
from accre_monitor.record import iso_now, new_id

T0 = float(int(time.time()) - 86400)  # the first round's date; each round a minute later
STATUSES = ("OK", "OK", "OK", "WARNING", "CRITICAL")
TTL = 300


def make_records(nodes: int, checks: int, round_: int) -> list[dict[str, Any]]:
    """One result of every check of every node, as a node's run sends them (node by node)."""
    date = iso_now(T0 + 60 * round_)
    return [
        {
            "id": new_id(),
            "node": f"cn{n:04d}",
            "date": date,
            "name": f"check{c:02d}",
            "status": STATUSES[(n + c + round_) % len(STATUSES)],
            "short": f"check{c:02d} is fine on cn{n:04d}",
            "data": {"value": n * c, "mount": "/scratch", "used": round_},
            "runtime": 0.012,
            "ttl": TTL,
        }
        for n in range(nodes)
        for c in range(checks)
    ]


def batches(records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [records[start : start + size] for start in range(0, len(records), size)]


# -- the two paths ---------------------------------------------------------------------------


def through_state(output: Any, records: list[dict[str, Any]], size: int) -> float:
    """Seconds to take `records` through the shipper's delivery code; every one delivered."""
    chunks = batches(records, size)
    started = time.perf_counter()
    for chunk in chunks:
        outcomes = deliver_batch(output, chunk, 60.0)
        if any(o.state != DELIVERED for o in outcomes):
            raise SystemExit(f"the state did not take a batch: {outcomes[0]!r}")
    return time.perf_counter() - started


class RawSqlite:
    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS latest (node TEXT NOT NULL, check_name TEXT NOT NULL,"
            " body BLOB NOT NULL, PRIMARY KEY (node, check_name))"
        )

    def upsert(self, records: list[dict[str, Any]], size: int) -> float:
        chunks = batches(records, size)
        started = time.perf_counter()
        for chunk in chunks:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT INTO latest (node, check_name, body) VALUES (?, ?, ?)"
                " ON CONFLICT (node, check_name) DO UPDATE SET body = excluded.body",
                [(r["node"], r["name"], orjson.dumps(r)) for r in chunk],
            )
            self.db.execute("COMMIT")
        return time.perf_counter() - started

    def close(self) -> None:
        self.db.close()


class RawRedis:
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)

    def upsert(self, records: list[dict[str, Any]], size: int) -> float:
        chunks = batches(records, size)
        started = time.perf_counter()
        for chunk in chunks:
            with self.client.pipeline(transaction=False) as pipe:
                for r in chunk:
                    pipe.set(f"bench:raw:{r['node']}:{r['name']}", orjson.dumps(r))
                pipe.execute()
        return time.perf_counter() - started

    def close(self) -> None:
        self.client.close()


# -- one store -------------------------------------------------------------------------------


def bench_store(
    kind: str, settings: dict[str, Any], raw: Any, args: argparse.Namespace
) -> dict[str, Any]:
    output = create_output("state", {}, state=settings)
    try:
        note(f"{kind}: first round (creates the entries, not timed)")
        first = make_records(args.nodes, args.checks, 0)
        through_state(output, first, args.batch)
        raw.upsert(first, args.batch)
        times: dict[str, list[float]] = {"raw": [], "state": []}
        for round_ in range(1, args.rounds + 1):
            note(f"{kind}: round {round_} of {args.rounds}")
            records = make_records(args.nodes, args.checks, round_)
            times["raw"].append(raw.upsert(records, args.batch))
            records = make_records(args.nodes, args.checks, round_)
            times["state"].append(through_state(output, records, args.batch))
        store = output.state_store()
        pairs = args.nodes * args.checks
        entry = store.get("cn0001", "check01")
        checked = len(store.entries(node="cn000*")) == 10 * args.checks
        if entry is None or entry.date != T0 + 60 * args.rounds or not checked:
            raise SystemExit(f"{kind}: the state does not hold the last round")
        due = T0 + 60 * args.rounds + TTL
        watchdog = {
            "overdue": timed_calls(lambda: store.overdue(due, max(pairs // 100, 1)), 5),
            "silent_candidates": timed_calls(
                lambda: store.silent_candidates(due, TTL, max(args.nodes // 100, 1)), 5
            ),
        }
        found = len(store.overdue(due, max(pairs // 100, 1)))
        return {"times": times, "watchdog": watchdog, "found": found}
    finally:
        output.close()
        raw.close()


def timed_calls(call: Any, count: int) -> float:
    """Median milliseconds of `count` calls (after one not counted)."""
    call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--checks", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--stores", default="sqlite,redis")
    args = parser.parse_args()
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if args.nodes < 10:
        raise SystemExit("--nodes must be at least 10")

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as work:
        if "sqlite" in stores:
            settings = {"url": f"sqlite:///{Path(work) / 'state.db'}"}
            results["sqlite"] = bench_store(
                "sqlite", settings, RawSqlite(str(Path(work) / "raw.db")), args
            )
        if "redis" in stores:
            with redis_server() as server:
                settings = {"url": server.url, "key_prefix": "bench"}
                results["redis"] = bench_store("redis", settings, RawRedis(server.url), args)

    pairs = args.nodes * args.checks
    print(
        f"State updates: {args.nodes} nodes x {args.checks} checks = {pairs} records a round, "
        f"batches of {args.batch}, {args.rounds} timed rounds (medians); load {load_average()}"
    )
    print(f"{'store':<7} {'path':<46} {'updates/s':>10} {'state/raw':>10}")
    for kind, result in results.items():
        raw = statistics.median(result["times"]["raw"])
        state = statistics.median(result["times"]["state"])
        raw_label = (
            "raw INSERT ... ON CONFLICT, 1 transaction/batch"
            if kind == "sqlite"
            else "raw redis-py pipeline, SET per record"
        )
        print(f"{kind:<7} {raw_label:<46} {pairs / raw:>10.0f} {'':>10}")
        label = "StateOutput through deliver_batch"
        print(f"{kind:<7} {label:<46} {pairs / state:>10.0f} {raw / state:>10.2f}")
    print()
    print(f"The watchdog's questions against {pairs} entries (median ms per call):")
    print(f"{'store':<7} {'overdue (1% due)':>18} {'silent_candidates':>18}")
    for kind, result in results.items():
        watchdog = result["watchdog"]
        print(
            f"{kind:<7} {watchdog['overdue']:>15.1f} ms {watchdog['silent_candidates']:>15.1f} ms"
            f"   ({result['found']} overdue found)"
        )


if __name__ == "__main__":
    main()
