#!/usr/bin/env python3
"""The RabbitMQ bus and the shipper, each figure a ratio against a reference measured in the
same run.

1. The command line with a confirmed publish: `accre-monitor --outputs stdout,redis loadavg`
   with `[bus] kind = "rabbitmq"` and the broker up, against the stdout-only run
   (`--outputs stdout`, same config; bar 5x, target 4x) and against `python -c pass`; a
   bare pika script (connect, confirm, publish one message) against the stdout-only run:
   what pika alone costs.
2. No broker and `[spool] inline = false` (the command line only spools), against its floor:
   the stdout-only run + a raw SQLite script (import sqlite3, open a WAL database with
   synchronous=FULL, insert one row) - `python -c pass`. Bar: 1.1x the floor. The same with
   the in-process bus, for comparison.
   1 and 2 run interleaved (a fresh order each round) and compare medians; each run's record
   is counted where it must be (the queue, or the spool).
3. Publish throughput of the bus code (`Publisher.publish`, one connection, N records in a
   loop, each confirmed) against a raw pika loop publishing the same way (persistent,
   mandatory, confirmed) on the same broker; alternating rounds, medians.
4. End to end: N records pre-loaded into an output's queue, `accre-pipeline ship` started,
   timed until the store holds them all, against `benchmarks/raw_consumer.py` (a plain pika
   consumer with the same prefetch and batch size, writing each batch with one Redis
   pipeline or one `_bulk`, then acking) over the same kind of messages. Both are timed the
   same way, from the process's start (the time to the first stored record is shown too).
   Bar 0.8, target 1.0. Elasticsearch is tests/es_server.py's FakeElasticsearch in a child
   process: those rates are bounded by a pure-Python server, not what a cluster would take.
   In the same rounds, the shipper with `--metrics-listen` (scraped every second while it
   runs, far more often than Prometheus would) against the shipper without: what the
   metrics cost, from the start and once running (from the first record stored, without
   the start-up's import of prometheus_client).

The command-line runs and the shipper come from a fresh virtualenv with a regular install of
this checkout (`--venv DIR` reuses one); RabbitMQ and Redis are private servers on loopback
(`--broker URL` uses a running broker instead, with exchanges and queues of its own).

Usage: python benchmarks/rabbitmq.py [--runs N] [--publishes N] [--records N] [--rounds R]
           [--venv DIR] [--broker URL] [--only cli,publish,ship]
           [--stores redis,elasticsearch] [--baseline DIR] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from support import (
    ElasticsearchProcess,
    QueueWatch,
    broker,
    bus_defaults,
    bus_section,
    clean_env,
    config_for,
    declare_queues,
    install,
    load_average,
    median,
    note,
    redis_server,
    test_servers,
    wait_for,
    work_directory,
    write_private,
)

HERE = Path(__file__).resolve().parent
CHECKS = ["loadavg", "disk", "memory", "gpfs", "slurmd", "infiniband", "gpu", "procs"]
STATUSES = ["OK", "OK", "OK", "OK", "WARNING", "CRITICAL"]

PIKA_PUBLISH = """
import sys
import pika
url, exchange, key, body = sys.argv[1:5]
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.confirm_delivery()
properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
channel.basic_publish(exchange, key, body.encode(), properties, mandatory=True)
connection.close()
"""
SQLITE_INSERT = """
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO queue (id, body) VALUES (?, ?)", (os.urandom(16).hex(), sys.argv[2]))
db.execute("COMMIT")
db.close()
"""
# the same into a database with the spool's own schema (two indexes, AUTOINCREMENT)
SQLITE_SPOOL_INSERT = """
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("BEGIN IMMEDIATE")
db.execute(
    "INSERT OR IGNORE INTO queue (record_id, output, body, created, attempts, next_attempt)"
    " VALUES (?, 'broker', ?, 0, 0, 0)",
    (os.urandom(16).hex(), sys.argv[2]),
)
db.execute("COMMIT")
db.close()
"""


def make_records(count: int, node_count: int = 200) -> list[dict[str, Any]]:
    """`count` records of the shape checks return, with fresh ids, dates within the hour."""
    from accre_monitor.record import build_record, iso_now

    now = time.time()
    records = []
    for i in range(count):
        name = CHECKS[i % len(CHECKS)]
        data: Any = [round(i % 400 / 100, 2), 0.5, 0.25]
        if name == "disk":
            data = {m: {"used": i * 4096, "pct": i % 100} for m in ("/", "/scratch", "/tmp")}
        elif name == "procs":
            data = {"count": 12, "top": [{"pid": 1000 + k, "user": f"u{k}"} for k in range(5)]}
        records.append(
            build_record(
                name,
                STATUSES[i % len(STATUSES)],
                data,
                f"{name.upper()} fine",
                runtime=0.001 * (i % 50),
                node=f"cn{(i // len(CHECKS)) % node_count:04d}",
                date=iso_now(now - (count - i) * 0.01),
            )
        )
    return records


# -- 1 and 2: the command line ----------------------------------------------------------------


def run_interleaved(commands: dict[str, tuple[list[str], dict]], runs: int) -> dict[str, float]:
    """Median wall time of each command; one warm-up round, then `runs` rounds, each in a
    fresh random order (the machine's noise falls on every command alike)."""
    samples: dict[str, list[float]] = {label: [] for label in commands}
    order = list(commands)
    shuffle = random.Random(7).shuffle
    for round_ in range(runs + 1):
        shuffle(order)
        for label in order:
            argv, env = commands[label]
            started = time.perf_counter()
            done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed = time.perf_counter() - started
            if done.returncode not in (0, 1, 2):
                raise SystemExit(f"{label} failed ({done.returncode}): {done.stderr.decode()}")
            if done.stderr:
                raise SystemExit(f"{label} wrote to stderr: {done.stderr.decode()[:500]}")
            if round_:
                samples[label].append(elapsed)
    return {label: median(values) for label, values in samples.items()}


def spooled(path: Path, output: str | None = None) -> int:
    if not path.exists():
        return 0
    db = sqlite3.connect(path)
    try:
        if output is None:
            return db.execute("SELECT count(*) FROM queue").fetchone()[0]
        return db.execute("SELECT count(*) FROM queue WHERE output = ?", (output,)).fetchone()[0]
    finally:
        db.close()


def bench_cli(work: Path, bindir: Path, env: dict, amqp: str, redis_url: str, runs: int) -> list:
    servers = test_servers()
    python, monitor = str(bindir / "python"), str(bindir / "accre-monitor")
    prefix = "bench-cli"
    outputs = f'[outputs.redis]\nurl = "{redis_url}"\n'
    up = write_private(
        work / "cli-up.toml",
        bus_section(amqp, prefix) + f'[spool]\npath = "{work / "cli-up.db"}"\n' + outputs,
    )
    dead = f"amqp://guest:guest@127.0.0.1:{servers.free_port()}/%2F"
    no_broker = write_private(
        work / "cli-nobroker.toml",
        bus_section(dead, prefix)
        + f'[spool]\npath = "{work / "cli-nobroker.db"}"\ninline = false\n'
        + outputs,
    )
    in_process = write_private(
        work / "cli-inprocess.toml",
        f'[spool]\npath = "{work / "cli-inprocess.db"}"\ninline = false\n' + outputs,
    )
    from accre_monitor.pipeline.spool import SCHEMA

    # closed here: a connection left open would spare every run its checkpoint at close
    raw_db, spool_db = work / "raw-insert.db", work / "raw-spool-schema.db"
    with contextlib.closing(sqlite3.connect(raw_db)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE queue (seq INTEGER PRIMARY KEY, id TEXT, body BLOB)")
    with contextlib.closing(sqlite3.connect(spool_db)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
    body = json.dumps(make_records(1)[0], separators=(",", ":"))
    # the queue exists before the first timed run (the first publish would declare it)
    declare_queues(config_for({"bus": {**_bus(amqp, prefix)}}), ["redis"])
    queue = f"{prefix}.redis"

    def using(config: Path) -> dict:
        return dict(env, ACCRE_MONITOR_CONFIG=str(config))

    stdout = [monitor, "--outputs", "stdout", "loadavg"]
    shipped = [monitor, "--outputs", "stdout,redis", "loadavg"]
    commands = {
        "pass": ([python, "-P", "-c", "pass"], env),
        "stdout": (stdout, using(up)),
        "confirmed": (shipped, using(up)),
        "pika": ([python, "-P", "-c", PIKA_PUBLISH, amqp, prefix, "OK.loadavg", body], env),
        "spool-only": (shipped, using(no_broker)),
        "in-process spool-only": (shipped, using(in_process)),
        "sqlite": ([python, "-P", "-c", SQLITE_INSERT, str(raw_db), body], env),
        "sqlite, spool schema": (
            [python, "-P", "-c", SQLITE_SPOOL_INSERT, str(spool_db), body],
            env,
        ),
    }
    watch = QueueWatch(amqp)
    try:
        watch.purge(queue)
        medians = run_interleaved(commands, runs)
        in_queue = watch.depth(queue)
        watch.purge(queue)
    finally:
        watch.close()
    note("command-line runs done")
    total = runs + 1
    published = f"{in_queue}/{2 * total} in the queue (with pika's)"
    if spooled(work / "cli-up.db"):
        published += f", {spooled(work / 'cli-up.db')} spooled!"
    floor = medians["stdout"] + medians["sqlite"] - medians["pass"]
    ms = lambda label: f"{medians[label] * 1000:.1f} ms"  # noqa: E731
    stdout_ref = f"{ms('stdout')} stdout only"
    pass_ref = f"{ms('pass')} python -c pass"
    floor_ref = f"{floor * 1000:.1f} ms floor"
    schema_floor = medians["stdout"] + medians["sqlite, spool schema"] - medians["pass"]
    return [
        ("CLI stdout only", ms("stdout"), pass_ref, medians["stdout"] / medians["pass"], ""),
        (
            "CLI stdout,redis: confirmed publish",
            ms("confirmed"),
            stdout_ref,
            medians["confirmed"] / medians["stdout"],
            f"bar 5, target 4; {published}",
        ),
        (
            "CLI stdout,redis: confirmed publish",
            ms("confirmed"),
            pass_ref,
            medians["confirmed"] / medians["pass"],
            "",
        ),
        (
            "bare pika: connect, confirm, publish one",
            ms("pika"),
            stdout_ref,
            medians["pika"] / medians["stdout"],
            "what pika alone costs",
        ),
        ("raw SQLite: WAL, FULL, insert one row", ms("sqlite"), pass_ref, "", "for the floor"),
        (
            "CLI no broker, inline = false (spools)",
            ms("spool-only"),
            floor_ref,
            medians["spool-only"] / floor,
            f"bar 1.1; spooled for the broker {spooled(work / 'cli-nobroker.db', 'broker')}"
            f"/{total}",
        ),
        (
            "raw SQLite: the same, the spool's schema",
            ms("sqlite, spool schema"),
            f"{ms('sqlite')} raw SQLite",
            medians["sqlite, spool schema"] / medians["sqlite"],
            "",
        ),
        (
            "CLI no broker, inline = false (spools)",
            ms("spool-only"),
            f"{schema_floor * 1000:.1f} ms with that",
            medians["spool-only"] / schema_floor,
            "floor with the spool's schema",
        ),
        (
            "CLI in-process bus, inline = false",
            ms("in-process spool-only"),
            floor_ref,
            medians["in-process spool-only"] / floor,
            f"spooled {spooled(work / 'cli-inprocess.db', 'redis')}/{total}",
        ),
    ]


def _bus(url: str, prefix: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "rabbitmq", "url": url, "exchange": prefix, "queue_prefix": prefix, **extra}


# -- 3: publish throughput --------------------------------------------------------------------


class BusPublisher:
    """`Publisher.publish`, the command line's code: one connection, each record confirmed."""

    def __init__(self, config: Any) -> None:
        from accre_monitor.pipeline.bus import record_bytes as message_body
        from accre_monitor.pipeline.publisher import Publisher

        self.publisher = Publisher(config, ["redis"])
        self.body = message_body

    def publish(self, record: dict[str, Any]) -> None:
        self.publisher.publish(record, self.body(record), time.monotonic() + 5)

    def close(self) -> None:
        self.publisher.close()


class PikaPublisher:
    """A plain pika loop doing the same: persistent, mandatory, confirmed, the record's JSON."""

    def __init__(self, url: str, exchange: str) -> None:
        import pika

        self.pika = pika
        self.exchange = exchange
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def publish(self, record: dict[str, Any]) -> None:
        properties = self.pika.BasicProperties(
            delivery_mode=2, content_type="application/json", message_id=record["id"]
        )
        body = json.dumps(record, separators=(",", ":")).encode()
        key = f"{record['status']}.{record['name']}"
        self.channel.basic_publish(self.exchange, key, body, properties, mandatory=True)

    def close(self) -> None:
        self.connection.close()


def bench_publish(amqp: str, count: int, block: int = 25) -> list:
    """Both publishers connected side by side, taking turns every `block` records (a fresh
    order each turn), so that the machine's noise falls on both alike."""
    prefix = "bench-publish"
    config = config_for({"bus": _bus(amqp, prefix)})
    declare_queues(config, ["redis"])
    queue = f"{prefix}.redis"
    watch = QueueWatch(amqp)
    publishers = {"bus": BusPublisher(config), "pika": PikaPublisher(amqp, prefix)}
    cpu = {kind: 0.0 for kind in publishers}
    rates: dict[str, list[float]] = {kind: [] for kind in publishers}
    order = list(publishers)
    shuffle = random.Random(11).shuffle
    try:
        watch.purge(queue)
        for publisher in publishers.values():  # connected, the channel open, the queue warm
            publisher.publish(make_records(1)[0])
        for _ in range(max(count // block, 1)):
            shuffle(order)
            for kind in order:
                records = make_records(block)
                started, used = time.perf_counter(), time.process_time()
                for record in records:
                    publishers[kind].publish(record)
                cpu[kind] += time.process_time() - used
                rates[kind].append(block / (time.perf_counter() - started))
        expected = 2 + 2 * block * max(count // block, 1)
        arrived = watch.depth(queue)
        if arrived != expected:
            raise SystemExit(f"{arrived} of {expected} published messages in the queue")
        watch.purge(queue)
    finally:
        for publisher in publishers.values():
            publisher.close()
        watch.close()
    bus, pika = median(rates["bus"]), median(rates["pika"])
    note(f"publish: bus {bus:,.0f}/s, pika {pika:,.0f}/s")
    return [
        (
            "Publisher.publish, confirmed, one connection",
            f"{bus:,.0f} rec/s",
            f"{pika:,.0f} rec/s raw pika",
            bus / pika,
            f"medians of {len(rates['bus'])} turns of {block}; client CPU "
            f"{cpu['bus'] / len(rates['bus']) / block * 1e6:.0f} / "
            f"{cpu['pika'] / len(rates['pika']) / block * 1e6:.0f} us/rec",
        )
    ]


# -- 4: end to end ----------------------------------------------------------------------------


class Store:
    """A store the shipper writes to: its config section, how many records it holds."""

    name = ""

    def section(self, history_length: int) -> str:
        raise NotImplementedError

    def url(self) -> str:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError


class RedisStore(Store):
    name = "redis"

    def __init__(self, server: Any) -> None:
        import redis

        self.server = server
        self.client = redis.Redis.from_url(server.url)

    def section(self, history_length: int) -> str:
        return f'[outputs.redis]\nurl = "{self.server.url}"\nhistory_length = {history_length}\n'

    def url(self) -> str:
        return self.server.url

    def count(self) -> int:
        return self.client.xlen("accre-monitor:history")

    def reset(self) -> None:
        self.client.flushall()


class ElasticsearchStore(Store):
    name = "elasticsearch"

    def __init__(self, server: ElasticsearchProcess) -> None:
        self.server = server

    def section(self, history_length: int) -> str:
        return f'[outputs.elasticsearch]\nhosts = ["{self.server.url}"]\n'

    def url(self) -> str:
        return self.server.url

    def count(self) -> int:
        return self.server.count()

    def reset(self) -> None:
        """No documents, and the output's index template in place (the raw loop relies on
        its mapping too; the shipper finds it and leaves it)."""
        from elasticsearch import Elasticsearch

        from accre_monitor.outputs.elasticsearch import (
            MAPPINGS,
            TEMPLATE_PRIORITY,
            TEMPLATE_VERSION,
        )

        self.server.reset()
        with Elasticsearch(self.server.url) as client:
            client.indices.put_index_template(
                name="accre-monitor",
                index_patterns=["accre-monitor-*"],
                priority=TEMPLATE_PRIORITY,
                version=TEMPLATE_VERSION,
                template={"mappings": MAPPINGS},
            )


def preload(amqp: str, exchange: str, queue: str, records: list[dict[str, Any]]) -> None:
    """Publish `records` (persistent) and wait until the queue holds them all."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(amqp))
    try:
        channel = connection.channel()
        channel.queue_purge(queue)  # what a consumer stopped early may have given back
        for record in records:
            channel.basic_publish(
                exchange,
                f"{record['status']}.{record['name']}",
                json.dumps(record, separators=(",", ":")).encode(),
                pika.BasicProperties(
                    delivery_mode=2, content_type="application/json", message_id=record["id"]
                ),
            )
    finally:
        connection.close()
    watch = QueueWatch(amqp)
    try:
        wait_for(lambda: watch.depth(queue) == len(records), 60, "the queue to fill", 0.1)
    finally:
        watch.close()


def tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def consume_once(store: Store, argv: list[str], env: dict, count: int, log: Path) -> tuple:
    """(seconds until the store held `count` records, seconds to the first) from the start of
    the consuming process. The shipper is stopped with SIGTERM afterwards and must exit 0;
    the raw loop exits by itself once it acked `count` messages."""
    with open(log, "wb") as handle:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=handle
        )
        first = None
        try:
            deadline = time.monotonic() + max(120, count / 50)
            while True:
                stored = store.count()
                now = time.perf_counter()
                if stored and first is None:
                    first = now - started
                if stored >= count:
                    break
                if process.poll() is not None and process.returncode != 0:
                    raise SystemExit(f"{argv[0]} exited with {process.returncode}:\n{tail(log)}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {stored}/{count} stored:\n{tail(log)}")
                time.sleep(0.01)
            elapsed = now - started
        finally:
            if process.poll() is None and "ship" in argv:
                process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait(timeout=10)
    if code != 0:
        raise SystemExit(f"{argv[0]} exited with {code} after SIGTERM:\n{tail(log)}")
    return elapsed, first


class Scraper:
    """GETs `url` every `every` seconds on a thread while in a `with` block, as Prometheus
    would (it waits for the endpoint to come up; `scrapes` counts the answers)."""

    def __init__(self, url: str, every: float = 1.0) -> None:
        self.url = url
        self.every = every
        self.scrapes = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    response.read()
                self.scrapes += 1
            except OSError:  # not listening yet
                self.stop.wait(0.05)
                continue
            self.stop.wait(self.every)

    def __enter__(self) -> Scraper:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def bench_ship(
    work: Path,
    bindir: Path,
    env: dict,
    amqp: str,
    stores: list[Store],
    count: int,
    rounds: int,
    baseline: Path | None = None,
) -> list:
    """Per store: the shipper against the raw consumer (and against the shipper of the
    `baseline` install, when given), in rounds that each run all of them in a fresh order."""
    defaults = bus_defaults()
    rows = []
    for store in stores:
        prefix = f"bench-ship-{store.name}"
        history = max(10 * count, 10000)
        config = write_private(
            work / f"ship-{store.name}.toml",
            bus_section(amqp, prefix)
            + f'[spool]\npath = "{work / "ship.db"}"\n'
            + store.section(history),
        )
        declare_queues(config_for({"bus": _bus(amqp, prefix)}), [store.name])
        queue = f"{prefix}.{store.name}"
        metrics_port = test_servers().free_port()
        shipper = [str(bindir / "accre-pipeline"), "--config", str(config), "ship"]
        commands = {
            "shipper": shipper,
            "metrics": [*shipper, "--metrics-listen", f"127.0.0.1:{metrics_port}"],
            "raw": [
                str(bindir / "python"),
                str(HERE / "raw_consumer.py"),
                store.name,
                amqp,
                queue,
                store.url(),
                str(count),
                f"--prefetch={defaults['prefetch']}",
                f"--batch={defaults['batch_size']}",
                f"--wait={defaults['batch_wait']}",
                f"--history-length={history}",
            ],
        }
        if baseline:
            commands["baseline"] = [str(baseline / "accre-pipeline"), "--config", str(config)]
            commands["baseline"].append("ship")
        runs: dict[str, list[tuple]] = {kind: [] for kind in commands}
        order = list(commands)
        shuffle = random.Random(5).shuffle
        scrapes = 0
        for round_ in range(rounds + 1):  # round 0 warms up (bytecode, page cache, template)
            shuffle(order)
            for kind in order:
                store.reset()
                preload(amqp, prefix, queue, make_records(count))
                log = work / f"ship-{store.name}-{kind}-{round_}.log"
                scraper = Scraper(f"http://127.0.0.1:{metrics_port}/metrics")
                with scraper if kind == "metrics" else contextlib.nullcontext():
                    result = consume_once(store, commands[kind], env, count, log)
                scrapes += scraper.scrapes
                if round_:
                    runs[kind].append(result)
        rate = {kind: median([count / seconds for seconds, _ in runs[kind]]) for kind in runs}
        running = {  # from the first record stored: without the start-up
            kind: median(
                [(count - 1) / max(seconds - first, 0.001) for seconds, first in runs[kind]]
            )
            for kind in ("metrics", "shipper")
        }
        first = {kind: median([f for _, f in runs[kind]]) * 1000 for kind in runs}
        note("ship " + store.name + ": " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rate.items()))
        label = "elasticsearch (fake)" if store.name == "elasticsearch" else store.name
        rows.append(
            (
                f"broker -> shipper with /metrics -> {label}",
                f"{rate['metrics']:,.0f} rec/s",
                f"{rate['shipper']:,.0f} rec/s without",
                rate["metrics"] / rate["shipper"],
                f"--metrics-listen, scraped every second ({scrapes} scrapes in all); once "
                f"running (from the first stored) {running['metrics'] / running['shipper']:.2f}",
            )
        )
        for kind in runs:
            if kind in ("raw", "metrics"):
                continue
            name = "shipper" if kind == "shipper" else "baseline shipper"
            rows.append(
                (
                    f"broker -> {name} -> {label}",
                    f"{rate[kind]:,.0f} rec/s",
                    f"{rate['raw']:,.0f} rec/s raw consumer",
                    rate[kind] / rate["raw"],
                    f"bar 0.8, target 1.0; first stored after {first[kind]:.0f} / "
                    f"{first['raw']:.0f} ms",
                )
            )
        if baseline:
            rows.append(
                (
                    f"broker -> shipper -> {label}",
                    f"{rate['shipper']:,.0f} rec/s",
                    f"{rate['baseline']:,.0f} rec/s baseline",
                    rate["shipper"] / rate["baseline"],
                    "this checkout against --baseline",
                )
            )
    return rows


# -- main -------------------------------------------------------------------------------------


def print_table(rows: list[tuple]) -> None:
    print(f"{'measure':<50} {'value':>13} {'reference':>28} {'ratio':>6}  notes")
    previous = None
    for section, label, value, reference, ratio, notes in rows:
        if previous is not None and section != previous:
            print()
        previous = section
        shown = f"{ratio:6.2f}" if isinstance(ratio, float) else f"{ratio:>6}"
        print(f"{label:<50} {value:>13} {reference:>28} {shown}  {notes}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per command line (30)")
    parser.add_argument("--publishes", type=int, default=5000, help="records per publisher")
    parser.add_argument("--records", type=int, default=20000, help="records per shipping run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of shipping (3)")
    parser.add_argument("--venv", help="reuse this virtualenv (with the package installed)")
    parser.add_argument("--broker", help="use this AMQP URL instead of a private RabbitMQ")
    parser.add_argument("--only", default="cli,publish,ship", help="which parts to run")
    parser.add_argument("--stores", default="redis,elasticsearch", help="stores to ship to")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--baseline", help="a virtualenv whose shipper also runs in the shipping rounds"
    )
    args = parser.parse_args()
    parts = set(args.only.split(","))

    rows: list[tuple] = []
    loads = [load_average()]
    with contextlib.ExitStack() as stack:
        work = work_directory(stack, "accre-bench-rabbitmq-", args.keep)
        bindir = install(work, args.venv)
        env = clean_env(work / "home")
        amqp = stack.enter_context(broker(args.broker))
        redis = stack.enter_context(redis_server())
        if "cli" in parts:
            rows += [
                ("cli", *row) for row in bench_cli(work, bindir, env, amqp, redis.url, args.runs)
            ]
        if "publish" in parts:
            rows += [("publish", *row) for row in bench_publish(amqp, args.publishes)]
        if "ship" in parts:
            stores: list[Store] = []
            if "redis" in args.stores.split(","):
                stores.append(RedisStore(redis))
            if "elasticsearch" in args.stores.split(","):
                stores.append(ElasticsearchStore(stack.enter_context(ElasticsearchProcess())))
            baseline = Path(args.baseline) / "bin" if args.baseline else None
            ship_rows = bench_ship(
                work, bindir, env, amqp, stores, args.records, args.rounds, baseline
            )
            rows += [("ship", *row) for row in ship_rows]
        loads.append(load_average())

    print_table(rows)
    print(
        f"\ncommand lines: medians of {args.runs} runs each, interleaved in a fresh random "
        "order every round; floor = stdout only + raw SQLite insert - python -c pass. "
        f"Publishing: {args.publishes} records each, in turns of 25. "
        f"Shipping: {args.records} records per run, {args.rounds} alternating rounds, timed "
        "from the consumer's start until the store held them all (first stored: shipper / raw)."
        f"\nload average at the start: {loads[0]}; at the end: {loads[-1]}"
    )


if __name__ == "__main__":
    main()
