import pytest

from accre_monitor.config import find_config_path, load_config
from accre_monitor.errors import ConfigError


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCRE_MONITOR_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("accre_monitor.config.SYSTEM_CONFIG", str(tmp_path / "etc.toml"))
    return tmp_path


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_without_any_file_the_builtin_default_applies(isolated):
    config = load_config()
    assert config.path is None
    assert config.outputs == ["stdout"]
    assert config.system == "nagios"
    assert config.lockdir is None
    assert config.auditor is False


def test_lookup_order_is_option_env_user_then_system(isolated, monkeypatch):
    system = write(isolated / "etc.toml", "")
    assert find_config_path() == str(system)
    user = write(isolated / "xdg" / "accre-monitor" / "config.toml", "")
    assert find_config_path() == str(user)
    monkeypatch.setenv("ACCRE_MONITOR_CONFIG", "/from/env.toml")
    assert find_config_path() == "/from/env.toml"
    assert find_config_path("/explicit.toml") == "/explicit.toml"


def test_monitoring_keys_are_read(isolated):
    path = write(
        isolated / "c.toml",
        '[monitoring]\noutputs = ["nagios-stdout"]\nauditor = true\nlockdir = "[DEFAULT]"\n'
        'check_modules = ["site.checks"]\ntimeout = 5\nnode = "n1"\n',
    )
    config = load_config(str(path))
    assert config.outputs == ["nagios-stdout"]
    assert config.auditor is True
    assert config.lockdir == "[DEFAULT]"
    assert config.check_modules == ["site.checks"]
    assert config.timeout == 5
    assert config.node == "n1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[monitoring\n", "invalid config file"),
        ("[monitoring]\nauditor = 1\n", "monitoring.auditor must be bool"),
        ("[monitoring]\ntimeout = true\n", "monitoring.timeout must be int or float"),
        (
            "[monitoring]\ntimeout = -1\n",
            "monitoring.timeout must be a number of seconds from 0 .no limit. to 86400, not -1",
        ),
        ('[monitoring]\noutputs = "stdout"\n', "monitoring.outputs must be list"),
        ("[monitoring]\noutputs = [1]\n", "must list strings"),
        ('[monitoring]\nsystem = "zabbix"\n', "unknown monitoring.system 'zabbix'"),
        ("monitoring = 3\n", "must be a table"),
    ],
)
def test_an_invalid_config_is_a_clear_error(isolated, text, message):
    path = write(isolated / "c.toml", text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path))


def test_a_missing_explicit_config_is_a_clear_error(isolated):
    with pytest.raises(ConfigError, match="cannot read config file /nonexistent.toml"):
        load_config("/nonexistent.toml")


def test_unknown_keys_and_sections_are_reported(isolated, capsys):
    path = write(isolated / "c.toml", "[monitoring]\noutput = []\n[extra]\na = 1\n")
    load_config(str(path))
    err = capsys.readouterr().err
    assert "unknown config key" in err and "monitoring.output" in err
    assert "unknown config section" in err and "extra" in err


def test_a_world_readable_config_holding_secrets_is_warned_about(isolated, capsys):
    path = write(isolated / "c.toml", '[outputs.couch]\npassword = "hunter2"\n')
    path.chmod(0o644)
    load_config(str(path))
    err = capsys.readouterr().err
    assert "readable by every user" in err
    assert "hunter2" not in err
    path.chmod(0o600)
    load_config(str(path))
    assert "readable by every user" not in capsys.readouterr().err


CACHE_PROBE = """
import sys
from accre_monitor.config import load_config
config = load_config(sys.argv[1])
print(config.timeout, "tomllib" in sys.modules)
"""


def probe(path, env):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-P", "-c", CACHE_PROBE, str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    timeout, parsed = done.stdout.split()
    return float(timeout), parsed == "True", done.stderr


@pytest.fixture
def cache_env(tmp_path):
    import os

    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_a_parsed_config_is_cached_until_the_file_changes(isolated, cache_env):
    path = write(isolated / "c.toml", "[monitoring]\ntimeout = 7\n")
    assert probe(path, cache_env)[:2] == (7.0, True)  # parsed, then cached
    assert probe(path, cache_env)[:2] == (7.0, False)  # read back without tomllib
    path.write_text("[monitoring]\ntimeout = 8\n")
    assert probe(path, cache_env)[:2] == (8.0, True)


def test_a_cached_config_still_reports_its_unknown_keys(isolated, cache_env):
    path = write(isolated / "c.toml", "[monitoring]\ntimeot = 7\n")
    probe(path, cache_env)
    _, parsed, stderr = probe(path, cache_env)
    assert not parsed
    assert "monitoring.timeot" in stderr


def test_an_unwritable_cache_is_skipped(isolated, cache_env, tmp_path):
    (tmp_path / "cache").write_text("not a directory")
    path = write(isolated / "c.toml", "[monitoring]\ntimeout = 7\n")
    assert probe(path, cache_env)[:2] == (7.0, True)
    assert probe(path, cache_env)[:2] == (7.0, True)
