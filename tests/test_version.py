"""`accre-monitor --version` and `accre-pipeline --version`: the installed distribution's
version, read from its metadata only when asked."""

from importlib.metadata import version

import pytest
from test_startup import heavy_imports

from accre_monitor import version as version_module

INSTALLED = version("accre-monitor")


@pytest.mark.parametrize("script", ["accre-monitor", "accre-pipeline"])
def test_version_prints_the_installed_distributions_version(cli, script):
    done = cli.run("--version", script=script)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{script} {INSTALLED}\n", "")


@pytest.mark.parametrize("script", ["accre-monitor", "accre-pipeline"])
def test_version_needs_no_working_config(cli, script):
    cli.write_config("[monitoring\nthis is not TOML")
    done = cli.run("--config", str(cli.config_path), "--version", script=script)
    assert (done.returncode, done.stdout) == (0, f"{script} {INSTALLED}\n")


def test_version_after_the_check_name_is_the_checks_option_and_says_where_it_belongs(cli):
    done = cli.run("--outputs", "nagios-stdout", "loadavg", "--version")
    assert done.returncode == 3
    assert done.stdout.startswith(
        "LOAD UNKNOWN - --version is an accre-monitor option: run accre-monitor --version"
    )


def test_the_help_and_an_unknown_option_name_version(cli):
    assert "--version" in cli.run("-h").stdout
    assert "--version" in cli.run("--versio").stderr
    assert "--version" in cli.run("-h", script="accre-pipeline").stdout


def test_only_a_version_run_reads_the_distributions_metadata(cli):
    """importlib.metadata costs a run several times its check: a check run never loads it."""
    heavy = ("importlib.metadata",)
    imported, stdout = heavy_imports(cli, "--version", heavy=heavy)
    assert (imported, stdout) == ("['importlib.metadata']", f"accre-monitor {INSTALLED}\n")
    imported, _ = heavy_imports(cli, "--outputs", "stdout", "loadavg", heavy=heavy)
    assert imported == "[]"


def test_a_version_that_is_not_installed_says_so(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert version_module.version_line("accre-monitor") == (
        "accre-monitor unknown (the accre-monitor distribution is not installed)"
    )
