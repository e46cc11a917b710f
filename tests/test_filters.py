"""Filter stages are values: what they pass, and the binding keys that select the same."""

import itertools

import pytest

from accre_monitor.errors import ConfigError
from accre_monitor.pipeline.filters import (
    CheckNames,
    ExcludeCheckNames,
    MinSeverity,
    all_match,
    binding_keys,
    stages_from_settings,
)
from accre_monitor.status import STATUSES


def rec(status="OK", name="disk_usage"):
    return {"status": status, "name": name}


def topic_matches(pattern: str, key: str) -> bool:
    """RabbitMQ's topic matching: `*` one word, `#` zero or more words."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and (p[0] == "*" or p[0] == k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), key.split("."))


def test_min_severity_passes_at_or_above_the_level():
    stage = MinSeverity("warning")
    assert [stage.matches(rec(s)) for s in STATUSES] == [False, True, True, True]


def test_unknown_ranks_with_critical():
    stage = MinSeverity("CRITICAL")
    assert stage.matches(rec("UNKNOWN")) and stage.matches(rec("CRITICAL"))
    assert not stage.matches(rec("WARNING"))


def test_min_severity_warning_binds_the_three_problem_statuses():
    assert MinSeverity("WARNING").binding_keys() == ["WARNING.#", "CRITICAL.#", "UNKNOWN.#"]


def test_check_name_patterns_are_shell_style():
    stage = CheckNames(["disk*", "mounts"])
    assert stage.matches(rec(name="disk_usage")) and stage.matches(rec(name="mounts"))
    assert not stage.matches(rec(name="loadavg"))
    assert not ExcludeCheckNames(["disk*"]).matches(rec(name="disk_usage"))


def test_plain_check_names_bind_one_key_each_and_patterns_none():
    assert CheckNames(["disk_usage", "mounts"]).binding_keys() == ["*.disk_usage", "*.mounts"]
    assert CheckNames(["disk*"]).binding_keys() is None
    assert ExcludeCheckNames(["mounts"]).binding_keys() is None


def test_no_stage_binds_everything():
    assert binding_keys([]) == ["#"]


def test_stages_combine_into_the_keys_of_both():
    stages = [MinSeverity("CRITICAL"), CheckNames(["disk_usage"])]
    assert binding_keys(stages) == ["CRITICAL.disk_usage", "UNKNOWN.disk_usage"]


@pytest.mark.parametrize(
    "stages",
    [
        [],
        [MinSeverity("WARNING")],
        [MinSeverity("OK"), CheckNames(["loadavg", "mounts"])],
        [CheckNames(["disk*"]), MinSeverity("CRITICAL")],
        [ExcludeCheckNames(["mounts"]), CheckNames(["mounts", "loadavg"])],
        [MinSeverity("WARNING"), MinSeverity("CRITICAL")],
    ],
)
def test_the_binding_keys_select_every_record_the_stages_pass(stages):
    keys = binding_keys(stages)
    for status, name in itertools.product(STATUSES, ["loadavg", "mounts", "disk_usage"]):
        record = rec(status, name)
        routed = any(topic_matches(key, f"{status}.{name}") for key in keys)
        if all_match(stages, record):
            assert routed, (record, keys)
        if all(s.binding_keys() is not None for s in stages):
            assert routed == all_match(stages, record), (record, keys)


def test_an_output_section_builds_its_stages():
    stages = stages_from_settings("es", {"min_severity": "WARNING", "checks": "disk*"})
    assert stages == [MinSeverity("WARNING"), CheckNames(["disk*"])]
    assert all_match(stages, rec("WARNING"))
    assert not all_match(stages, rec("WARNING", "loadavg"))


@pytest.mark.parametrize(
    "settings", [{"min_severity": "LOUD"}, {"min_severity": 3}, {"checks": [1]}]
)
def test_bad_filter_settings_are_config_errors_naming_the_key(settings):
    with pytest.raises(ConfigError, match=f"outputs.es.{next(iter(settings))}"):
        stages_from_settings("es", settings)
