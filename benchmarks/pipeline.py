#!/usr/bin/env python3
"""The delivery pipeline's costs, each as a ratio against a reference measured in the same run.

1. Spooled write cost: `Spool.add([(id, output, body)])`, one record per call (one
   transaction each, as a CLI run whose store is down does), with `synchronous` "full" and
   "normal", against a raw sqlite3 loop doing the same single-row INSERT + COMMIT into the
   same schema on a WAL database with the same setting. Also the one-off cost of importing
   and opening the spool in a fresh process, against `python -c pass`.
2. Replay throughput per store: a spool filled with N records (built with `build_record`,
   varied data shapes) for one output, all due, delivered by `replay(spool, [output])`,
   against a raw loop of the same client library doing the same writes in batches of the
   same size (500). Raw and replay alternate over a few rounds, each run on fresh record
   ids (and a fresh Redis dataset, CouchDB database, Elasticsearch indices), and the medians
   are compared; the key figure is replay/raw, target >= 0.8.
   Elasticsearch is `tests/es_server.py`'s FakeElasticsearch, run in a child process (no real
   Elasticsearch can be installed here): its figures measure the client side against a
   pure-Python server, not what a real cluster would take.
3. The CLI's wall time (`accre-monitor --outputs stdout,redis loadavg`) with Redis healthy,
   down (connection refused) and hanging (SIGSTOP, bounded by `[outputs.redis] timeout = 1`),
   against `--outputs stdout` alone; medians of interleaved runs.

Servers (redis-server, pouchdb-server) come from tests/servers.py: loopback, a free port, a
temporary directory; a store whose server is missing is skipped with a note.

Usage: python benchmarks/pipeline.py [--records N] [--rounds R] [--cli-runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from support import clean_env, note, test_servers

from accre_monitor.codec import encode
from accre_monitor.pipeline.replay import replay
from accre_monitor.pipeline.spool import SCHEMA, Spool, spool_settings
from accre_monitor.record import build_record, iso_now, new_id

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
BATCH = 500
PREFIX = "accre-monitor"
ES_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from es_server import FakeElasticsearch
es = FakeElasticsearch().start()
print(es.port, flush=True)
sys.stdin.read()
es.stop()
"""
OPEN_SPOOL = (
    "import sys\n"
    "from accre_monitor.pipeline.spool import Spool, spool_settings\n"
    "Spool(spool_settings({'path': sys.argv[1]})).db\n"
)
OPEN_AND_ADD = OPEN_SPOOL.replace(
    ".db\n", ".add([(sys.argv[2], 'redis', b'{}')], error='ConnectionRefusedError')\n"
)


# -- records ---------------------------------------------------------------------------------

NODES = [f"cn{n:04d}" for n in range(60)]
CHECKS = ["loadavg", "disk", "memory", "gpfs", "slurmd", "infiniband", "gpu", "procs"]
STATUSES = ["OK", "OK", "OK", "WARNING", "CRITICAL", "UNKNOWN"]


def shaped_data(i: int) -> tuple[Any, str | None, str | None]:
    """(data, short, long) in one of several shapes real checks return."""
    shape = i % 7
    if shape == 0:
        return [round(0.01 * (i % 400), 2), 0.5, 0.25], f"load {i % 400 / 100:.2f}", None
    if shape == 1:
        mounts = ["/", "/scratch", "/data", "/home", "/tmp"]
        data = {m: {"used": i * 4096 + k, "free": 10**12 - i, "pct": (i + k) % 100 / 1.0}
                for k, m in enumerate(mounts)}  # fmt: skip
        return data, "disks fine", None
    if shape == 2:
        procs = [{"pid": 1000 + k, "user": f"user{k}", "cmd": "python train.py --epochs 10",
                  "rss": 2**20 * k, "threads": k % 16} for k in range(12)]  # fmt: skip
        return {"count": len(procs), "top": procs}, None, None
    if shape == 3:
        text = "Traceback (most recent call last):\n" + "  File 'x.py', line 1\n" * 60
        return None, "UNKNOWN: check raised OSError", text
    if shape == 4:
        return {"message": "état nominal ✓ " * 20, "ok": True, "ratio": 0.5, "n": None}, None, None
    if shape == 5:
        deep: Any = {"value": i}
        for level in range(8):
            deep = {f"level{level}": deep, "items": [level, str(level), level / 3]}
        return deep, None, None
    return i, f"count {i}", None


def make_records(count: int) -> list[dict[str, Any]]:
    """`count` records with fresh ids, dates spread over the last hours."""
    now = time.time()
    records = []
    for i in range(count):
        data, short, long = shaped_data(i)
        records.append(
            build_record(
                CHECKS[i % len(CHECKS)],
                STATUSES[i % len(STATUSES)],
                data,
                short,
                long,
                runtime=0.001 * (i % 50),
                node=NODES[(i // len(CHECKS)) % len(NODES)],
                date=iso_now(now - i * 3.7),
            )
        )
    return records


def batches(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [records[start : start + BATCH] for start in range(0, len(records), BATCH)]


# -- 1. spooled writes -------------------------------------------------------------------------


def spool_add_cost(path: Path, ids: list[str], body: bytes, synchronous: str) -> float:
    """Seconds per record of `Spool.add`, one record (one transaction) per call."""
    settings = spool_settings(
        {"path": str(path), "synchronous": synchronous, "max_entries": max(100_000, 2 * len(ids))}
    )
    spool = Spool(settings)
    spool.db  # noqa: B018 - open (and create) outside the timing
    try:
        started = time.perf_counter()
        for record_id in ids:
            spool.add([(record_id, "redis", body)], error="ConnectionRefusedError: refused")
        return (time.perf_counter() - started) / len(ids)
    finally:
        spool.close()


def raw_sqlite_cost(path: Path, ids: list[str], body: bytes, synchronous: str) -> float:
    """Seconds per record of a plain INSERT + COMMIT per record, same schema, WAL, same sync."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        db.execute("BEGIN")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("COMMIT")
        insert = (
            "INSERT INTO queue (record_id, output, body, created, attempts, next_attempt,"
            " last_error) VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        started = time.perf_counter()
        for record_id in ids:
            now = time.time()
            db.execute("BEGIN")
            db.execute(insert, (record_id, "redis", body, now, 1, now + 10, "refused"))
            db.execute("COMMIT")
        return (time.perf_counter() - started) / len(ids)
    finally:
        db.close()


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def bench_writes(work: Path, count: int, rounds: int) -> list[tuple]:
    body = encode(make_records(1)[0])
    rows = []
    for synchronous in ("full", "normal"):
        spool_samples, raw_samples = [], []
        for round_ in range(rounds):
            order = ["spool", "raw"] if round_ % 2 == 0 else ["raw", "spool"]
            for kind in order:
                path = work / f"writes-{kind}-{synchronous}-{round_}.db"
                ids = [new_id() for _ in range(count)]
                if kind == "spool":
                    spool_samples.append(spool_add_cost(path, ids, body, synchronous))
                else:
                    raw_samples.append(raw_sqlite_cost(path, ids, body, synchronous))
                remove_db(path)
        spooled, raw = statistics.median(spool_samples), statistics.median(raw_samples)
        rows.append(
            (
                f"Spool.add, 1 record/call, synchronous={synchronous}",
                f"{spooled * 1e6:.0f} us/rec",
                f"{raw * 1e6:.0f} us/rec raw sqlite3",
                spooled / raw,
            )
        )
        note(f"spool writes ({synchronous}) done")
    return rows


def bench_spool_open(work: Path, env: dict[str, str], runs: int) -> list[tuple]:
    path = str(work / "open-spool.db")
    python = sys.executable
    subprocess.run([python, "-P", "-c", OPEN_SPOOL, path], env=env, check=True)  # create + warm
    commands = {
        "pass": [python, "-P", "-c", "pass"],
        "open": [python, "-P", "-c", OPEN_SPOOL, path],
        "add": None,  # a fresh id each run
    }
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, argv in commands.items():
            argv = argv or [python, "-P", "-c", OPEN_AND_ADD, path, new_id()]
            started = time.perf_counter()
            subprocess.run(argv, env=env, check=True)
            samples[label].append(time.perf_counter() - started)
    medians = {label: statistics.median(values) for label, values in samples.items()}
    reference = medians["pass"]
    return [
        (
            "fresh process: import + open spool",
            f"{medians['open'] * 1000:.1f} ms",
            f"{reference * 1000:.1f} ms python -c pass",
            medians["open"] / reference,
        ),
        (
            "fresh process: import + open + add 1 (full)",
            f"{medians['add'] * 1000:.1f} ms",
            f"{reference * 1000:.1f} ms python -c pass",
            medians["add"] / reference,
        ),
    ]


# -- 2. replay against raw client loops ----------------------------------------------------------


class Store:
    """One store: how to reset it, its output's settings, and the raw client loop."""

    name = ""

    def before_run(self, kind: str, round_: int) -> None:
        """Fresh state for one run (kind: raw or replay)."""

    def output_settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def raw(self, records: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class RedisStore(Store):
    name = "redis"

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.admin = redis.Redis.from_url(url)

    def before_run(self, kind: str, round_: int) -> None:
        # the raw loop writes `ts` as the ISO date, which the output's script could not
        # compare: every run starts from an empty dataset
        self.admin.flushall()

    def output_settings(self) -> dict[str, Any]:
        return {"url": self.url}

    def raw(self, records: list[dict[str, Any]]) -> None:
        import redis

        r = redis.Redis.from_url(self.url)
        P = PREFIX  # the output's default key prefix
        try:
            for batch in batches(records):
                with r.pipeline(transaction=False) as p:
                    for rec in batch:
                        j = orjson.dumps(rec)
                        p.set(f"{P}:seen:{rec['id']}", 1, nx=True, ex=604800)
                        p.xadd(f"{P}:history", {"record": j}, maxlen=10000, approximate=True)
                        p.hset(
                            f"{P}:latest:{rec['node']}:{rec['name']}",
                            mapping={"record": j, "status": rec["status"], "ts": rec["date"]},
                        )
                        p.publish(f"{P}:results", j)
                    p.execute()
        finally:
            r.close()

    def close(self) -> None:
        self.admin.close()


class CouchStore(Store):
    name = "couch"

    def __init__(self, url: str) -> None:
        import urllib3

        self.url = url
        self.http = urllib3.PoolManager(retries=False)
        self.db = ""

    def before_run(self, kind: str, round_: int) -> None:
        self.db = f"bench-{kind}-{round_}-{new_id()[:8]}"
        resp = self.http.request("PUT", f"{self.url}/{self.db}")
        assert resp.status in (201, 202), (resp.status, resp.data)

    def output_settings(self) -> dict[str, Any]:
        return {"url": self.url, "database": self.db}

    def raw(self, records: list[dict[str, Any]]) -> None:
        import urllib3

        http, url, db = urllib3.PoolManager(retries=False), self.url, self.db
        try:
            for batch in batches(records):
                body = (
                    b'{"docs":['
                    + b",".join(orjson.dumps({"_id": r["id"], **r}) for r in batch)
                    + b"]}"
                )
                resp = http.request(
                    "POST",
                    f"{url}/{db}/_bulk_docs",
                    body=body,
                    headers={"Content-Type": "application/json"},
                    timeout=urllib3.Timeout(connect=2.0, read=2.0),
                )
                assert resp.status == 201, (resp.status, resp.data[:300])
        finally:
            http.clear()

    def close(self) -> None:
        self.http.clear()


class ElasticsearchStore(Store):
    name = "elasticsearch"

    def __init__(self, url: str) -> None:
        from elasticsearch import Elasticsearch

        self.url = url
        self.admin = Elasticsearch(url, request_timeout=10)

    def before_run(self, kind: str, round_: int) -> None:
        # drop the indices (the template stays): the fake keeps every document as Python
        # objects, and a growing heap makes its garbage collections ever slower
        names = list(self.admin.indices.get(index="accre-monitor-*"))
        if names:
            self.admin.indices.delete(index=",".join(names))

    def output_settings(self) -> dict[str, Any]:
        return {"hosts": [self.url]}

    def raw(self, records: list[dict[str, Any]]) -> None:
        from elasticsearch import Elasticsearch

        es = Elasticsearch(self.url, request_timeout=2, max_retries=0, retry_on_timeout=False)
        try:
            for batch in batches(records):
                answer = es.bulk(
                    operations=[
                        x
                        for r in batch
                        for x in (
                            {
                                "create": {
                                    "_index": datetime.fromisoformat(r["date"])
                                    .astimezone(UTC)
                                    .strftime("accre-monitor-%Y.%m.%d"),
                                    "_id": r["id"],
                                }
                            },
                            {**r, "data_flat": {"value": r["data"]}},
                        )
                    ]
                )
                assert not answer["errors"], answer["items"][:3]
        finally:
            es.close()

    def close(self) -> None:
        self.admin.close()


def filled_spool(path: Path, output: str, records: list[dict[str, Any]]) -> Spool:
    """A spool owing `records` to `output`, all due now (as after their backoff passed)."""
    settings = spool_settings({"path": str(path), "max_entries": max(100_000, 2 * len(records))})
    spool = Spool(settings)
    spool.add([(r["id"], output, encode(r)) for r in records], error="ConnectionRefusedError")
    spool.db.execute("UPDATE queue SET next_attempt = 0")
    return spool


def replay_once(store: Store, spool: Spool, count: int) -> float:
    """Seconds `replay(spool, [output])` takes to deliver all `count` records."""
    from accre_monitor.outputs import create_output

    output = create_output(store.name, store.output_settings())
    try:
        started = time.perf_counter()
        summary = replay(spool, [output])[output.name]
        elapsed = time.perf_counter() - started
    finally:
        output.close()
    if summary.delivered != count or not summary.complete:
        errors = spool.db.execute(
            "SELECT last_error, count(*) FROM queue GROUP BY 1 ORDER BY 2 DESC LIMIT 3"
        ).fetchall()
        raise SystemExit(
            f"replay to {store.name} incomplete: delivered {summary.delivered}/{count}, "
            f"retried {summary.retried}, dead {summary.dead}, left {summary.left}; {errors}"
        )
    return elapsed


def bench_store(store: Store, work: Path, count: int, rounds: int) -> tuple:
    def run(kind: str, round_: int, n: int) -> float:
        records = make_records(n)
        store.before_run(kind, round_)
        if kind == "raw":
            started = time.perf_counter()
            store.raw(records)
            return n / (time.perf_counter() - started)
        path = work / f"replay-{store.name}-{round_}.db"
        spool = filled_spool(path, store.name, records)
        try:
            return n / replay_once(store, spool, n)
        finally:
            spool.close()
            remove_db(path)

    # warm-up: imports, connections, the Redis script and the Elasticsearch index template
    run("replay", -1, 100)
    run("raw", -1, 100)
    rates: dict[str, list[float]] = {"raw": [], "replay": []}
    for round_ in range(rounds):
        for kind in ("raw", "replay") if round_ % 2 == 0 else ("replay", "raw"):
            rates[kind].append(run(kind, round_, count))
    raw, replayed = statistics.median(rates["raw"]), statistics.median(rates["replay"])
    note(f"replay {store.name}: {replayed:,.0f}/s, raw {raw:,.0f}/s")
    label = "elasticsearch (fake)" if store.name == "elasticsearch" else store.name
    return (
        f"replay -> {label}",
        f"{replayed:,.0f} rec/s",
        f"{raw:,.0f} rec/s raw client",
        replayed / raw,
    )


@contextlib.contextmanager
def fake_elasticsearch():
    """FakeElasticsearch in a child process, so its Python work does not share our GIL."""
    child = subprocess.Popen(
        [sys.executable, "-P", "-c", ES_CHILD, str(TESTS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = child.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError("FakeElasticsearch did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(OSError):
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


# -- 3. the CLI ----------------------------------------------------------------------------------


def monitor_binary() -> str:
    beside = Path(sys.executable).parent / "accre-monitor"
    return str(beside if beside.exists() else REPO / ".venv" / "bin" / "accre-monitor")


def write_config(path: Path, redis_url: str, spool: Path) -> Path:
    path.write_text(
        f'[outputs.redis]\nurl = "{redis_url}"\ntimeout = 1\n\n[spool]\npath = "{spool}"\n'
    )
    return path


def spooled(path: Path) -> int:
    if not path.exists():
        return 0
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM queue").fetchone()[0]
    finally:
        db.close()


def bench_cli(work: Path, env: dict[str, str], runs: int, healthy_url: str, hung: Any) -> list:
    servers = test_servers()
    monitor = monitor_binary()
    down_url = f"redis://127.0.0.1:{servers.free_port()}/0"
    scenarios = {
        "stdout": ("--outputs stdout loadavg", healthy_url),
        "healthy": ("--outputs stdout,redis loadavg, redis healthy", healthy_url),
        "down": ("--outputs stdout,redis loadavg, redis down", down_url),
        "hung": ("--outputs stdout,redis loadavg, redis hung", hung.url if hung else None),
    }
    commands: dict[str, tuple[list[str], dict[str, str], Path]] = {}
    for key, (_label, url) in scenarios.items():
        if url is None:
            continue
        spool = work / f"cli-{key}" / "spool.db"
        config = write_config(work / f"cli-{key}.toml", url, spool)
        outputs = "stdout" if key == "stdout" else "stdout,redis"
        argv = [monitor, "--outputs", outputs, "loadavg"]
        commands[key] = (argv, dict(env, ACCRE_MONITOR_CONFIG=str(config)), spool)
    if hung:
        hung.pause()
    try:
        samples: dict[str, list[float]] = {key: [] for key in commands}
        for run in range(runs + 1):  # run 0 warms the page cache and the bytecode
            for key, (argv, run_env, _spool) in commands.items():
                started = time.perf_counter()
                done = subprocess.run(
                    argv, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
                elapsed = time.perf_counter() - started
                if done.returncode not in (0, 1, 2, 3):
                    raise SystemExit(f"{key} failed ({done.returncode}): {done.stderr.decode()}")
                if run:
                    samples[key].append(elapsed)
    finally:
        if hung:
            hung.resume()
    medians = {key: statistics.median(values) for key, values in samples.items()}
    reference = medians["stdout"]
    rows = []
    for key, value in medians.items():
        rows.append(
            (
                f"CLI {scenarios[key][0]}",
                f"{value * 1000:.0f} ms",
                f"spooled {spooled(commands[key][2])}/{runs + 1}",
                value / reference,
            )
        )
    note("CLI runs done")
    return rows


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000, help="records per run (5000)")
    parser.add_argument("--rounds", type=int, default=5, help="raw/replay rounds per store (5)")
    parser.add_argument("--cli-runs", type=int, default=15, help="runs per CLI variant (15)")
    args = parser.parse_args()
    servers = test_servers()

    rows: list[tuple] = []
    notes: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="accre-bench-pipeline-"))
    env = clean_env(work)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)

        rows += bench_writes(work, args.records, args.rounds)
        rows += bench_spool_open(work, env, runs=10)

        redis_server = None
        reason = servers.missing_reason("redis")
        if reason:
            notes.append(f"redis skipped: {reason}")
        else:
            redis_server = servers.RedisServer()
            stack.callback(redis_server.close)
            redis_server.start()
        stores: list[Callable[[], Store]] = []
        if redis_server:
            stores.append(lambda: RedisStore(redis_server.url))
        reason = servers.missing_reason("couch")
        if reason:
            notes.append(f"couch skipped: {reason}")
        else:
            couch_server = servers.CouchServer()
            stack.callback(couch_server.close)
            couch_server.start()
            stores.append(lambda: CouchStore(couch_server.url))
        try:
            es_url = stack.enter_context(fake_elasticsearch())
        except RuntimeError as exc:
            notes.append(f"elasticsearch skipped: {exc}")
        else:
            stores.append(lambda: ElasticsearchStore(es_url))

        for make_store in stores:
            store = make_store()
            try:
                rows.append(bench_store(store, work, args.records, args.rounds))
            finally:
                store.close()

        if redis_server:
            hung_server = servers.RedisServer()
            stack.callback(hung_server.close)
            hung_server.start()
            rows += bench_cli(work, env, args.cli_runs, redis_server.url, hung_server)
        else:
            notes.append("CLI runs with redis skipped (no redis-server)")

    print(f"{'measure':<52} {'value':>14} {'reference':>28} {'ratio':>6}")
    sections = ("Spool.add", "fresh process", "replay", "CLI")
    previous = ""
    for label, value, reference, ratio in rows:
        section = next(s for s in sections if label.startswith(s))
        if previous and section != previous:
            print()
        previous = section
        print(f"{label:<52} {value:>14} {reference:>28} {ratio:6.2f}")
    print(
        f"\nwrites: {args.records} records per run, one per transaction, into a spool growing "
        f"from 0 to {args.records} entries; replay: {args.records} records per run, batches of "
        f"{BATCH}; medians of {args.rounds} alternating rounds; CLI: medians of "
        f"{args.cli_runs} interleaved runs, ratio to --outputs stdout, with the number of "
        "records left in that variant's spool.\n"
        "Target: replay/raw >= 0.8. Elasticsearch is tests/es_server.py's FakeElasticsearch "
        "(no real Elasticsearch can be installed here), in a child process: its rates are "
        "bounded by that pure-Python server, not what a real cluster would take."
    )
    for text in notes:
        print(f"note: {text}")


if __name__ == "__main__":
    main()
