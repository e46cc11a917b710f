"""The parsed-config cache holds the config's passwords: it must stay as private as the file."""

import json
import os

import pytest
from as_user import OTHER, needs_root, run_as, shared_directory

from accre_monitor import config_cache
from accre_monitor.config import load_config
from accre_monitor.errors import ConfigError

SWITCH = "ACCRE_MONITOR_CONFIG_CACHE"
CONFIG = '[monitoring]\ntimeout = 7\n[outputs.couch]\npassword = "hunter2"\n'


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The cache base ($XDG_CACHE_HOME) of this test; the config cache proper is below it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(SWITCH, raising=False)
    return tmp_path / "cache"


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    path.chmod(0o600)
    return path


def forge(config, timeout=99):
    """A private entry, valid for `config` as it is now, that says `timeout` (the file: 7)."""
    data = {"monitoring": {"timeout": timeout}}
    target = config_cache.cache_file(str(config))
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    for private in (os.path.dirname(directory), directory):
        os.chmod(private, 0o700)
    with open(target, "w") as handle:
        json.dump({"key": config_cache._key(os.stat(config)), "data": data}, handle)
    os.chmod(target, 0o600)
    return target


def tree(directory):
    """Every file below `directory`, with its mode."""
    return sorted(
        (os.path.join(root, name), os.lstat(os.path.join(root, name)).st_mode)
        for root, _, names in os.walk(directory)
        for name in names
    )


def test_a_private_entry_of_this_user_is_read(cache, config):
    forge(config)
    assert load_config(str(config)).timeout == 99.0


def test_the_entry_is_written_0600_in_directories_0700(cache, config):
    assert load_config(str(config)).timeout == 7.0
    entry = config_cache.cache_file(str(config))
    with open(entry) as handle:
        assert "hunter2" in handle.read()
    for path, mode in ((entry, 0o600), (cache / "accre-monitor" / "config", 0o700)):
        info = os.lstat(path)
        assert (info.st_uid, info.st_mode & 0o777) == (os.getuid(), mode)
    assert os.lstat(cache / "accre-monitor").st_mode & 0o777 == 0o700


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602], ids=oct)
def test_an_entry_open_to_group_or_others_is_ignored(cache, config, mode):
    os.chmod(forge(config), mode)
    assert load_config(str(config)).timeout == 7.0


@needs_root
def test_an_entry_owned_by_another_user_is_ignored(cache, config):
    os.chown(forge(config), OTHER, OTHER)
    assert load_config(str(config)).timeout == 7.0


def test_an_entry_that_is_a_link_is_ignored(cache, config, tmp_path):
    forged = forge(config)
    os.rename(forged, tmp_path / "forged.json")
    os.symlink(tmp_path / "forged.json", forged)
    assert load_config(str(config)).timeout == 7.0


@pytest.mark.parametrize("linked", ["accre-monitor", "accre-monitor/config"])
def test_a_cache_directory_that_is_a_link_is_neither_read_nor_written(
    cache, config, tmp_path, linked
):
    forged = forge(config)
    elsewhere = tmp_path / "elsewhere"
    os.rename(cache / linked, elsewhere)
    os.symlink(elsewhere, cache / linked)
    before = tree(elsewhere)
    assert os.path.basename(forged) in str(before)
    assert load_config(str(config)).timeout == 7.0
    assert tree(elsewhere) == before


@needs_root
@pytest.mark.parametrize("owned", ["accre-monitor", "accre-monitor/config"])
def test_a_cache_directory_of_another_user_is_neither_read_nor_written(cache, config, owned):
    forge(config)
    os.chown(cache / owned, OTHER, OTHER)
    directory = cache / "accre-monitor" / "config"
    before = sorted(os.listdir(directory))
    assert load_config(str(config)).timeout == 7.0
    assert sorted(os.listdir(directory)) == before
    assert os.lstat(cache / owned).st_uid == OTHER


@pytest.mark.parametrize("opened", ["accre-monitor", "accre-monitor/config"])
def test_a_cache_directory_open_to_others_is_not_read_and_closed_on_writing(cache, config, opened):
    forge(config)
    os.chmod(cache / opened, 0o755)
    assert config_cache.load(str(config), os.stat(config)) is None
    assert load_config(str(config)).timeout == 7.0  # parsed, and cached afresh
    assert os.lstat(cache / opened).st_mode & 0o777 == 0o700
    assert config_cache.load(str(config), os.stat(config))["monitoring"]["timeout"] == 7


def test_the_cache_can_be_turned_off(cache, config, monkeypatch):
    monkeypatch.setenv(SWITCH, "off")
    assert load_config(str(config)).timeout == 7.0
    assert not cache.exists()
    forge(config)
    assert load_config(str(config)).timeout == 7.0


@pytest.fixture
def shared_tmp():
    yield from shared_directory()


@needs_root
def test_the_entry_of_a_file_this_user_may_no_longer_read_is_removed(shared_tmp, monkeypatch):
    import tomllib  # noqa: F401 - the child may not reach the standard library to import it

    config = shared_tmp / "config.toml"
    config.write_text(CONFIG)
    os.chown(config, 0, OTHER)
    config.chmod(0o640)  # the user reads it as a member of its group
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared_tmp / "cache"))
    monkeypatch.delenv(SWITCH, raising=False)

    def timeout():
        try:
            return str(load_config(str(config)).timeout)
        except ConfigError as exc:
            return str(exc)

    assert run_as(OTHER, timeout) == "7"
    entry = config_cache.cache_file(str(config))
    assert os.lstat(entry).st_uid == OTHER
    config.chmod(0o600)
    assert run_as(OTHER, timeout).startswith(f"cannot read config file {config}")
    assert not os.path.lexists(entry)
