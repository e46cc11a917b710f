#!/usr/bin/env python3
"""Slack posts per second through the output, against a raw urllib3 loop to the same server.

The server is tests/slack_server.py's webhook, run in a child process (so it does not share
this process's interpreter lock), answering 200 `ok` at once. Pacing is off for the
measurement (`min_interval = 0`: the output's default of one message per second is Slack's
own limit, not a cost of the output) and digests are off (`digest_threshold = 0`), so
every record is one POST.

- raw: one urllib3 PoolManager POSTing the same message bodies, rendered beforehand, one
  after another (the floor: HTTP and the server alone);
- output, state in memory: `SlackOutput.deliver` in batches (`notify = "every"`): rendering,
  the cluster state (taking each batch, remembering what was said) and Slack's answers
  included;
- output, state in SQLite: the same with the cluster state's `state.db` in a temporary
  directory, as on a node (two transactions per batch);
- output, notify = "change": every record a new problem of its own check, state in SQLite.

Raw and output runs alternate over a few rounds on fresh records; medians are compared.
A last line times a digest: the same records as one batch with the default threshold
(one POST summarising all of them).

Usage: python benchmarks/slack.py [--records N] [--rounds R] [--batch B]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SERVER_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from slack_server import SlackServer
server = SlackServer().start()
print(server.url, flush=True)
sys.stdin.read()
server.stop()
"""
STATUSES = ["WARNING", "CRITICAL", "OK", "UNKNOWN"]


def make_records(count: int, round_: int) -> list[dict[str, Any]]:
    from accre_monitor.record import build_record, iso_now

    now = time.time()
    return [
        build_record(
            ["disk_usage", "gpfs", "memory", "slurmd"][n % 4],
            STATUSES[(n // 7 + round_) % 4],
            {"/": 50 + n % 50, "/scratch": {"used": n, "inodes": n * 3}},
            f"CHECK {STATUSES[n % 4]} - value {n}",
            "details\n" * (n % 5) or None,
            node=f"cn{n % 500:04d}",
            date=iso_now(now + n * 0.001),
        )
        for n in range(count)
    ]


def raw_loop(url: str, bodies: list[bytes]) -> float:
    import urllib3

    pool = urllib3.PoolManager(num_pools=1, maxsize=1, retries=False)
    headers = {"Content-Type": "application/json; charset=utf-8"}
    started = time.perf_counter()
    for body in bodies:
        response = pool.request("POST", url, body=body, headers=headers, redirect=False)
        if response.status != 200:
            raise RuntimeError(f"raw loop: HTTP {response.status}")
    elapsed = time.perf_counter() - started
    pool.clear()
    return elapsed


def output_loop(url: str, records: list, batch: int, state_dir: str | None, **settings) -> float:
    from accre_monitor.outcome import DELIVERED
    from accre_monitor.outputs import create_output

    output = create_output(
        "slack-all",
        {"webhook_url": url, "min_interval": 0, "digest_threshold": 0, "group_wait": 0, **settings},
        state_dir=state_dir,
    )
    started = time.perf_counter()
    for start in range(0, len(records), batch):
        outcomes = output.deliver(records[start : start + batch], 600)
        if any(o.state != DELIVERED for o in outcomes):
            raise RuntimeError(f"output: {outcomes[0]!r}")
    elapsed = time.perf_counter() - started
    output.close()
    return elapsed


def rendered(records: list) -> list[bytes]:
    from accre_monitor.codec import encode
    from accre_monitor.outputs.notify import EVERY
    from accre_monitor.outputs.slack_format import Notice, message

    bodies = []
    for record in records:
        notice = Notice(record)
        notice.verdict = EVERY
        bodies.append(encode(message(notice, "#monitor", 120)))
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()

    child = subprocess.Popen(
        [sys.executable, "-P", "-c", SERVER_CHILD, str(REPO / "tests")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = child.stdout.readline().strip()
        if not url:
            raise SystemExit("the webhook server did not start")
        results: dict[str, list[float]] = {
            "raw": [],
            "memory": [],
            "sqlite": [],
            "change": [],
        }
        with tempfile.TemporaryDirectory() as work:
            for round_ in range(args.rounds):
                records = make_records(args.records, round_)
                bodies = rendered(records)
                results["raw"].append(raw_loop(url, bodies))
                records = make_records(args.records, round_)
                results["memory"].append(output_loop(url, records, args.batch, None))
                records = make_records(args.records, round_)
                state = str(Path(work) / f"every-{round_}")
                results["sqlite"].append(output_loop(url, records, args.batch, state))
                records = make_records(args.records, round_)
                for n, record in enumerate(records):  # every result a new problem
                    record.update(node=f"cn{n:05d}", name="disk", status="CRITICAL")
                state = str(Path(work) / f"change-{round_}")
                results["change"].append(
                    output_loop(url, records, args.batch, state, notify="change")
                )
            digest_times = []
            for round_ in range(args.rounds):
                records = make_records(args.records, round_)
                state = str(Path(work) / f"digest-{round_}")
                digest_times.append(
                    output_loop(url, records, len(records), state, digest_threshold=5)
                )
    finally:
        child.stdin.close()
        child.wait(timeout=30)

    raw = statistics.median(results["raw"])
    print(f"Slack posts: {args.records} records, {args.rounds} rounds, batches of {args.batch}")
    print(f"{'path':<40} {'posts/s':>10} {'vs raw':>8}")
    labels = {
        "raw": "raw urllib3 loop (pre-rendered)",
        "memory": "output, state in memory",
        "sqlite": "output, state in state.db",
        "change": 'output, notify = "change", SQLite',
    }
    for key, label in labels.items():
        elapsed = statistics.median(results[key])
        print(f"{label:<40} {args.records / elapsed:>10.0f} {raw / elapsed:>8.2f}")
    digest = statistics.median(digest_times)
    print(
        f"{'digest: one POST for the whole batch':<40} "
        f"{args.records / digest:>10.0f} records/s ({digest * 1000:.0f} ms per batch)"
    )


if __name__ == "__main__":
    main()
