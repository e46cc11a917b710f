"""What a run imports: `accre-monitor` starts on every node every minute, and each of these
modules would cost it more than a check (`re` alone, with the `enum` it brings, costs about
half the time of Python's own start-up)."""

import subprocess
import sys

import pytest
from servers import NscaServer, missing_reason

HEAVY = (
    "json",
    "re",
    "enum",
    "importlib",
    "importlib.util",
    "importlib.metadata",
    "typing",
    "orjson",
    "structlog",
    "urllib.parse",
    "sqlite3",
    "encodings.idna",
    "difflib",
    "prometheus_client",
)

# Runs the command line in this interpreter, then names the heavy modules it imported. They
# are dropped from sys.modules first: an editable install's import hook loads some of them
# at start-up, and a module imported again by the run shows up again.
RUN = """
import sys
for name in {heavy!r}:
    sys.modules.pop(name, None)
from accre_monitor.cli import run
code = run(sys.argv[1:])
sys.stdout.flush()
print("imported:", sorted(name for name in {heavy!r} if name in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def heavy_imports(cli, *args, heavy=HEAVY):
    """The `heavy` modules a run of `accre-monitor ARGS` imports, and its stdout."""
    done = subprocess.run(
        [sys.executable, "-P", "-c", RUN.format(heavy=heavy), *args],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("imported: "), done.stderr
    return last.removeprefix("imported: "), done.stdout


@pytest.mark.parametrize("timeout", ["30", "0"])
def test_a_stdout_run_without_a_config_file_imports_none_of_them(cli, timeout):
    imported, stdout = heavy_imports(cli, "--outputs", "stdout", "--timeout", timeout, "loadavg")
    assert imported == "[]"
    assert '"name": "loadavg"' in stdout


@pytest.mark.parametrize(
    ("output", "payload"),
    [
        ("stdout", None),
        ("nagios-stdout", "json"),
        ("nagios-stdout", "perfdata"),
        ("nagios-base64-stdout", None),
    ],
)
def test_a_run_with_a_config_file_imports_none_of_them(cli, output, payload):
    settings = f'[outputs.{output}]\npayload = "{payload}"\n' if payload else ""
    cli.write_config(f'[monitoring]\noutputs = ["{output}"]\n{settings}')
    heavy_imports(cli, "loadavg")  # the first run parses the file and caches it
    imported, stdout = heavy_imports(cli, "loadavg")
    assert imported == "[]"
    assert "load" in stdout.lower()


def test_a_run_that_writes_the_prometheus_textfile_imports_none_of_them(cli):
    """The textfile is written in the text format by hand (no prometheus_client, no `re`),
    and the record's date read without datetime (which a TOML parse or SQLite would bring)."""
    path = cli.tmp / "node.prom"
    cli.write_config(
        '[monitoring]\noutputs = ["nagios-stdout", "prometheus-textfile"]\n'
        f'[outputs.prometheus-textfile]\npath = "{path}"\n'
    )
    heavy_imports(cli, "loadavg")
    imported, stdout = heavy_imports(cli, "disk_usage", "--mounts", "/", heavy=(*HEAVY, "datetime"))
    assert imported == "[]"
    assert stdout.startswith("DISK ")
    text = path.read_text()
    assert 'accre_monitor_check_status{check="loadavg"}' in text
    assert 'accre_monitor_perf_ratio{check="disk_usage",label="mounts./.used_percent"}' in text


def test_a_stdout_run_on_a_node_whose_config_ships_elsewhere_imports_none_of_them(cli):
    cli.write_config(
        '[monitoring]\noutputs = ["nagios-stdout", "redis"]\n'
        '[bus]\nkind = "rabbitmq"\nurl = ["amqp://mon@mq1:5672/%2F", "amqp://mon@[::1]/%2F"]\n'
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\ninline_budget = 3\n'
        '[outputs.redis]\nurl = "redis://127.0.0.1:6379/0"\nmin_severity = "WARNING"\n'
    )
    heavy_imports(cli, "--outputs", "nagios-stdout", "loadavg")
    imported, stdout = heavy_imports(cli, "--outputs", "nagios-stdout", "loadavg")
    assert imported == "[]"
    assert stdout.startswith("LOAD ")


def test_the_check_finds_what_it_looks_for(cli):
    """The probe itself: a run that does import one of them is seen doing it."""
    cli.write_module(
        "mysite.checks",
        "import json\nfrom accre_monitor import monitor_command\n\n"
        "@monitor_command\ndef uses_json(opts):\n    return 'OK', json.loads('1')\n",
    )
    cli.write_config('[monitoring]\ncheck_modules = ["mysite.checks"]\n')
    heavy_imports(cli, "uses_json")
    imported, _ = heavy_imports(cli, "uses_json")
    assert "'json'" in imported


@pytest.mark.parametrize(
    "bus", ["", '[bus]\nkind = "rabbitmq"\nurl = "amqp://mon@127.0.0.1:1/%2F"\n']
)
def test_a_run_that_only_spools_imports_sqlite_and_nothing_heavier(cli, bus):
    cli.write_config(
        f'{bus}[spool]\npath = "{cli.tmp / "spool.db"}"\ninline = false\n'
        '[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\n'
    )
    heavy_imports(cli, "--outputs", "stdout,redis", "loadavg")
    imported, stdout = heavy_imports(cli, "--outputs", "stdout,redis", "loadavg")
    assert imported == "['sqlite3']"
    assert '"name": "loadavg"' in stdout


def test_a_run_that_delivers_to_nsca_imports_none_of_them(cli):
    """A result the store took needs neither the spool (sqlite3) nor the record as JSON
    (orjson), and the output's own code needs no typing, re or idna codec: only the enum
    that the socket module itself brings."""
    if missing_reason("nsca"):
        pytest.skip(missing_reason("nsca"))
    with NscaServer() as daemon:
        cli.write_config(
            f'[spool]\npath = "{cli.tmp / "spool.db"}"\n'
            f"[outputs.nagios-nsca]\nport = {daemon.port}\n"
        )
        heavy_imports(cli, "--outputs", "stdout,nagios-nsca", "loadavg")
        imported, stdout = heavy_imports(cli, "--outputs", "stdout,nagios-nsca", "loadavg")
        daemon.flush()
        results = daemon.results()
    assert imported == "['enum']"
    assert '"name": "loadavg"' in stdout
    assert [result[2] for result in results] == ["loadavg", "loadavg"]
    assert not (cli.tmp / "spool.db").exists()
