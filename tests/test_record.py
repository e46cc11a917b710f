import json
import os
import re

import orjson
import pytest

from accre_monitor import Range
from accre_monitor.record import (
    MAX_DEPTH,
    BadReturn,
    build_record,
    exception_result,
    iso_now,
    new_id,
    normalize_return,
    record_from_return,
    safe_repr,
    to_json,
)

ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")


def test_ids_are_unique_version_4_uuids():
    import uuid

    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(uuid.UUID(value).version == 4 for value in ids)


def test_dates_are_iso_8601_with_a_utc_offset():
    from datetime import datetime

    text = iso_now(1795462748.25)
    assert ISO_WITH_OFFSET.match(text)
    assert datetime.fromisoformat(text).timestamp() == pytest.approx(1795462748.25)


def test_a_record_has_the_documented_fields_in_order():
    record = build_record(
        "disk", "WARNING", {"used": 85}, "DISK WARNING", None, runtime=0.5, node="web01"
    )
    assert list(record) == ["id", "node", "date", "name", "status", "data", "runtime", "short"]
    assert record["node"] == "web01"
    assert record["runtime"] == 0.5


def test_the_node_defaults_to_the_short_host_name():
    import socket

    assert build_record("x", "OK", None)["node"] == socket.gethostname().split(".")[0]


@pytest.mark.parametrize(
    ("retval", "expected"),
    [
        (("ok", [1, 2]), ("OK", [1, 2], None, None, None)),
        (("Warning", {"a": (1, 2)}, "short"), ("WARNING", {"a": [1, 2]}, "short", None, None)),
        (["CRITICAL", None, "s", "l\nm"], ("CRITICAL", None, "s", "l\nm", None)),
        (
            ("OK", {"a": 1}, None, None, {"a": {"uom": "%", "crit": Range("@90:"), "min": None}}),
            ("OK", {"a": 1}, None, None, {"a": {"uom": "%", "crit": "@90:"}}),
        ),
    ],
)
def test_valid_returns_are_normalized(retval, expected):
    assert normalize_return(retval) == expected


@pytest.mark.parametrize(
    ("retval", "message"),
    [
        ("OK", "expected \\(status, data"),
        (("OK",), "1-tuple"),
        (("OK", 1, "s", "l", {}, "extra"), "6-tuple"),
        (("OK", 1, "s", "l", "extra"), "hints must be a mapping"),
        (("OK", 1, None, None, {"a": {"unit": "s"}}), "unknown keys unit"),
        (("OK", 1, None, None, {"a": {"uom": "seconds"}}), "uom for 'a' must be one of"),
        (("OK", 1, None, None, {"a": {"warn": "5:1"}}), "start is greater than end"),
        (("OK", 1, None, None, {"a": {"max": "100"}}), "max for 'a' must be a finite number"),
        (("OK", 1, None, None, {"a": {"labels": [1, 2]}}), "labels for 'a' must be"),
        (None, "NoneType"),
        (("FINE", 1), "unknown status 'FINE'"),
        ((0, 1), "unknown status 0"),
        (("OK", {1: "a"}), "cannot be serialized.*key 1"),
        (("OK", object()), "cannot be serialized"),
        (("OK", float("nan")), "cannot be serialized"),
        (("OK", 1, 42), "short text of type int"),
        (("OK", 1, "s", ["l"]), "long text of type list"),
    ],
)
def test_invalid_returns_are_refused_with_a_reason(retval, message):
    with pytest.raises(BadReturn, match=message):
        normalize_return(retval)


def test_a_record_carries_performance_data_hints_only_when_the_check_gave_them():
    hinted = record_from_return("load", ("OK", [0.5], None, None, {"$": {"labels": ["load1"]}}))
    assert hinted["perf"] == {"$": {"labels": ["load1"]}}
    assert "perf" not in record_from_return("load", ("OK", [0.5]))
    json.dumps(hinted)


def test_an_invalid_return_becomes_an_unknown_record_saying_why():
    record = record_from_return("mycheck", ("SUPER", 1))
    assert record["status"] == "UNKNOWN"
    assert "unknown status 'SUPER'" in record["data"]["error"]
    assert record["short"].startswith("UNKNOWN: ")
    json.dumps(record)


def nested(depth):
    """A list `depth` levels deep: [[...[]...]]."""
    data = []
    for _ in range(depth - 1):
        data = [data]
    return data


def test_data_as_deep_as_allowed_is_kept_and_every_output_can_encode_it():
    _, data, _, _, _ = normalize_return(("OK", {"deep": nested(MAX_DEPTH - 1)}))
    record = build_record("deep", "OK", data)
    assert orjson.loads(orjson.dumps(record)) == json.loads(to_json(record)) == record


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1100, 100_000])
def test_data_nested_deeper_than_allowed_is_refused_saying_so(depth):
    with pytest.raises(BadReturn, match=f"^check returned data nested deeper than {MAX_DEPTH} "):
        normalize_return(("OK", nested(depth)))


def test_a_data_structure_that_contains_itself_is_refused():
    loop = {}
    loop["self"] = loop
    with pytest.raises(BadReturn, match="nested deeper than"):
        normalize_return(("OK", loop))


def test_deep_data_becomes_an_unknown_record_with_a_short_repr():
    record = record_from_return("deep", ("OK", nested(1100)))
    assert record["status"] == "UNKNOWN"
    assert record["data"]["returned"] == "('OK', [[[[[[...]]]]]])"
    orjson.dumps(record)


def test_lone_surrogates_in_data_and_texts_become_replacement_characters():
    odd = os.fsdecode(b"scratch-\xff\xfe")
    status, data, short, long, _ = normalize_return(
        ("OK", {odd: [odd, ("x", odd)], "ok": "caf\u00e9"}, odd, "long " + odd)
    )
    clean = "scratch-\ufffd\ufffd"
    assert data == {clean: [clean, ["x", clean]], "ok": "caf\u00e9"}
    assert (short, long) == (clean, "long " + clean)
    to_json(build_record("odd", status, data, short, long)).encode("utf-8")


def test_an_exception_message_with_lone_surrogates_becomes_valid_text():
    exc = FileNotFoundError(os.fsdecode(b"/scratch/\xff"))
    status, data, short, long, _ = exception_result(exc, "Traceback: " + os.fsdecode(b"\xff"))
    assert data["message"] == "/scratch/\ufffd"
    assert short == "UNKNOWN: check raised FileNotFoundError: /scratch/\ufffd"
    assert long == "Traceback: \ufffd"
    to_json(build_record("odd", status, data, short, long)).encode("utf-8")


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no text")


def test_an_exception_that_cannot_be_printed_is_still_reported():
    _, data, short, _, _ = exception_result(Unprintable())
    assert data["exception"] == "Unprintable"
    assert short.startswith("UNKNOWN: check raised Unprintable: ")


class BadRepr:
    def __repr__(self):
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (nested(1100), "[[[[[["),
        (BadRepr(), "<BadRepr"),
        ("x" * 10_000, "'xxx"),
        (list(range(100_000)), "[0, 1, 2"),
        (os.fsdecode(b"\xff"), "'\\udcff'"),
    ],
)
def test_a_returned_value_is_described_safely_and_briefly(value, expected):
    text = safe_repr(value)
    assert text.startswith(expected)
    assert len(text) <= 1000
    text.encode("utf-8")
