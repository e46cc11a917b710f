import pytest

from accre_monitor.errors import ConfigError
from accre_monitor.pipeline.filters import (
    check_names,
    exclude_check_names,
    min_severity,
    stages_from_settings,
)


def rec(status="OK", name="disk_usage"):
    return {"status": status, "name": name}


def test_min_severity_passes_at_or_above_the_level():
    stage = min_severity("warning")
    assert [stage(rec(s)) for s in ("OK", "WARNING", "CRITICAL", "UNKNOWN")] == [
        False,
        True,
        True,
        True,
    ]


def test_unknown_ranks_with_critical():
    stage = min_severity("CRITICAL")
    assert stage(rec("UNKNOWN")) and stage(rec("CRITICAL")) and not stage(rec("WARNING"))


def test_check_name_patterns_are_shell_style():
    stage = check_names(["disk*", "mounts"])
    assert stage(rec(name="disk_usage")) and stage(rec(name="mounts"))
    assert not stage(rec(name="loadavg"))
    assert not exclude_check_names(["disk*"])(rec(name="disk_usage"))


def test_an_output_section_builds_its_stages():
    stages = stages_from_settings("es", {"min_severity": "WARNING", "checks": "disk*"})
    assert len(stages) == 2
    assert all(stage(rec("WARNING")) for stage in stages)
    assert not all(stage(rec("WARNING", "loadavg")) for stage in stages)


@pytest.mark.parametrize(
    "settings", [{"min_severity": "LOUD"}, {"min_severity": 3}, {"checks": [1]}]
)
def test_bad_filter_settings_are_config_errors(settings):
    with pytest.raises(ConfigError):
        stages_from_settings("es", settings)
