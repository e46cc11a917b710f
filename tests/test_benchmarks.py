"""The RabbitMQ benchmarks still run: each script once, with tiny sizes, against one broker
(and the textfile one, which needs no server).

The figures of such short runs mean nothing; what is checked is that every part runs to its
table, that the command line's records reached the queue or the spool as the benchmark
claims, and that the load simulation lost nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from servers import RabbitServer, missing_reason

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"


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


def test_the_state_benchmark_runs_to_its_table():
    if missing_reason("redis"):
        pytest.skip(missing_reason("redis"))
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "state.py"), "--nodes", "10", "--checks", "3"]
        + ["--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for store in ("sqlite", "redis"):
        row = rf"^{store} +StateOutput through deliver_batch +\d+ +\d+\.\d\d$"
        assert re.search(row, done.stdout, re.M), done.stdout
        assert re.search(rf"^{store} .* \(1 overdue found\)$", done.stdout, re.M), done.stdout


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
    assert re.search(r"broker -> shipper with /metrics -> redis .* \d+\.\d\d ", out), out


def test_the_shipper_metrics_benchmark_runs_to_its_table():
    if missing_reason("redis"):
        pytest.skip(missing_reason("redis"))
    out = bench("ship_metrics.py", "--records", "100", "--rounds", "1")
    for timed in ("from the start", "once running"):
        row = rf"^spool -> shipper with /metrics -> redis, {timed} .* \d+\.\d\d$"
        assert re.search(row, out, re.M), out


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


def test_the_textfile_benchmark_runs_to_its_table():
    out = bench("textfile_run.py", "--runs", "1")
    assert re.search(r"^loadavg, stdout \+ prometheus-textfile .* \d+\.\d\d$", out, re.M), out
    assert "the file held 31 checks" in out, out


def regular_install(work: Path) -> Path:
    """The python of a virtualenv holding a regular (non-editable) install of this checkout,
    built from a copy of it as a wheel; the dependencies are this interpreter's own (its
    site-packages after the virtualenv's on sys.path, through a path file: no index needed;
    an editable install there is not active, as a path file's directories get no path files
    of their own read)."""
    source = work / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__"),
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = work / "wheels"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
        check=True,
        cwd=work,
    )
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    (wheel,) = wheels.glob("*.whl")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], check=True)
    target = subprocess.run(
        [str(python), "-P", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = [entry for entry in sys.path if entry.endswith("site-packages")]
    (Path(target) / "zz-dependencies.pth").write_text("\n".join(ours) + "\n")
    return python


@pytest.mark.slow
def test_a_benchmark_run_from_the_checkout_times_the_regular_install(tmp_path):
    # from the checkout's root, its `accre_monitor/` (the core alone) must not shadow the
    # installed package, which package_dir completes with pipeline, outputs and checks
    if missing_reason("redis"):
        pytest.skip(missing_reason("redis"))
    python = regular_install(tmp_path)
    done = subprocess.run(
        [str(python), "benchmarks/pipeline.py", "--records", "20", "--rounds", "1"]
        + ["--cli-runs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No module named" not in done.stderr
    assert re.search(r"fresh process: import \+ open spool .* \d+\.\d\d$", done.stdout, re.M)
    assert re.search(r"replay -> redis .* \d+\.\d\d$", done.stdout, re.M), done.stdout


def test_the_watchdog_benchmark_publishes_every_stale_record():
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "watchdog.py")]
        + ["--nodes", "50", "--checks", "4", "--stale", "0.05", "--ttl", "0.5"]
        + ["--interval", "0.2", "--episodes", "1", "--idle-rounds", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    header, row = (line.split() for line in done.stdout.splitlines()[1:3])
    figures = dict(zip(header, row, strict=True))
    assert figures["stale"] == "10", done.stdout


def test_the_status_page_benchmark_runs_to_its_table():
    if missing_reason("chromium"):
        pytest.skip(missing_reason("chromium"))
    pytest.importorskip("playwright", reason="pip install -e '.[test]'")
    pytest.importorskip("starlette", reason="pip install 'accre-monitor[web]'")
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "status_page.py")]
        + ["--nodes", "40", "--checks", "6", "--runs", "1", "--clients", "1", "--seconds", "0.3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "40 nodes x 6 checks, 240 node-check pairs in the state" in done.stdout
    assert re.search(r"^240 pairs +\d+\.\d{3} +\d+\.\d{3} +\d+\.\d\d$", done.stdout, re.M)
    assert re.search(r"^/api/state +\d+\.\d +\d+\.\d{4}$", done.stdout, re.M), done.stdout
