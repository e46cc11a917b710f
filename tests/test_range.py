"""Nagios threshold ranges, against the table of the monitoring-plugins development guidelines."""

import subprocess
import sys
from pathlib import Path

import pytest
from plugin_output import alerts as guideline_alerts

from accre_monitor import Range

REPO = Path(__file__).resolve().parent.parent
VALUES = [-1e9, -10.5, -1, 0, 0.5, 5, 9.99, 10, 10.01, 15, 20, 20.5, 25, 1e9]


def alerting(spec) -> list[float]:
    return [value for value in VALUES if Range(spec).alerts(value)]


def test_a_plain_number_alerts_below_zero_or_above_it():
    assert alerting("10") == [-1e9, -10.5, -1, 10.01, 15, 20, 20.5, 25, 1e9]


def test_a_number_given_as_a_number_is_the_same_range_as_its_text():
    assert Range(10) == Range("10")
    assert Range(2.5) == Range("0:2.5")


def test_an_open_end_alerts_only_below_the_start():
    assert alerting("10:") == [-1e9, -10.5, -1, 0, 0.5, 5, 9.99]


def test_a_tilde_start_is_minus_infinity_so_only_values_above_alert():
    assert alerting("~:10") == [10.01, 15, 20, 20.5, 25, 1e9]


def test_a_closed_range_alerts_outside_its_inclusive_bounds():
    assert alerting("10:20") == [-1e9, -10.5, -1, 0, 0.5, 5, 9.99, 20.5, 25, 1e9]


def test_at_range_alerts_inside_inclusive_bounds():
    assert alerting("@10:20") == [10, 10.01, 15, 20]


def test_an_empty_start_before_the_colon_is_zero():
    assert Range(":10") == Range("0:10")


def test_negative_bounds_are_numbers_too():
    assert alerting("-10.5:-1") == [-1e9, 0, 0.5, 5, 9.99, 10, 10.01, 15, 20, 20.5, 25, 1e9]


@pytest.mark.parametrize("spec", ["10", "10:", "~:10", "10:20", "@10:20", "@~:0.5", "-5:5"])
def test_every_form_agrees_with_the_guidelines_table(spec):
    for value in VALUES:
        assert Range(spec).alerts(value) == guideline_alerts(spec, value), (spec, value)


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ("10", "10"),
        ("0:10", "10"),
        ("@10", "@0:10"),
        ("10:", "10:"),
        ("~:10", "~:10"),
        ("10:20", "10:20"),
        ("@10:20", "@10:20"),
        (" @1.50:2 ", "@1.5:2"),
        ("~:", "~:"),
        ("0:", "0:"),
        ("1e-7:1e20", "0.0000001:100000000000000000000"),
    ],
)
def test_a_range_prints_as_canonical_range_text(spec, text):
    assert str(Range(spec)) == text
    assert Range(str(Range(spec))) == Range(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty range"),
        ("@", "empty range"),
        ("abc", r"invalid range 'abc' \(expected 10, 10:, ~:10, 10:20 or @10:20\)"),
        ("@x", r"invalid range '@x' \(expected"),
        ("10:x", "'x' is not a number"),
        ("20:10", "start is greater than end"),
        ("10:~", "'~' is not a number"),
        ("inf", r"invalid range 'inf' \(expected"),
        ("1:nan", "'nan' is not a number"),
    ],
)
def test_a_malformed_range_is_refused_saying_why(spec, message):
    with pytest.raises(ValueError, match=message):
        Range(spec)


@pytest.mark.parametrize("spec", [True, None, [1, 2], {"a": 1}])
def test_only_text_and_numbers_make_ranges(spec):
    with pytest.raises(TypeError):
        Range(spec)


def test_a_negative_number_alone_is_no_range_as_its_end_is_below_zero():
    with pytest.raises(ValueError, match="start is greater than end"):
        Range(-1)


def test_the_named_forms_say_which_side_alerts():
    assert str(Range.alert_above(3)) == "~:3"
    assert str(Range.alert_below(3)) == "3:"
    assert str(Range.alert_at_or_above(80)) == "@80:"
    assert str(Range.alert_at_or_below(-2)) == "@~:-2"
    assert Range.alert_above(-1).alerts(0)
    assert not Range.alert_above(3).alerts(3)
    assert Range.alert_at_or_above(80).alerts(80)
    assert not Range.alert_below(5).alerts(5)


def test_between_refuses_a_start_above_the_end():
    with pytest.raises(ValueError):
        Range.between(5, 1)


def test_ranges_are_values_equal_by_bounds_and_hashable():
    assert Range("@0:10") == Range.between(0, 10, inside=True)
    assert Range("@0:10") != Range("0:10")
    assert len({Range("10"), Range("0:10"), Range(10)}) == 1
    assert repr(Range("~:3")) == "Range('~:3')"
    assert Range(Range("5:")) == Range("5:")


def test_ranges_and_performance_data_import_no_regular_expressions():
    # -S: no site-packages, whose start-up hooks may load `re` before we look.
    code = (
        "import sys; import accre_monitor.range, accre_monitor.perfdata; print('re' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    assert out.stdout.strip() == "False", out.stderr
