"""Threshold options: a number in the check's meaning, or a range."""

import pytest

from accre_monitor import Option, OptionError, Range


def threshold(value, plain, **bounds):
    return Option("warning", plain, **bounds).parse(value)


def test_a_plain_number_takes_the_meaning_the_check_gives_it():
    limit = threshold(80, Range.alert_at_or_above)
    assert limit == Range("@80:")
    assert limit.given == 80
    assert limit.alerts(80) and not limit.alerts(79.9)


def test_a_numeric_string_from_json_is_a_plain_number():
    limit = threshold("2.5", Range.alert_above)
    assert (limit, limit.given) == (Range("~:2.5"), 2.5)


def test_range_text_is_taken_as_written_and_given_back_as_its_text():
    limit = threshold(" @10:20", Range.alert_above)
    assert (limit, limit.given) == (Range("@10:20"), "@10:20")


def test_the_default_is_parsed_like_a_given_value():
    assert Option("warning", Range.alert_below, 5).value == Range("5:")
    assert Option("warning", Range.alert_below, 5).value.given == 5
    assert Option("warning", Range.alert_below).value is None


def test_bounds_apply_to_plain_numbers_only():
    with pytest.raises(OptionError, match="must be a number from 0 to 100 or a range"):
        threshold(101, Range.alert_above, minimum=0, maximum=100)
    assert threshold("101:", Range.alert_above, maximum=100) == Range("101:")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "option warning must be a number or a range \\(10, 10:"),
        ("5:1", "option warning: invalid range '5:1': start is greater than end"),
        ("1:x", "option warning: invalid range '1:x': 'x' is not a number"),
        (True, "option warning must be a number or a range"),
        ([1, 2], "option warning must be a number or a range"),
        (-1, "option warning: invalid range"),
        (None, "option warning needs a value"),
        ("", "option warning needs a value"),
    ],
)
def test_a_bad_threshold_is_an_option_error_naming_the_option(value, message):
    # Range itself (0:N) as the meaning of a number: -1 has no such range.
    with pytest.raises(OptionError, match=message):
        threshold(value, Range)
