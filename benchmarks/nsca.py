#!/usr/bin/env python3
"""The `nagios-nsca` output's costs, each as a ratio against a reference measured in the same run.

1. The CLI: `accre-monitor --outputs stdout,nagios-nsca loadavg` against a running NSCA daemon,
   against `--outputs stdout loadavg`; medians of interleaved runs (run 0 warms the caches).
2. Throughput: N fresh records through `NscaOutput.deliver` (batches of 500), against a raw
   socket loop sending the same packets (built beforehand) to the same daemon, both timed
   until the daemon has written every result to its command file (NSCA never answers, so the
   end is seen on the daemon's side) and while sending only. Rows for one connection per batch
   (4096-byte output fields, what the output does), one connection per packet (what the
   512-byte field of NSCA 2.7 needs, and what the raw loop does there too), and XOR.
   Raw and output alternate over a few rounds; medians are compared.

The daemon is the real one from Debian's nsca package, started by tests/servers.py on
loopback in single-process foreground mode (NscaServer).

The CLI runs from a fresh virtualenv holding a regular install of this checkout, as a node has
it (an editable install's import hook costs every run more than the output does); `--venv DIR`
reuses one.

Usage: python benchmarks/nsca.py [--records N] [--rounds R] [--cli-runs N] [--venv DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from support import install, test_servers

from accre_monitor.outputs import create_output
from accre_monitor.outputs import nsca_packet as wire
from accre_monitor.record import build_record

BATCH = 500
PASSWORD = "bench-password"


# -- 1. the command line ---------------------------------------------------------------------


def bench_cli(work: Path, monitor: str, port: int, runs: int, daemon: Any) -> list[tuple]:
    config = work / "cli.toml"
    config.write_text(
        f'[spool]\npath = "{work / "spool.db"}"\n[outputs.nagios-nsca]\nport = {port}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCRE_MONITOR_")}
    env.update(HOME=str(work), XDG_CACHE_HOME=str(work / "cache"))
    env["ACCRE_MONITOR_CONFIG"] = str(config)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    variants = {"stdout": "stdout", "stdout,nagios-nsca": "stdout,nagios-nsca"}
    samples: dict[str, list[float]] = {key: [] for key in variants}
    for run in range(runs + 1):
        for key, outputs in variants.items():
            started = time.perf_counter()
            done = subprocess.run(
                [monitor, "--outputs", outputs, "loadavg"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            elapsed = time.perf_counter() - started
            if done.returncode not in (0, 1, 2, 3) or done.stderr:
                raise SystemExit(f"accre-monitor --outputs {outputs} failed: {done.stderr}")
            if run:
                samples[key].append(elapsed)
    daemon.flush()
    received = len(daemon.results())
    if received < runs + 1:
        raise SystemExit(f"the daemon took {received} results from {runs + 1} runs")
    base = statistics.median(samples["stdout"])
    with_nsca = statistics.median(samples["stdout,nagios-nsca"])
    return [
        (
            "CLI --outputs stdout,nagios-nsca loadavg",
            f"{with_nsca * 1000:.1f} ms",
            f"--outputs stdout {base * 1000:.1f} ms",
            with_nsca / base,
        )
    ]


# -- 2. throughput ---------------------------------------------------------------------------


def fresh_records(count: int) -> list[dict[str, Any]]:
    """Records dated now (max_age would expire old ones), of a few shapes and sizes."""
    records = []
    for i in range(count):
        status = ("OK", "OK", "WARNING", "CRITICAL")[i % 4]
        long = "line of long output\n" * (i % 5) or None
        data = {"load": [i % 7 / 2, 0.5, 0.25], "mounts": {"/": i % 100, "/scratch": 42}}
        short = f"CHECK {status} - value {i}"
        records.append(
            build_record(f"check{i % 40}", status, data, short, long, 0.01, node=f"cn{i % 300:04d}")
        )
    return records


def raw_packets(output: Any, records: list[dict[str, Any]], clock: int) -> list[bytes]:
    """The same packets the output sends, built before the clock starts."""
    results = [output.prepare(record) for record in records]
    return [
        wire.data_packet(
            min(int(r.time), clock), r.code, r.host, r.service, r.output, output.max_output
        )
        for r in results
    ]


def raw_send(port: int, packets: list[bytes], per_connection: int, cork: bool) -> None:
    """A plain socket loop: connect, read the init packet, write `per_connection` packets,
    shut down. `cork`: the data waits for the FIN, as the output sends a 720-byte packet
    (without it, the daemon sleeps a second on most of them after a batch: see
    NscaOutput)."""
    for start in range(0, len(packets), per_connection):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            init = b""
            while len(init) < wire.INIT_SIZE:
                chunk = sock.recv(wire.INIT_SIZE - len(init))
                if not chunk:
                    raise ConnectionError("the daemon closed before its init packet")
                init += chunk
            if cork:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            sock.sendall(b"".join(packets[start : start + per_connection]))
            sock.shutdown(socket.SHUT_WR)


def timed(daemon: Any, count: int, send: Any, *args: Any) -> tuple[float, float]:
    """(seconds until `send(*args)` returned, seconds until the daemon wrote all `count`
    results)."""
    daemon.clear()
    started = time.perf_counter()
    send(*args)
    sent = time.perf_counter() - started
    daemon.flush(timeout=120)
    done = time.perf_counter() - started
    got = len(daemon.results())
    if got != count:
        raise SystemExit(f"the daemon wrote {got} results, not {count}")
    return sent, done


def deliver_all(output: Any, records: list[dict[str, Any]]) -> None:
    states = {outcome.state for outcome in output.deliver(records, 120.0)}
    if states != {"delivered"}:
        raise SystemExit(f"not all delivered: {states}")


def bench_throughput(servers: Any, count: int, rounds: int) -> list[tuple]:
    """Medians per variant, each variant once per round, interleaved."""
    with servers.NscaServer() as plain, servers.NscaServer(password=PASSWORD) as xor:
        outputs = {
            size: create_output("nagios-nsca", {"port": plain.port, "max_output": size})
            for size in (4096, 512)
        }
        with_xor = create_output("nagios-nsca", {"port": xor.port, "password": PASSWORD})

        def raw(size: int, per_connection: int) -> tuple[float, float]:
            packets = raw_packets(outputs[size], fresh_records(count), int(time.time()) + 60)
            cork = per_connection == 1
            return timed(plain, count, raw_send, plain.port, packets, per_connection, cork)

        variants = {
            "output 4096": lambda: timed(plain, count, deliver_all, outputs[4096],
                                         fresh_records(count)),
            "raw 4096 batch": lambda: raw(4096, BATCH),
            "raw 4096 each": lambda: raw(4096, 1),
            "output 512": lambda: timed(plain, count, deliver_all, outputs[512],
                                        fresh_records(count)),
            "raw 512 each": lambda: raw(512, 1),
            "output 4096 XOR": lambda: timed(xor, count, deliver_all, with_xor,
                                             fresh_records(count)),
        }  # fmt: skip
        samples: dict[str, list[tuple[float, float]]] = {key: [] for key in variants}
        for _ in range(rounds):
            for key, run in variants.items():
                samples[key].append(run())
    done = {key: statistics.median(d for _s, d in runs) for key, runs in samples.items()}
    sent = {key: statistics.median(s for s, _d in runs) for key, runs in samples.items()}

    def row(label: str, key: str, ref: str, ref_label: str, times: dict = done) -> tuple:
        return (label, rate(count, times[key]), f"{ref_label} {rate(count, times[ref])}",
                times[ref] / times[key])  # fmt: skip

    return [
        row("packets/s, output: one connection per batch of 500", "output 4096",
            "raw 4096 batch", "raw loop"),
        row("  sending only", "output 4096", "raw 4096 batch", "raw loop", sent),
        row("packets/s, output, max_output 512: a connection each", "output 512",
            "raw 512 each", "raw loop"),
        row("  sending only", "output 512", "raw 512 each", "raw loop", sent),
        row("packets/s, output with XOR", "output 4096 XOR", "output 4096", "no XOR"),
        row("packets/s, raw loop: a connection per 4304-byte packet", "raw 4096 each",
            "raw 4096 batch", "per batch"),
    ]  # fmt: skip


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000, help="records per run (2000)")
    parser.add_argument("--rounds", type=int, default=5, help="raw/output rounds (5)")
    parser.add_argument("--cli-runs", type=int, default=15, help="runs per CLI variant (15)")
    parser.add_argument("--venv", help="reuse this virtualenv (with the package installed)")
    args = parser.parse_args()
    servers = test_servers()
    reason = servers.missing_reason("nsca")
    if reason:
        raise SystemExit(reason)

    work = Path(tempfile.mkdtemp(prefix="accre-bench-nsca-"))
    try:
        monitor = str(install(work, args.venv) / "accre-monitor")
        with servers.NscaServer() as daemon:
            rows = bench_cli(work, monitor, daemon.port, args.cli_runs, daemon)
        rows += bench_throughput(servers, args.records, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'measure':<58} {'value':>12} {'reference':>30} {'ratio':>6}")
    for label, value, reference, ratio in rows:
        print(f"{label:<58} {value:>12} {reference:>30} {ratio:6.2f}")
    print(
        f"\nCLI: medians of {args.cli_runs} interleaved runs, ratio to --outputs stdout. "
        f"Throughput: {args.records} records per run, medians of {args.rounds} alternating "
        "rounds, timed until the daemon wrote every result (sending only: until the last "
        "write returned); ratio = the reference's time over the output's (1.00: as fast as "
        "the raw loop). The daemon handles one packet per poll round, so one connection per "
        "packet costs it an accept, an init packet and a close each time."
    )


if __name__ == "__main__":
    main()
