"""Records survive the pipeline's JSON exactly, whichever path they take."""

import json

import pytest

from accre_monitor.codec import decode, encode


@pytest.mark.parametrize(
    "data",
    [
        {"big": 2**70 + 12345},
        {"negative": -(2**80) - 1},
        {"edge": [2**63 - 1, -(2**63), 2**63, 2**64]},
        {"float": 1e300, "small": 5e-324, "text": "12345678901234567890123"},
        {"nested": {"list": [1, 2.5, "x", None, True, {"deep": 10**30}]}},
    ],
)
def test_a_record_decodes_to_exactly_what_was_encoded(data):
    record = {"id": "r1", "data": data}
    assert decode(encode(record)) == record
    assert decode(encode(record).decode()) == record


def test_big_integers_stay_integers():
    decoded = decode(encode({"big": 2**70 + 12345}))["big"]
    assert isinstance(decoded, int) and decoded == 1180591620717411315769


def test_encoding_matches_standard_json():
    record = {"id": "é", "data": [1, 2**70, "a\u2028b"]}
    assert json.loads(encode(record)) == record
