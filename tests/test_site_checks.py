"""The README's site-check example, followed as written.

A site's check module on PYTHONPATH and named in `check_modules`, run through the README's NRPE
command line; and the same module as a small installed distribution with an entry point.
"""

import importlib.util
import json
import re
import subprocess
import sys

import pytest
from conftest import REPO, console_script

SECTION = "### Where a site's checks live"


def readme_section() -> str:
    """The README's section on site checks, up to the next heading."""
    text = (REPO / "README.md").read_text()
    assert SECTION in text, f"README.md has no {SECTION!r}"
    return re.split(r"^#", text.split(SECTION, 1)[1], maxsplit=1, flags=re.M)[0]


def readme_block(language: str, containing: str) -> str:
    """The one fenced block of `language` ("" for none) in that section holding `containing`."""
    blocks, current, opened = [], [], None
    for line in readme_section().splitlines(keepends=True):
        if line.startswith("```"):
            if opened is None:
                opened, current = line[3:].strip(), []
            else:
                blocks.append((opened, "".join(current)))
                opened = None
        elif opened is not None:
            current.append(line)
    found = [text for lang, text in blocks if lang == language and containing in text]
    assert len(found) == 1, f"README.md: {len(found)} ```{language} blocks hold {containing!r}"
    return found[0]


def as_here(command: str, cli, mysite, minimum: int) -> str:
    """The README's command with this test's paths, and a minimum that decides the status."""
    for part in ("/opt/accre-monitor/bin/accre-monitor", "--path /scratch", "--minimum 500"):
        assert part in command, f"README.md command changed shape: {command}"
    return (
        command.replace("/opt/accre-monitor/bin/accre-monitor", console_script("accre-monitor"))
        .replace("/opt/mysite", str(mysite))
        .replace("--path /scratch", f"--path {cli.tmp}")
        .replace("--minimum 500", f"--minimum {minimum}")
    )


def shell(command: str, env: dict) -> subprocess.CompletedProcess:
    """Run a command line as NRPE does, through /bin/sh."""
    return subprocess.run(
        ["/bin/sh", "-c", command],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def mysite(cli):
    """/opt/mysite of the README: a package `mysite` whose `checks` module is the example."""
    root = cli.tmp / "opt-mysite"
    (root / "mysite").mkdir(parents=True)
    (root / "mysite" / "__init__.py").write_text("")
    (root / "mysite" / "checks.py").write_text(readme_block("python", "def scratch_free("))
    return root


def test_a_site_check_on_pythonpath_named_in_check_modules_runs_from_nrpe(cli, mysite):
    cli.write_config(readme_block("toml", 'check_modules = ["mysite.checks"]'))
    del cli.env["PYTHONPATH"]
    line = readme_block("", "command[check_scratch_free]=").strip()
    command = line.partition("=")[2]

    ok = shell(as_here(command, cli, mysite, minimum=0), cli.env)
    assert ok.returncode == 0, ok.stderr
    short, _, record = ok.stdout.partition(" | ")
    assert short.startswith("SCRATCH OK - ")
    assert json.loads(record)["data"]["free_gib"] >= 0

    critical = shell(as_here(command, cli, mysite, minimum=10**9), cli.env)
    assert critical.returncode == 2, critical.stderr
    assert critical.stdout.startswith("SCRATCH CRITICAL - ")

    # the same command without PYTHONPATH: the module cannot be imported
    unreachable = shell(
        as_here(command, cli, mysite, 0).replace(f"PYTHONPATH={mysite} ", ""), cli.env
    )
    assert unreachable.returncode == 3
    assert "mysite.checks" in unreachable.stderr


def can_build_offline() -> bool:
    """setuptools with the `wheel` package (or setuptools >= 70.1) builds without an index."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    from setuptools import __version__ as version

    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) < (64, 0):
        return False
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def test_a_site_package_installed_with_its_entry_point_needs_no_check_modules(cli, mysite):
    if not can_build_offline():
        pytest.skip("building the site package needs setuptools>=64 and wheel: pip install wheel")
    (mysite / "pyproject.toml").write_text(readme_block("toml", "accre_monitor.checks"))
    install, run = readme_block("", "pip install /opt/mysite").strip().splitlines()
    assert install == "/opt/accre-monitor/bin/pip install /opt/mysite"
    # Installed into a directory of its own on PYTHONPATH rather than into the test environment,
    # which must not keep the site's entry point after the test.
    installed = cli.tmp / "installed"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + ["--no-deps", "--no-index", "--no-build-isolation", "--target", str(installed)]
        + [str(mysite)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    cli.env["PYTHONPATH"] = str(installed)  # the installed copy, not the source tree
    cli.write_config("[monitoring]\n")  # no check_modules: the entry point names the module

    ok = shell(as_here(run, cli, mysite, minimum=0), cli.env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("SCRATCH OK - ")
    assert "scratch_free" in cli.run("-h").stdout

    del cli.env["PYTHONPATH"]  # not installed: no entry point names it
    missing = shell(as_here(run, cli, mysite, minimum=0), cli.env)
    assert missing.returncode == 3
    assert "unknown check 'scratch_free'" in missing.stderr


def test_the_readme_site_check_refuses_a_typo_and_a_bad_value_and_documents_its_options(
    cli, mysite
):
    cli.write_config(readme_block("toml", 'check_modules = ["mysite.checks"]'))
    cli.env["PYTHONPATH"] = str(mysite)
    typo = cli.run("--outputs", "nagios-stdout", "scratch_free", "--pth", str(cli.tmp))
    assert typo.returncode == 3, typo.stdout
    assert typo.stdout.startswith("SCRATCH UNKNOWN - unknown option pth (known: path, minimum)")
    bad = cli.run("--outputs", "nagios-stdout", "scratch_free", "--minimum", "lots")
    assert bad.returncode == 3, bad.stdout
    assert bad.stdout.startswith("SCRATCH UNKNOWN - option minimum must be a number")
    text = cli.run("scratch_free", "-h").stdout
    assert "--path PATH" in text and "(default: /scratch)" in text
    assert "--minimum GIB" in text and "(default: 100)" in text
