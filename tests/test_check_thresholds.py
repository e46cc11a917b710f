"""The threshold options of the built-in checks: a number in the check's meaning, or a range."""

import pytest

from accre_monitor import Range
from accre_monitor.checks._options import OptionError, threshold


def test_a_plain_number_takes_the_meaning_the_check_gives_it():
    limit = threshold({"warning": 80}, "warning", None, Range.alert_at_or_above)
    assert limit.range == Range("@80:")
    assert limit.given == 80
    assert limit.alerts(80) and not limit.alerts(79.9)


def test_a_numeric_string_from_json_is_a_plain_number():
    limit = threshold({"warning": "2.5"}, "warning", None, Range.alert_above)
    assert (limit.range, limit.given) == (Range("~:2.5"), 2.5)


def test_range_text_is_taken_as_written_and_given_back_as_its_text():
    limit = threshold({"warning": " @10:20"}, "warning", None, Range.alert_above)
    assert (limit.range, limit.given) == (Range("@10:20"), "@10:20")


def test_the_default_applies_when_the_option_is_unset_or_null():
    assert threshold({}, "warning", 5, Range.alert_below).range == Range("5:")
    assert threshold({"warning": None}, "warning", 5, Range.alert_below).given == 5
    assert threshold({}, "warning", None, Range.alert_below) is None


def test_bounds_apply_to_plain_numbers_only():
    with pytest.raises(OptionError, match="must be a number from 0 to 100 or a range"):
        threshold({"warning": 101}, "warning", None, Range.alert_above, minimum=0, maximum=100)
    limit = threshold({"warning": "101:"}, "warning", None, Range.alert_above, maximum=100)
    assert limit.range == Range("101:")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "option warning must be a number or a range \\(10, 10:"),
        ("5:1", "option warning: invalid range '5:1': start is greater than end"),
        ("1:x", "option warning: invalid range '1:x': 'x' is not a number"),
        (True, "option warning must be a number or a range"),
        ([1, 2], "option warning must be a number or a range"),
        (-1, "option warning: invalid range"),
    ],
)
def test_a_bad_threshold_is_an_option_error_naming_the_option(value, message):
    # Range itself (0:N) as the meaning of a number: -1 has no such range.
    with pytest.raises(OptionError, match=message):
        threshold({"warning": value}, "warning", None, Range)
