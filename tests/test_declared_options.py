"""Options a check declares: parsed and refused before the check runs, shown in its help.

One mechanism for the built-in checks and a site's: `@monitor_command(options=[Option(...)])`.
"""

import pytest

from accre_monitor import Option, OptionError, Range, monitor_command
from accre_monitor.discovery import defines_check
from accre_monitor.registry import REGISTRY


@pytest.fixture(autouse=True)
def _registry_kept():
    """The checks these tests declare leave the registry as it was."""
    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


def declared(*options, label=None):
    """A check declaring `options` that returns what it was given, as its data."""

    @monitor_command(label=label, options=list(options))
    def echo(opts):
        """Echo the parsed options."""
        return "OK", opts

    return echo


def refusal(check, opts):
    status, data, short, long = check(opts)
    assert status == "UNKNOWN"
    assert short == f"ECHO UNKNOWN - {data['error']}"
    return data["error"]


def test_a_declared_check_gets_every_option_parsed_with_its_default():
    check = declared(
        Option("path", str, "/scratch", "the directory"),
        Option("minimum", float, 100, "GiB"),
        Option("count", int, None, "how many"),
        Option("names", list, ["a", "b"], "names"),
        Option("verbose", bool, help="say more"),
    )
    status, data = check({"minimum": "2.5", "verbose": None})
    assert status == "OK"
    assert data == {
        "path": "/scratch",
        "minimum": 2.5,
        "count": None,
        "names": ["a", "b"],
        "verbose": True,
    }


def test_a_check_declaring_nothing_gets_the_payload_unchanged():
    @monitor_command
    def plain(opts):
        return "OK", opts

    assert plain({"pth": "/tmp", "warning": None}) == ("OK", {"pth": "/tmp", "warning": None})


def test_an_unknown_option_is_refused_naming_it():
    check = declared(Option("path", str, "/scratch", "the directory"))
    assert refusal(check, {"pth": "/tmp"}) == "unknown option pth (known: path)"


@pytest.mark.parametrize("name", ["config", "options", "outputs", "timeout"])
def test_an_accre_monitor_option_after_the_check_name_says_where_it_goes(name):
    check = declared(Option("path", str, "/scratch", "the directory"))
    assert refusal(check, {name: "x"}) == (
        f"--{name} is an accre-monitor option: it goes before the check name "
        f"(accre-monitor --{name} ... echo)"
    )


def test_a_check_may_declare_an_option_named_like_an_accre_monitor_option():
    check = declared(Option("timeout", float, 5, "seconds"))
    assert check({"timeout": 2}) == ("OK", {"timeout": 2})


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (Option("count", int, 1, "n", minimum=0), "abc", "option count must be an integer >= 0"),
        (Option("count", int, 1, "n"), 2.5, "option count must be an integer, not 2.5"),
        (Option("ratio", float, 1, "r", maximum=1), 3, "option ratio must be a number <= 1"),
        (Option("ratio", float, 1, "r"), True, "option ratio must be a number, not True"),
        (Option("verbose", bool, help="v"), "maybe", "option verbose must be true or false"),
        (Option("path", str, "/", "p"), ["a", "b"], "option path takes one value, not a list"),
        (Option("warning", Range, 5, "w"), "5:1", "option warning: invalid range '5:1'"),
        (Option("warning", Range, 5, "w"), "abc", "option warning must be a number or a range"),
    ],
)
def test_a_value_that_does_not_parse_is_refused_naming_the_option(option, value, message):
    check = declared(option)
    assert refusal(check, {option.name: value}).startswith(message)


@pytest.mark.parametrize("value", [None, ""])
@pytest.mark.parametrize("default", [None, 50])
def test_an_option_given_without_a_value_is_refused_not_taken_as_unset(value, default):
    """A bare `--warning` (or an empty NRPE argument) must not switch alerting off."""
    check = declared(Option("warning", Range.alert_above, default, "w"), Option("path", str))
    assert refusal(check, {"warning": value}) == "option warning needs a value"
    assert refusal(check, {"path": value}) == "option path needs a value"


def test_a_required_option_that_is_missing_is_refused():
    check = declared(Option("path", str, help="p", required=True))
    assert refusal(check, {}) == "option path is required"


def test_thresholds_are_ranges_that_keep_the_value_as_given():
    check = declared(
        Option("warning", Range, 50, "plain numbers as on any plugin's command line"),
        Option("critical", Range.alert_above, 100, "plain numbers: above them"),
    )
    _, opts = check({"critical": "2.5"})
    assert opts["warning"] == Range("0:50") and opts["warning"].given == 50
    assert opts["critical"] == Range("~:2.5") and opts["critical"].given == 2.5
    assert opts["critical"].alerts(3) and not opts["critical"].alerts(2)
    _, opts = check({"warning": "@10:20"})
    assert opts["warning"] == Range("@10:20") and opts["warning"].given == "@10:20"


def test_bounds_of_a_threshold_apply_to_plain_numbers_only():
    check = declared(Option("warning", Range.alert_at_or_above, 80, "pct", minimum=0, maximum=100))
    assert refusal(check, {"warning": 101}).startswith(
        "option warning must be a number from 0 to 100 or a range"
    )
    assert check({"warning": "101:"})[1]["warning"] == Range("101:")


def test_a_list_of_thresholds_parses_each_item():
    check = declared(Option("warning", [Range.alert_above], None, "one per item"))
    _, opts = check({"warning": [1, "@2:3"]})
    assert opts["warning"] == [Range("~:1"), Range("@2:3")]
    assert refusal(check, {"warning": [1, None]}).startswith("option warning must be a number")


def test_a_type_of_the_checks_own_refuses_with_its_message():
    def even(value):
        if not isinstance(value, int) or value % 2:
            raise ValueError(f"must be even, not {value!r}")
        return value

    check = declared(Option("pairs", even, 2, "an even number"))
    assert check({"pairs": 4})[1] == {"pairs": 4}
    assert refusal(check, {"pairs": 3}) == "option pairs: must be even, not 3"


def test_an_option_error_raised_by_the_check_itself_is_unknown_with_its_label():
    @monitor_command(label="PAIR", options=[Option("low", int), Option("high", int)])
    def pair(opts):
        if opts["low"] is not None and opts["high"] is not None and opts["low"] > opts["high"]:
            raise OptionError("option low is above high")
        return "OK", opts

    assert pair({"low": 3, "high": 1})[2] == "PAIR UNKNOWN - option low is above high"


def test_the_label_defaults_to_the_check_name_in_capitals():
    @monitor_command(options=[])
    def queue_depth(opts):
        return "OK", None

    assert queue_depth({"x": 1})[2] == "QUEUE_DEPTH UNKNOWN - unknown option x (known: none)"


@pytest.mark.parametrize(
    "options",
    [
        lambda: [Option("count", int, "many", "n")],  # a default that does not parse
        lambda: [Option("path", str), Option("path", str)],  # twice
        lambda: [Option("bad name", str)],
        lambda: [Option("x", object(), 1)],  # not a type
        lambda: ["path"],  # not an Option
    ],
)
def test_a_bad_declaration_fails_when_its_module_is_imported(options):
    with pytest.raises((TypeError, ValueError)):

        @monitor_command(options=options())
        def broken(opts):
            return "OK", None


def test_the_decorated_check_keeps_its_name_and_docstring():
    check = declared(Option("path", str))
    assert check.__name__ == "echo"
    assert check.__doc__ == "Echo the parsed options."
    assert REGISTRY["echo"] is check


def test_the_source_scan_finds_a_check_whose_decorator_spans_several_lines():
    source = b"""
from accre_monitor import Option, monitor_command

@monitor_command(
    label="SCRATCH",
    options=[
        Option("path", str, "/scratch", "the directory (a path)"),
        Option("minimum", float, 100, "GiB"),
    ],
)
def scratch_free(opts):
    return "OK", None


def helper(opts):
    return None
"""
    assert defines_check(source, "scratch_free")
    assert not defines_check(source, "helper")
