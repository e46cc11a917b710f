import pytest

from accre_monitor.util import interpret_string_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("-4", -4),
        ("2.5", 2.5),
        ("1,2,3", [1, 2, 3]),
        ("1,2.5,x", [1, 2.5, "x"]),
        ("a,b", ["a", "b"]),
        ("hello", "hello"),
        ("", ""),
        ("/var/log", "/var/log"),
    ],
)
def test_strings_become_the_values_they_spell(text, expected):
    value = interpret_string_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_none_stays_none():
    assert interpret_string_value(None) is None


@pytest.mark.parametrize("word", ["nan", "inf", "-inf", "Infinity"])
def test_words_that_python_reads_as_floats_stay_strings(word):
    assert interpret_string_value(word) == word
