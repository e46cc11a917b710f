"""The RabbitMQ benchmarks still run: each script once, with tiny sizes, against one broker.

The figures of such short runs mean nothing; what is checked is that every part runs to its
table, that the command line's records reached the queue or the spool as the benchmark
claims, and that the load simulation lost nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from servers import RabbitServer, missing_reason

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def broker():
    for kind in ("rabbit", "redis"):
        if missing_reason(kind):
            pytest.skip(missing_reason(kind))
    with RabbitServer() as server:
        yield server


def bench(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--venv", sys.prefix, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_rabbitmq_benchmark_runs_every_part(broker):
    out = bench(
        "rabbitmq.py",
        *("--broker", broker.url, "--runs", "1", "--publishes", "25"),
        *("--records", "100", "--rounds", "1", "--stores", "redis"),
    )
    queued = re.search(r"(\d+)/(\d+) in the queue", out)
    assert queued and queued.group(1) == queued.group(2), out
    spooled = re.search(r"spooled for the broker (\d+)/(\d+)", out)
    assert spooled and spooled.group(1) == spooled.group(2), out
    assert re.search(r"Publisher\.publish.* \d+\.\d\d ", out), out
    assert re.search(r"broker -> shipper -> redis .* \d+\.\d\d ", out), out


def test_the_load_simulation_loses_nothing(broker):
    out = bench(
        "load_simulation.py",
        *("--broker", broker.url, "--nodes", "20", "--seconds", "1"),
        *("--shippers", "1", "--publishers", "1"),
    )
    header, row = (line.split() for line in out.splitlines()[2:4])
    assert header[:6] == ["shippers", "offered", "confirmed", "stored", "lost", "twice"], out
    figures = dict(zip(header, row, strict=False))
    assert figures["offered"] == figures["confirmed"] == figures["stored"] == "20", out
    assert figures["lost"] == figures["twice"] == "0", out
