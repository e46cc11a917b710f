import importlib
import sys

import pytest

from accre_monitor.util import import_module, interpret_string_value


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


def test_a_module_is_imported_by_its_dotted_name_as_importlib_would():
    sys.modules.pop("email.mime.text", None)
    module = import_module("email.mime.text")
    assert module is sys.modules["email.mime.text"] is importlib.import_module("email.mime.text")
    assert module.__name__ == "email.mime.text"


def test_a_missing_module_is_not_found_as_with_importlib():
    with pytest.raises(ModuleNotFoundError, match="'email.nowhere'"):
        import_module("email.nowhere")
