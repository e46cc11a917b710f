"""What the RabbitMQ benchmarks share: a regular install to time, servers on loopback,
private config files, the broker's queues, and the arithmetic of the figures.

The servers come from tests/servers.py (RabbitMQ, Redis) and tests/es_server.py (the
Elasticsearch test server), as the test suite starts them: loopback, a free port, a
temporary directory, stopped when the benchmark ends.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"


def _drop_checkout_from_path() -> None:
    """Take the checkout's root off sys.path (`PYTHONPATH=.`, `python -m` from it).

    Its `accre_monitor/` holds only the core: the installed package, which `package_dir`
    completes with `pipeline`, `outputs` and `checks`, would be shadowed by it. A benchmark
    times what is installed, whatever the working directory; its Python children run with
    `-P`, which leaves the working directory off their path.
    """
    root = os.path.realpath(REPO)
    sys.path[:] = [entry for entry in sys.path if os.path.realpath(entry or ".") != root]


_drop_checkout_from_path()
EXTRAS = "rabbitmq,redis,elasticsearch,metrics"

# FakeElasticsearch in a child process (its Python work must not share the timing process's
# GIL), answering one line per command on stdin: "count" (documents stored) or "reset".
ES_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from es_server import FakeElasticsearch
es = FakeElasticsearch().start()
print(es.port, flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "count":
        with es._lock:
            print(sum(len(index.docs) for index in es.indices.values()), flush=True)
    elif command == "reset":
        es.reset()
        print("ok", flush=True)
es.stop()
"""


def test_servers() -> Any:
    """tests/servers.py, importable once the repo's tests/ directory is on sys.path."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import servers

    return servers


def note(text: str) -> None:
    """Progress on stderr; stdout holds only the table."""
    print(f"# {text}", file=sys.stderr, flush=True)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def work_directory(stack: Any, prefix: str, keep: bool) -> Path:
    """A fresh temporary directory, removed when `stack` closes unless `keep` (then named)."""
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix=prefix))
    if keep:
        note(f"work directory: {work}")
    else:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
    return work


def install(work: Path, venv: str | None) -> Path:
    """The bin directory of a fresh virtualenv with a regular (non-editable) install of this
    checkout and the clients of the bus and the stores, as a node has it; or of `venv`."""
    if venv:
        return Path(venv) / "bin"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from cli_startup import make_venv

    note("building a virtualenv with a regular install of this checkout")
    return make_venv(work / "venv", EXTRAS)


def clean_env(home: Path) -> dict[str, str]:
    """The environment of a node: no ACCRE_MONITOR_* leaking in, bytecode cache kept."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCRE_MONITOR_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPATH", None)
    for key in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env.pop(key, None)
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    return env


def write_private(path: Path, text: str) -> Path:
    """A config file only its owner reads (one holding a broker password would be warned
    about otherwise, on stderr, in every timed run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def bus_section(url: str, prefix: str, **extra: Any) -> str:
    lines = [
        "[bus]",
        'kind = "rabbitmq"',
        f'url = "{url}"',
        f'exchange = "{prefix}"',
        f'queue_prefix = "{prefix}"',
    ]
    lines += [f"{key} = {_toml(value)}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def bus_defaults() -> dict[str, Any]:
    """The shipper's `[bus]` defaults (prefetch, batch_size, batch_wait...) as shipped."""
    from accre_monitor.sections import BUS

    return {key: setting.default for key, setting in BUS.items()}


def percentile(values: list[float], fraction: float) -> float:
    """The value at `fraction` (0..1) of the sorted values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.02) -> Any:
    """Poll `predicate` until it is true; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# -- servers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def broker(url: str | None) -> Iterator[str]:
    """The AMQP URL of `url`, or of a private RabbitMQ node started for the benchmark."""
    if url:
        yield url
        return
    servers = test_servers()
    reason = servers.missing_reason("rabbit")
    if reason:
        raise SystemExit(f"no RabbitMQ: {reason} (or pass --broker URL)")
    note("starting RabbitMQ")
    with servers.RabbitServer() as server:
        yield server.url


@contextlib.contextmanager
def redis_server() -> Iterator[Any]:
    """A private redis-server (the test suite's recipe)."""
    servers = test_servers()
    reason = servers.missing_reason("redis")
    if reason:
        raise SystemExit(f"no Redis: {reason}")
    with servers.RedisServer() as server:
        yield server


class ElasticsearchProcess:
    """tests/es_server.py's FakeElasticsearch in a child process: `url`, `count()`, `reset()`."""

    def __init__(self) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-P", "-c", ES_CHILD, str(TESTS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        port = self.child.stdout.readline().strip()
        if not port.isdigit():
            self.close()
            raise RuntimeError("FakeElasticsearch did not start")
        self.url = f"http://127.0.0.1:{port}"

    def _ask(self, command: str) -> str:
        self.child.stdin.write(command + "\n")
        self.child.stdin.flush()
        return self.child.stdout.readline().strip()

    def count(self) -> int:
        return int(self._ask("count"))

    def reset(self) -> None:
        self._ask("reset")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.child.stdin.close()
        try:
            self.child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait(timeout=10)

    def __enter__(self) -> ElasticsearchProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- the broker's queues ------------------------------------------------------------------------


def config_for(data: dict[str, Any]) -> Any:
    """A Config object from a dict shaped like the TOML file."""
    from accre_monitor.config import Config

    return Config(None, data)


def declare_queues(config: Any, outputs: list[str]) -> None:
    """The exchange and the queues of `outputs`, declared as the command line declares them."""
    from accre_monitor.pipeline.amqp import connect
    from accre_monitor.pipeline.topology import declare, queue_specs

    connection = connect(config.bus, 10)
    try:
        declare(connection.channel(), config.bus, queue_specs(config, outputs))
    finally:
        connection.close()


class QueueWatch:
    """One connection to look at (and purge) a queue."""

    def __init__(self, url: str) -> None:
        import pika

        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()

    def depth(self, queue: str) -> int:
        """Messages ready in `queue` (not counting those delivered and not yet acked)."""
        return self.channel.queue_declare(queue, passive=True).method.message_count

    def purge(self, queue: str) -> None:
        self.channel.queue_purge(queue)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()
