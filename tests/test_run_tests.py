"""The README's test command does the set-up: as root, `./run-tests` installs only the servers
it finds missing before pytest; as another user, its last lines count the tests skipped for a
missing server and name the one command that installs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import servers
import skip_summary
from as_user import OTHER, needs_root, shared_directory
from conftest import REPO

TESTS = Path(__file__).resolve().parent

SAMPLE = """
import pytest

MISSING = "redis-server not found: apt-get install redis-server, or run .ci/install-servers"

@pytest.fixture
def redis():
    pytest.skip(MISSING)

def test_skipped_in_its_call():
    pytest.skip(MISSING)

def test_skipped_by_its_fixture(redis):
    pass

@pytest.mark.parametrize("n", [1, 2])
def test_skipped_twice(n):
    pytest.skip(MISSING)

def test_skipped_for_another_reason():
    pytest.skip("no IPv6 loopback")

@pytest.mark.skipif(True, reason="needs root to act as another user")
def test_skipped_by_a_mark():
    pass

def test_that_passes():
    pass
"""


def run_pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    """pytest with the plugin on a test file of its own, outside this project's config."""
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "-p", "skip_summary", "-p", "no:cacheprovider"]
        + ["-ra", "test_sample.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_last_lines_count_the_tests_skipped_for_a_missing_server_and_name_the_command(
    tmp_path,
):
    done = run_pytest(tmp_path, SAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "1 passed, 6 skipped" in lines[-4]
    assert lines[-3:] == ["", *skip_summary.summary_lines(4, os.geteuid() == 0)]
    assert lines[-2] == (
        "4 integration tests were skipped: a server they start is not installed here."
    )


def test_nothing_is_added_when_no_test_was_skipped_for_a_server(tmp_path):
    done = run_pytest(tmp_path, "def test_passes():\n    pass\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout.splitlines()[-1]


def test_the_command_is_sudo_for_a_user_and_bare_for_root():
    assert skip_summary.summary_lines(0, as_root=False) == []
    assert skip_summary.summary_lines(1, as_root=False) == [
        "1 integration test was skipped: a server they start is not installed here.",
        "Install the servers with: sudo .ci/install-servers",
    ]
    assert skip_summary.summary_lines(3, as_root=True)[-1] == (
        "Install the servers with: .ci/install-servers"
    )


def test_every_reason_for_a_missing_server_is_counted(monkeypatch):
    """Each kind's reason names the install script the summary looks for."""
    monkeypatch.setattr(servers, "_which", lambda name: None)
    monkeypatch.setattr(servers, "pouchdb_binary", lambda: None)
    monkeypatch.setattr(servers, "RABBIT_BIN_DIR", Path("/nonexistent"))
    for kinds in servers.INSTALLABLE.values():
        for kind in kinds:
            assert skip_summary.MARK in servers.missing_reason(kind)


def test_the_missing_servers_are_named_as_install_servers_takes_them(monkeypatch):
    gone = {"couch", "send_nsca"}
    monkeypatch.setattr(servers, "missing_reason", lambda kind: "gone" if kind in gone else None)
    assert servers.missing_servers() == ["nsca", "pouchdb-server"]
    script = (REPO / ".ci" / "install-servers").read_text()
    for name in servers.INSTALLABLE:
        assert f"\n        {name})" in script, f".ci/install-servers does not take {name}"


def test_servers_missing_here_are_printed_for_the_shell_scripts():
    done = subprocess.run(
        ["python3", str(TESTS / "servers.py"), "--missing"],
        env={**os.environ, "ACCRE_MONITOR_POUCHDB": "/nonexistent/pouchdb-server"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "pouchdb-server" in done.stdout.split()


@pytest.fixture
def checkout():
    """A copy of ./run-tests beside stand-ins that record how they were called: the install
    script, the server probe (it reports $STUB_MISSING) and the virtualenv's Python."""
    for root in shared_directory():
        (root / ".ci").mkdir()
        (root / "tests").mkdir()
        (root / ".venv" / "bin").mkdir(parents=True)
        shutil.copy(REPO / "run-tests", root / "run-tests")
        record = '#!/bin/sh\necho "$(basename "$0") $*" >> "$CALLS"\n'
        for stub in (root / ".ci" / "install-servers", root / ".venv" / "bin" / "python"):
            stub.write_text(record)
            stub.chmod(0o755)
        (root / "tests" / "servers.py").write_text(
            "import os\nprint(os.environ.get('STUB_MISSING', ''))\n"
        )
        root.chmod(0o777)  # the user's run writes its calls here
        yield root


def run_tests(root: Path, missing: str, user: int | None = None) -> list[str]:
    """Run the copied ./run-tests; the calls the stand-ins saw."""
    calls = root / "calls"
    env = {"PATH": "/usr/bin:/bin", "STUB_MISSING": missing, "HOME": str(root), "CALLS": str(calls)}
    done = subprocess.run(
        ["./run-tests", "-x", "-q"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        user=user,
    )
    assert done.returncode == 0, done.stderr
    return calls.read_text().splitlines() if calls.exists() else []


@needs_root
def test_as_root_it_installs_only_the_missing_servers_before_pytest(checkout):
    assert run_tests(checkout, "pouchdb-server chromium") == [
        "install-servers pouchdb-server chromium",
        "python -m pip install -q --disable-pip-version-check -e .[all,test]",
        "python -m pytest -x -q",
    ]


@needs_root
def test_as_root_with_every_server_installed_it_installs_nothing(checkout):
    assert [call.split()[0] for call in run_tests(checkout, "")] == ["python", "python"]


def test_as_another_user_it_installs_nothing(checkout):
    user = OTHER if os.geteuid() == 0 else None
    calls = run_tests(checkout, "pouchdb-server", user=user)
    assert [call.split()[0] for call in calls] == ["python", "python"]
