import pytest

from accre_monitor.errors import UserError
from accre_monitor.options import (
    build_payload,
    parse_check_args,
    parse_command_line,
    parse_json_options,
    parse_outputs,
    parse_timeout,
)


def test_the_commands_options_go_before_the_check_name():
    line = parse_command_line(
        ["--options", '{"a": 1}', "--outputs=stdout", "loadavg", "--warning", "1,1,1"]
    )
    assert line.globals == {"options": '{"a": 1}', "outputs": "stdout"}
    assert line.check == "loadavg"
    assert line.check_args == ["--warning", "1,1,1"]
    assert not line.help


def test_everything_after_the_check_name_belongs_to_the_check():
    line = parse_command_line(["disk", "--config", "x", "--timeout", "3"])
    assert line.globals == {}
    assert line.check_args == ["--config", "x", "--timeout", "3"]


def test_help_after_the_check_name_asks_for_the_checks_help():
    assert parse_command_line(["loadavg", "-h"]).help
    assert parse_command_line(["loadavg", "--warning", "1", "--help"]).help


def test_help_alone_asks_for_the_overview():
    line = parse_command_line(["-h"])
    assert line.help and line.check is None


def test_an_unknown_option_before_the_check_name_is_a_user_error():
    with pytest.raises(UserError, match="unknown option --warning"):
        parse_command_line(["--warning", "1", "loadavg"])


def test_an_option_missing_its_value_is_a_user_error():
    with pytest.raises(UserError, match="--config needs a value"):
        parse_command_line(["--config"])


def test_check_arguments_are_interpreted_pairs_and_flags():
    options = parse_check_args(
        ["--warning", "1,2,3", "--name=sshd", "--verbose", "--max-count", "-5", "--last"]
    )
    assert options == {
        "warning": [1, 2, 3],
        "name": "sshd",
        "verbose": None,
        "max_count": -5,
        "last": None,
    }


def test_a_bare_positional_check_argument_is_a_user_error():
    with pytest.raises(UserError, match="unexpected argument"):
        parse_check_args(["/home"])


def test_extra_options_override_the_json_payload():
    payload = build_payload('{"warning": [1, 1, 1], "keep": true}', ["--warning", "5"])
    assert payload == {"warning": 5, "keep": True}


def test_json_and_extra_option_forms_give_the_same_payload():
    from_json = build_payload('{"warning": [1, 1, 1], "critical": [2, 2, 2]}', [])
    from_args = build_payload(None, ["--warning", "1,1,1", "--critical", "2,2,2"])
    assert from_json == from_args


@pytest.mark.parametrize("text", ["{", "[1, 2]", '"x"', "3", "null"])
def test_options_that_are_not_a_json_object_are_a_user_error(text):
    with pytest.raises(UserError, match="--options"):
        parse_json_options(text)


@pytest.mark.parametrize("text", ["abc", "-1", "nan", "inf"])
def test_a_bad_timeout_is_a_user_error(text):
    with pytest.raises(UserError, match="--timeout"):
        parse_timeout(text)


def test_outputs_are_a_comma_separated_list():
    assert parse_outputs("stdout, nagios-stdout,") == ["stdout", "nagios-stdout"]
    with pytest.raises(UserError):
        parse_outputs(",")


def test_w_and_c_are_warning_and_critical_as_on_every_nagios_plugin():
    assert parse_check_args(["-w", "5,5,5", "-c", "10,10,10"]) == {
        "warning": [5, 5, 5],
        "critical": [10, 10, 10],
    }
    assert parse_check_args(["-w5", "-c-1"]) == {"warning": 5, "critical": -1}
    assert parse_check_args(["-w", "-1,-1,-1"]) == {"warning": [-1, -1, -1]}


@pytest.mark.parametrize(
    "args",
    [["--warning", "-c", "30"], ["-w", "-c", "30"], ["-w", "--critical", "30"], ["--warning="]],
)
def test_an_option_followed_by_another_has_no_value(args):
    options = parse_check_args(args)
    assert options["warning"] in (None, "")
    assert options.get("critical", 30) == 30


def test_a_single_dash_other_than_w_and_c_is_still_refused():
    with pytest.raises(UserError, match="unexpected argument '-x'"):
        parse_check_args(["-x", "1"])
