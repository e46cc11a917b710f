"""Shared fixtures: running the installed command line in an isolated environment, and the
servers the integration tests deliver to (a module may define its own of the same name)."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from servers import NscaServer, RabbitServer, missing_reason
from slack_server import SlackServer

# after pytest's last line: the tests skipped for a missing server, and what installs them
pytest_plugins = ["skip_summary"]

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def console_script(name: str) -> str:
    """The installed console script beside this interpreter (the package must be installed)."""
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[all,test]'")
    return found


class Cli:
    """Runs `accre-monitor` (or another console script) as a subprocess with a private HOME."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.sitedir = tmp_path / "site"
        self.sitedir.mkdir()
        self.config_path = tmp_path / "config.toml"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("ACCRE_MONITOR_") and key != "XDG_CONFIG_HOME"
        }
        self.env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_STATE_HOME=str(self.home / ".local" / "state"),
            PYTHONPATH=str(self.sitedir),
        )

    def write_config(self, text: str) -> Path:
        self.config_path.write_text(textwrap.dedent(text))
        self.env["ACCRE_MONITOR_CONFIG"] = str(self.config_path)
        return self.config_path

    def write_module(self, dotted: str, source: str) -> Path:
        """A module (or a package's module) on the subprocess's PYTHONPATH."""
        parts = dotted.split(".")
        directory = self.sitedir
        for package in parts[:-1]:
            directory = directory / package
            directory.mkdir(exist_ok=True)
            (directory / "__init__.py").touch()
        path = directory / f"{parts[-1]}.py"
        path.write_text(textwrap.dedent(source))
        return path

    def run(self, *args: str, script: str = "accre-monitor", timeout: float = 60, **kw):
        return subprocess.run(
            [console_script(script), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **kw,
        )

    def popen(self, *args: str, script: str = "accre-monitor") -> subprocess.Popen:
        return subprocess.Popen(
            [console_script(script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture(autouse=True)
def _forget_secrets():
    """Secrets one test's config made known are not hidden from the next test's messages."""
    yield
    from accre_monitor import redaction

    redaction.forget()


def _serving(kind: str, server_class):
    """A server of `kind` while the fixture lasts; the test skipped where none can run here."""
    if missing_reason(kind):
        pytest.skip(missing_reason(kind))
    with server_class() as server:
        yield server


@pytest.fixture(scope="module")
def broker():
    """A RabbitMQ node for the module: each test declares an exchange and queues of its own."""
    yield from _serving("rabbit", RabbitServer)


@pytest.fixture
def daemon():
    """The NSCA daemon, fresh for each test: what it took is in its command file."""
    yield from _serving("nsca", NscaServer)


@pytest.fixture
def slack():
    """The Slack test webhook on loopback (the Slack output posts with urllib3)."""
    pytest.importorskip("urllib3")
    with SlackServer() as server:
        yield server
