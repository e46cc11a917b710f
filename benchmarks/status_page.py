#!/usr/bin/env python3
"""The status page at cluster size: its data, its render time in a real browser, and
`/api/state` requests per second, each against a reference measured in the same run.

A synthetic SQLite state of NODES x CHECKS (2,000 x 30 = 60,000 node-check pairs by
default) as a cluster makes it: compute, GPU, big-memory and login nodes (GPU checks only
on GPU nodes, a few CPU checks only on the others), a few WARNING, CRITICAL and UNKNOWN
results, one check failing on many nodes, a rack of 16 nodes down (its keepalive records,
every check of it stale), some hung checks called stale by the watchdog, and some silenced.
`accre-pipeline serve` runs over it, and over an empty state (the reference), each in a
process of its own.

Figures:
- data: the page's compact JSON (`/api/grid`) and `overview --json` (`/api/state`), plain and
  gzipped as a browser takes them;
- render: Debian's chromium (headless, through Playwright) opens the page, from navigation
  to the heat map drawn (the server's data read just before, as a refreshing page finds
  it), median of RUNS; the reference is the page over the empty state; the browser's own
  work (parsing and drawing) is shown apart;
- requests per second on `/api/state` (gzipped, as a page or `curl --compressed` asks)
  from CLIENTS threads for SECONDS, against `/healthz` of the same server (answers "ok" without
  touching the state); the state is read again every two seconds, as a page refreshing
  every five would have it read;
- the server's read of the state and build of the page's data, once, cold.

`--screenshot PATH` instead takes the picture for the documentation: a few hundred nodes
(`--nodes 240 --checks 12` by default for it), the top of the page, 1400 x 1250 px.

Usage: python benchmarks/status_page.py [--nodes 2000] [--checks 30] [--runs 5]
           [--clients 4] [--seconds 5] [--screenshot docs/status-page.png]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support import load_average, note

from accre_monitor.pipeline.silence_cli import build_silence
from accre_monitor.pipeline.state_store import open_state
from accre_monitor.pipeline.watchdog import Watchdog
from accre_monitor.record import iso_now, new_id
from accre_monitor.sections import state_section

CHECKS = [
    "cpu_load", "memory", "disk_root", "disk_scratch", "ib_link", "ib_errors", "gpfs_mount",
    "nfs_home", "slurmd", "ntp", "dimm_errors", "ipmi_sel", "temperature", "sssd", "ssh",
    "zombies", "oom_kills", "lustre", "munge", "kernel", "cvmfs", "nhc", "swap", "fans",
    "psu", "raid", "bmc", "firmware", "mce", "uptime",
]  # fmt: skip
GPU_CHECKS = ["gpu_health", "gpu_temp", "gpu_ecc", "nvlink"]
CPU_CHECKS = ["cpu_freq", "numa", "hugepages", "turbo"]  # where GPU nodes run the above
TTL = 600.0  # every check's ttl: ten minutes
RACK = 16  # nodes per rack; one rack is down


def node_names(count: int) -> list[str]:
    """Compute, GPU, big-memory and login nodes, in the shares of a real cluster."""
    gpu = max(1, count * 20 // 100)
    bigmem = max(1, count * 4 // 100)
    login = 2
    compute = max(1, count - gpu - bigmem - login)
    return (
        [f"cn{i:04d}" for i in range(1, compute + 1)]
        + [f"gpu{i:03d}" for i in range(1, gpu + 1)]
        + [f"hm{i:02d}" for i in range(1, bigmem + 1)]
        + [f"login{i}" for i in range(1, login + 1)]
    )


def check_names(count: int) -> tuple[list[str], list[str], list[str]]:
    """(checks of every node, of GPU nodes only, of the other nodes only): every node has
    `count` checks."""
    own = max(0, min(len(GPU_CHECKS), count // 6))
    common = CHECKS[: count - own]
    while len(common) < count - own:
        common.append(f"check{len(common):02d}")
    return common, GPU_CHECKS[:own], CPU_CHECKS[:own]


def short_text(check: str, status: str, rng: random.Random) -> str:
    value = rng.randint(1, 99)
    if status == "OK":
        return f"{check} OK: {value}% used, within limits (warn 80%, crit 95%)"
    return f"{check} {status}: {value}% used, above the {status.lower()} threshold on this node"


def synthetic_state(url: str, nodes: int, checks: int, seed: int = 15) -> dict[str, int]:
    """Fill the state at `url` as a cluster would; what it holds."""
    rng = random.Random(seed)
    names = node_names(nodes)
    common, gpu, cpu = check_names(checks)
    now = time.time()
    compute = [n for n in names if n.startswith("cn")]
    rack_down = set(compute[RACK * 2 : RACK * 3]) if len(compute) >= RACK * 3 else set()
    flaky = common[9 % len(common)]  # ntp: a check failing on many nodes
    store = open_state({"url": url})
    records = []
    for node in names:
        ago = 1200.0 if node in rack_down else rng.uniform(0, 50)
        for check in common + (gpu if node.startswith("gpu") else cpu):
            roll = rng.random()
            if check == flaky and roll < 0.15:
                status = "WARNING"
            elif roll < 0.006:
                status = "CRITICAL"
            elif roll < 0.02:
                status = "WARNING"
            elif roll < 0.023:
                status = "UNKNOWN"
            else:
                status = "OK"
            hung = node not in rack_down and rng.random() < 0.002
            records.append(
                {
                    "id": new_id(),
                    "node": node,
                    "date": iso_now(now - (TTL + 60 if hung else ago)),
                    "name": check,
                    "status": status,
                    "short": short_text(check, status, rng),
                    "long": f"{check} on {node}\nmeasured {rng.random():.3f}",
                    "data": {"value": rng.randint(0, 100), "unit": "%"},
                    "runtime": round(rng.uniform(0.001, 0.3), 3),
                    "ttl": TTL,
                }
            )
    for start in range(0, len(records), 1000):
        store.take(records[start : start + 1000])
    # the watchdog calls the rack silent and the hung checks stale
    settings, _, _ = state_section({"node_ttl": 900}, spool_path="/nonexistent/spool.db")
    dog = Watchdog(store, _Discard(), settings)
    fired = dog.round()
    dog.close()
    store = open_state({"url": url})
    gpus = [n for n in names if n.startswith("gpu")]
    for node, check, comment in [
        (f"{gpus[0][:-1]}[0-3]" if gpus else "gpu*", "gpu_*", "GPU firmware upgrade, ask Ana"),
        ("cn00[0-4]*", flaky, "NTP server replaced, drift expected until 18:00 (Bo)"),
    ]:
        silence = build_silence(node, check, None, "4h", None, False, comment, time.time())
        store.add_silence(silence)
    store.close()
    return {"records": len(records), "stale": fired.stale, "keepalives": fired.keepalives}


class _Discard:
    def publish(self, records: list[dict[str, Any]]) -> int:
        return len(records)

    def close(self) -> None:
        pass


# -- the server ------------------------------------------------------------------------------


def accre_pipeline() -> str:
    beside = Path(sys.executable).parent / "accre-pipeline"
    found = str(beside) if beside.exists() else shutil.which("accre-pipeline")
    if not found:
        raise SystemExit("accre-pipeline is not installed: pip install -e '.[web]'")
    return found


@contextlib.contextmanager
def serving(work: Path, name: str, state_url: str, refresh: float = 5) -> Iterator[str]:
    """`accre-pipeline serve` over `state_url`; its base URL."""
    config = work / f"{name}.toml"
    config.write_text(
        f'[spool]\npath = "{work / name}-spool.db"\n[state]\nurl = "{state_url}"\n'
        f"[serve]\nrefresh = {refresh}\n"
    )
    env = {**os.environ, "ACCRE_MONITOR_CONFIG": str(config)}
    proc = subprocess.Popen(
        [accre_pipeline(), "serve", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        base = None
        for line in proc.stderr:
            found = re.search(r"url='(http://[^']+)/'", line)
            if found:
                base = found.group(1)
                break
        if base is None:
            raise SystemExit(f"serve did not start (exit {proc.wait()})")
        threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def fetch(base: str, path: str, gzipped: bool = False) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    connection.request("GET", path, headers={"accept-encoding": "gzip"} if gzipped else {})
    body = connection.getresponse().read()
    connection.close()
    return body


def requests_per_second(base: str, path: str, clients: int, seconds: float) -> float:
    """Answers per second from `clients` threads asking `path` over kept-alive connections."""
    host, port = base.removeprefix("http://").split(":")
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        while time.monotonic() < stop:
            connection.request("GET", path, headers={"accept-encoding": "gzip"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{path}: HTTP {response.status}")
            counts[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


# -- the browser ------------------------------------------------------------------------------


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("playwright is not installed: pip install -e '.[test]'") from None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            yield browser
        finally:
            browser.close()


def drawn(tab: Any, timeout: float = 60.0) -> dict[str, float]:
    """The page's timings once its heat map is drawn (polled: the page's policy forbids
    the eval Playwright's waiting needs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        timing = tab.evaluate("() => window.statusPage && window.statusPage.timing")
        if timing and timing.get("firstDrawnAt"):
            return timing
        time.sleep(0.02)
    raise RuntimeError("the page did not draw its heat map")


def render_times(browser: Any, base: str, runs: int) -> tuple[list[float], list[float]]:
    """Per run: (navigation to drawn, the browser's parse and draw), in seconds."""
    total, own = [], []
    for _ in range(runs):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        tab = context.new_page()
        fetch(base, "/api/grid", gzipped=True)  # the data read, as a refreshing page finds it
        tab.goto(base + "/")
        timing = drawn(tab)
        total.append(timing["firstDrawnAt"] / 1000)
        own.append(timing["draw"] / 1000)
        context.close()
    return total, own


def screenshot(path: Path, nodes: int, checks: int) -> None:
    with tempfile.TemporaryDirectory(prefix="status-page-shot-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'state.db'}"
        made = synthetic_state(url, nodes, checks)
        note(f"state: {made}")
        with serving(work, "shot", url) as base, chromium() as browser:
            context = browser.new_context(viewport={"width": 1400, "height": 1250})
            tab = context.new_page()
            tab.goto(base + "/")
            drawn(tab)
            path.parent.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(path))  # the top: counts, the map, the worst problems
            context.close()
    note(f"screenshot: {path}")


# -- the run -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=None, help="nodes (2000; 240 for a shot)")
    parser.add_argument("--checks", type=int, default=None, help="checks (30; 12 for a shot)")
    parser.add_argument("--runs", type=int, default=5, help="page loads timed per state")
    parser.add_argument("--clients", type=int, default=4, help="threads asking at once")
    parser.add_argument("--seconds", type=float, default=5.0, help="per requests/s figure")
    parser.add_argument("--screenshot", type=Path, help="only take the picture, into this file")
    args = parser.parse_args()
    if args.screenshot:
        screenshot(args.screenshot, args.nodes or 240, args.checks or 12)
        return
    nodes, checks = args.nodes or 2000, args.checks or 30
    with tempfile.TemporaryDirectory(prefix="bench-status-page-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'state.db'}"
        note(f"filling a state of {nodes} nodes x {checks} checks")
        made = synthetic_state(url, nodes, checks)
        note(f"state: {made}")
        empty = f"sqlite:///{work / 'empty' / 'state.db'}"  # never created: an empty state
        with serving(work, "full", url) as base, serving(work, "empty", empty) as reference:
            started = time.monotonic()
            fetch(base, "/api/grid", gzipped=True)
            cold = time.monotonic() - started
            sizes = {
                "grid": len(fetch(base, "/api/grid")),
                "grid_gz": len(fetch(base, "/api/grid", gzipped=True)),
                "state": len(fetch(base, "/api/state")),
                "state_gz": len(fetch(base, "/api/state", gzipped=True)),
            }
            pairs = len(json.loads(fetch(base, "/api/state")))
            with chromium() as browser:
                render_times(browser, reference, 1)  # the browser warmed up
                full_total, full_own = render_times(browser, base, args.runs)
                empty_total, empty_own = render_times(browser, reference, args.runs)
            note("requests per second")
            healthz = requests_per_second(base, "/healthz", args.clients, args.seconds)
            state = requests_per_second(base, "/api/state", args.clients, args.seconds)
            grid = requests_per_second(base, "/api/grid", args.clients, args.seconds)

    mb = 1024 * 1024
    print(
        f"status page: {nodes} nodes x {checks} checks, {pairs} node-check pairs in the state "
        f"({made['stale']} stale records, {made['keepalives']} keepalives fired); "
        f"load {load_average()}"
    )
    print(f"{'data':<34} {'plain_MB':>9} {'gzip_MB':>8}")
    print(f"{'/api/grid (the page)':<34} {sizes['grid'] / mb:>9.2f} {sizes['grid_gz'] / mb:>8.2f}")
    print(
        f"{'/api/state (overview --json)':<34} {sizes['state'] / mb:>9.2f}"
        f" {sizes['state_gz'] / mb:>8.2f}"
    )
    print(f"{'grid/state':<34} {sizes['grid'] / sizes['state']:>9.3f}")
    full, ref = statistics.median(full_total), statistics.median(empty_total)
    print(f"{f'render (median of {args.runs})':<34} {'drawn_s':>9} {'browser_s':>9} {'ratio':>7}")
    print(f"{'empty state (reference)':<34} {ref:>9.3f} {statistics.median(empty_own):>9.3f}")
    own = statistics.median(full_own)
    print(f"{f'{pairs} pairs':<34} {full:>9.3f} {own:>9.3f} {full / ref:>7.2f}")
    print(f"{f'requests/s ({args.clients} clients, gzip)':<34} {'per_s':>9} {'ratio':>9}")
    print(f"{'/healthz (reference)':<34} {healthz:>9.1f}")
    print(f"{'/api/state':<34} {state:>9.1f} {state / healthz:>9.4f}")
    print(f"{'/api/grid':<34} {grid:>9.1f} {grid / healthz:>9.4f}")
    print(f"cold read of the state and build of the page's data: {cold:.3f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
