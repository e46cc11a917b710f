"""The renderer writes exactly what json.dumps writes, compact and indented, errors included."""

import enum
import json
import random

import pytest

from accre_monitor import jsontext

SCALARS = [
    None,
    True,
    False,
    0,
    -1,
    7,
    2**53 + 1,
    2**70 + 12345,
    -(2**100),
    0.0,
    -0.0,
    1.5,
    0.1,
    1e-7,
    1e16,
    1e300,
    5e-324,
    -2.5e-10,
    123456789.123456789,
    "",
    "plain",
    "caf\u00e9 \u65e5\u672c \U0001f600",
    'quote " backslash \\ slash /',
    "controls \x00\x01\x07\x08\t\n\x0b\x0c\r\x1b\x1f\x7f",
    "separators \u2028 \u2029",
    "lone \ud800 surrogate",
]

KEYS = [value for value in SCALARS if isinstance(value, str)] + ["k", "k2", "\u00e9"]


def compact(value, **kw):
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), **kw)


def indented(value, indent=2, **kw):
    separators = (",", ": ") if indent else (",", ":")
    return json.dumps(
        value, indent=indent, ensure_ascii=False, allow_nan=False, separators=separators, **kw
    )


def shape(rng, depth):
    """A random JSON value: scalars, and nested lists, tuples and dicts (empty ones too)."""
    kind = rng.random()
    if depth == 0 or kind < 0.45:
        return rng.choice(SCALARS + [rng.randint(-(10**20), 10**20), rng.uniform(-1e6, 1e6)])
    size = rng.choice([0, 0, 1, 2, 3, 5])
    if kind < 0.65:
        return [shape(rng, depth - 1) for _ in range(size)]
    if kind < 0.75:
        return tuple(shape(rng, depth - 1) for _ in range(size))
    return {
        rng.choice(SCALARS[19:] + ["k", "k2", "\u00e9"]): shape(rng, depth - 1) for _ in range(size)
    }


@pytest.mark.parametrize("seed", range(400))
def test_random_shapes_render_as_json_dumps_renders_them(seed):
    value = shape(random.Random(seed), depth=seed % 6 + 1)
    assert jsontext.dumps(value) == compact(value)
    assert jsontext.dumps(value, indent=2) == indented(value)


@pytest.mark.parametrize("value", [*SCALARS, [], {}, [[]], {"a": {}}, [{}, [], [[]]]])
def test_each_scalar_and_empty_container_renders_as_json_dumps_renders_it(value):
    for indent in (None, 0, 2, 4):
        expected = compact(value) if indent is None else indented(value, indent)
        assert jsontext.dumps(value, indent=indent) == expected


class Level(enum.IntEnum):
    HIGH = 3


class Ratio(float):
    def __repr__(self):
        return "a ratio"


class Name(str):
    pass


def test_subclasses_of_int_float_and_str_render_as_their_plain_values():
    value = {"level": Level.HIGH, "ratio": Ratio(0.25), Name("key"): [Name("text"), Level.HIGH]}
    assert jsontext.dumps(value) == compact(value)
    assert jsontext.dumps(value, indent=2) == indented(value)


def test_keys_that_are_numbers_booleans_or_null_are_written_as_json_writes_them():
    value = {7: "a", 2.5: "b", True: "c", None: "d", False: "e", Level.HIGH: "f", 1e16: "g"}
    assert jsontext.dumps(value) == compact(value)
    assert jsontext.dumps(value, indent=2) == indented(value)


def test_objects_go_through_default_as_in_json_dumps():
    value = {"when": {1, 2}}
    assert jsontext.dumps(value, default=sorted) == compact(value, default=sorted)
    assert jsontext.dumps(value, indent=2, default=sorted) == indented(value, default=sorted)


def refused(render, value):
    """The exception type and message `render(value)` raises."""
    with pytest.raises((TypeError, ValueError)) as caught:
        render(value)
    return type(caught.value), str(caught.value)


def looped():
    loop = {"a": []}
    loop["a"].append(loop)
    return loop


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        [1, float("inf")],
        {"a": -float("inf")},
        {float("nan"): 1},
        {(1, 2): "tuple key"},
        [object()],
        {"a": {1, 2}},
        looped(),
        [10**5000],
    ],
    ids=["nan", "inf", "-inf", "nan-key", "tuple-key", "object", "set", "loop", "huge-int"],
)
def test_what_json_refuses_is_refused_with_the_same_error(value):
    assert refused(jsontext.dumps, value) == refused(compact, value)
    indented_error = refused(lambda v: jsontext.dumps(v, indent=2), value)
    assert indented_error == refused(indented, value)


def test_a_refused_value_leaves_no_trace_on_the_next_rendering():
    shared = [1, 2]
    with pytest.raises(ValueError):
        jsontext.dumps([shared, float("nan")])
    assert jsontext.dumps([shared, shared]) == "[[1,2],[1,2]]"


def test_without_the_accelerator_json_itself_renders(monkeypatch):
    monkeypatch.setattr(jsontext, "make_encoder", None)
    value = {"a": [1, 2.5, "\u00e9"], "b": {}}
    assert jsontext.dumps(value) == compact(value)
    assert jsontext.dumps(value, indent=2) == indented(value)


@pytest.mark.parametrize("seed", range(200))
def test_random_texts_read_back_as_json_loads_reads_them(seed):
    rng = random.Random(seed)
    value = shape(rng, depth=seed % 6 + 1)
    for text in (
        json.dumps(value),
        json.dumps(value, ensure_ascii=False, indent=rng.choice([None, 0, 2, "\t"])),
        " \n\t" + json.dumps([value, float("nan"), float("inf"), -float("inf")]) + "\r\n ",
    ):
        assert repr(jsontext.loads(text)) == repr(json.loads(text))


def failure(read, text):
    """The exception type, message and position (when there is one) `read(text)` raises."""
    with pytest.raises(ValueError) as caught:
        read(text)
    return type(caught.value), str(caught.value), getattr(caught.value, "pos", None)


@pytest.mark.parametrize(
    "text",
    ["", "  \n", "[1,", "[1] x", "{} {}", '{"a" 1}', '["\x01"]', "\ufeff[1]", "nul", "1" * 5000],
    ids=["empty", "space", "cut", "extra", "two", "colon", "control", "bom", "word", "huge-int"],
)
def test_what_json_loads_refuses_is_refused_with_the_same_error(text):
    assert failure(jsontext.loads, text) == failure(json.loads, text)


def test_reading_imports_no_json_module_unless_the_text_is_refused():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from accre_monitor.jsontext import dumps, loads\n"
        "assert loads(dumps({'a': [1.5, None, 'x']})) == {'a': [1.5, None, 'x']}\n"
        "print(sorted(m for m in sys.modules if m == 'json' or m.startswith('json.')))\n"
    )
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True)
    assert done.stdout == "[]\n", done.stderr


def test_without_the_accelerator_json_itself_reads(monkeypatch):
    monkeypatch.setattr(jsontext, "make_scanner", None)
    assert jsontext.loads(' {"a": [NaN, 1]} ')["a"][1] == 1
    with pytest.raises(ValueError, match="Extra data"):
        jsontext.loads("1 2")
