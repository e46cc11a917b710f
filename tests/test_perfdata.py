"""Performance data from records, read back by the guidelines' grammar (tests/plugin_output.py)."""

import json

import pytest
from plugin_output import parse_perfdata, parse_plugin_output

from accre_monitor import Range
from accre_monitor.errors import ConfigError
from accre_monitor.outputs import create_output
from accre_monitor.perfdata import render
from accre_monitor.record import record_from_return


def record(data, perf=None, short=None, long=None, name="demo"):
    """A record as the command line builds it, hints validated on the way."""
    return record_from_return(name, ("OK", data, short, long, perf), runtime=0.1, node="n1")


def metrics(data, perf=None, name="demo"):
    rec = record(data, perf, name=name)
    assert rec["status"] == "OK", rec["data"]
    return {m.label: m for m in parse_perfdata(render(rec))}


def test_every_number_in_the_data_is_an_item_labelled_by_its_path():
    found = metrics({"a": 1, "b": {"c": 2.5, "d": [3, -4]}})
    assert {label: m.value for label, m in found.items()} == {
        "a": 1,
        "b.c": 2.5,
        "b.d.0": 3,
        "b.d.1": -4,
    }


def test_booleans_strings_and_nulls_are_not_numbers():
    assert set(metrics({"up": True, "name": "x", "none": None, "n": 0})) == {"n"}


def test_a_number_as_the_whole_data_is_labelled_with_the_check_name():
    assert metrics(42, name="users")["users"].value == 42


def test_list_items_are_labelled_by_position_or_by_the_labels_given():
    assert set(metrics([1, 2, 3])) == {"0", "1", "2"}
    found = metrics([0.5, 0.4, 0.3], {"$": {"labels": ["load1", "load5", "load15"]}})
    assert [(label, m.value) for label, m in found.items()] == [
        ("load1", 0.5),
        ("load5", 0.4),
        ("load15", 0.3),
    ]


def test_list_items_can_be_named_by_a_key_of_each_object():
    data = {"disks": [{"dev": "sda", "busy": 3}, {"dev": "sdb", "busy": 7}, {"busy": 1}]}
    found = metrics(data, {"disks": {"labels": "dev"}})
    assert {label: m.value for label, m in found.items()} == {
        "disks.sda.busy": 3,
        "disks.sdb.busy": 7,
        "disks.2.busy": 1,
    }


def test_hints_give_the_unit_thresholds_and_bounds():
    hints = {"used": {"uom": "%", "warn": Range("@80:"), "crit": "@90:", "min": 0, "max": 100}}
    used = metrics({"used": 85.5}, hints)["used"]
    assert (used.value, used.uom, used.warn, used.crit, used.min, used.max) == (
        85.5,
        "%",
        "@80:",
        "@90:",
        0,
        100,
    )


def test_a_star_in_a_hint_path_stands_for_any_one_label():
    data = {"mounts": [{"mount": "/", "pct": 50}, {"mount": "/home", "pct": 70}]}
    hints = {"mounts": {"labels": "mount"}, "mounts.*.pct": {"uom": "%", "crit": 60}}
    found = metrics(data, hints)
    assert {label: (m.uom, m.crit) for label, m in found.items()} == {
        "mounts./.pct": ("%", "60"),
        "mounts./home.pct": ("%", "60"),
    }


def test_an_exact_hint_path_wins_over_a_pattern():
    hints = {"a.*": {"uom": "s"}, "a.x": {"uom": "ms"}}
    found = metrics({"a": {"x": 1, "y": 2}}, hints)
    assert (found["a.x"].uom, found["a.y"].uom) == ("ms", "s")


def test_omit_leaves_out_a_value_and_everything_below_it():
    data = {"count": 2, "pids": [10, 11], "limits": {"min": 1, "max": 5}}
    found = metrics(data, {"pids": {"omit": True}, "limits": {"omit": True}})
    assert set(found) == {"count"}


def test_labels_with_spaces_equals_or_quotes_are_quoted_and_read_back_unchanged():
    labels = ["plain", "with space", "a=b", "it's", "''", "x.y:z;w"]
    found = metrics({label: index for index, label in enumerate(labels)})
    assert [(label, m.value) for label, m in found.items()] == [
        (label, index) for index, label in enumerate(labels)
    ]
    text = render(record({"it's": 1, "plain": 2}))
    assert text == "'it''s'=1 plain=2"


def test_a_pipe_or_a_line_break_in_a_label_cannot_break_the_plugin_output(capsys):
    rec = record({"a|b": 1, "c\nd": 2}, short="S")
    text = emitted(create_output("nagios-stdout", {"payload": "perfdata"}), rec, capsys)
    assert text.count("|") == 1
    assert text.count("\n") == 1
    assert [m.label for m in parse_plugin_output(text).perfdata] == ["a/b", "c d"]


def test_numbers_are_written_in_the_digits_dots_and_minus_of_the_grammar():
    found = metrics({"tiny": 1e-7, "huge": 1e20, "neg": -2.5, "whole": 3.0})
    assert found["tiny"].value == pytest.approx(1e-7)
    assert found["huge"].value == 1e20
    assert found["neg"].value == -2.5
    assert "whole=3" in render(record({"whole": 3.0}))


def test_trailing_empty_fields_are_dropped_and_inner_ones_kept():
    assert render(record({"x": 1})) == "x=1"
    assert render(record({"x": 1}, {"x": {"crit": 5}})) == "x=1;;5"
    assert render(record({"x": 1}, {"x": {"uom": "B", "max": 9}})) == "x=1B;;;;9"


def test_a_label_seen_twice_is_given_once():
    data = {"mounts": [{"mount": "/", "pct": 1}, {"mount": "/", "pct": 1}]}
    found = parse_perfdata(render(record(data, {"mounts": {"labels": "mount"}})))
    assert [m.label for m in found] == ["mounts./.pct"]


# -- the nagios-stdout output ----------------------------------------------------------------


def emitted(output, rec, capsys) -> str:
    output.emit(rec)
    return capsys.readouterr().out


def test_nagios_stdout_with_perfdata_payload_prints_text_then_perfdata_then_long_text(capsys):
    rec = record(
        [0.5, 0.25, 0.125],
        {"$": {"labels": ["load1", "load5", "load15"]}, "load1": {"warn": "~:4", "min": 0}},
        short="LOAD OK - load average: 0.50, 0.25, 0.12",
        long="first line\nsecond | line",
    )
    text = emitted(create_output("nagios-stdout", {"payload": "perfdata"}), rec, capsys)
    parsed = parse_plugin_output(text)
    assert parsed.text == "LOAD OK - load average: 0.50, 0.25, 0.12"
    assert [(m.label, m.value) for m in parsed.perfdata] == [
        ("load1", 0.5),
        ("load5", 0.25),
        ("load15", 0.125),
    ]
    assert (parsed.metric("load1").warn, parsed.metric("load1").min) == ("~:4", 0)
    assert parsed.long_lines == ["first line", "second / line"]


def test_nagios_stdout_without_numbers_prints_no_perfdata_separator(capsys):
    output = create_output("nagios-stdout", {"payload": "perfdata"})
    text = emitted(output, record({"a": "x"}), capsys)
    assert text == "demo OK\n"


def test_nagios_stdout_payload_json_is_the_default_single_line_record(capsys):
    rec = record({"a": 1}, {"a": {"uom": "s"}}, short="S")
    for settings in ({}, {"payload": "json"}):
        text = emitted(create_output("nagios-stdout", settings), rec, capsys)
        short, _, payload = text.rstrip("\n").partition(" | ")
        assert short == "S"
        assert json.loads(payload) == rec


@pytest.mark.parametrize("payload", ["xml", "JSON", "", 1, ["json"]])
def test_an_unknown_payload_is_a_settings_error(payload):
    with pytest.raises(ConfigError) as caught:
        create_output("nagios-stdout", {"payload": payload})
    assert str(caught.value) == 'outputs.nagios-stdout.payload must be "json" or "perfdata"'


def test_nagios_base64_stdout_takes_no_payload_setting(capsys):
    create_output("nagios-base64-stdout", {"payload": "perfdata"})
    assert "outputs.nagios-base64-stdout.payload" in capsys.readouterr().err
