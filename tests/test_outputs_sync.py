import base64
import json

from accre_monitor.outputs import create_output
from accre_monitor.record import build_record, to_json


def record(**extra):
    base = build_record("disk", "WARNING", {"/": 85}, runtime=0.25, node="web01")
    base.update(extra)
    return base


def test_stdout_prints_the_record_as_indented_json(capsys):
    rec = record(short="DISK WARNING")
    create_output("stdout", {}).emit(rec)
    out = capsys.readouterr().out
    assert json.loads(out) == rec
    assert out == json.dumps(rec, indent=2, ensure_ascii=False) + "\n"


def test_nagios_stdout_prints_short_then_the_single_line_record(capsys):
    rec = record(short="DISK WARNING - / 85%")
    create_output("nagios-stdout", {}).emit(rec)
    out = capsys.readouterr().out
    first, _, rest = out.partition("\n")
    short, sep, payload = first.partition(" | ")
    assert (short, sep) == ("DISK WARNING - / 85%", " | ")
    assert json.loads(payload) == rec
    assert rest == ""


def test_nagios_stdout_puts_the_long_text_below(capsys):
    rec = record(short="DISK WARNING", long="/ 85%\n/home 12%")
    create_output("nagios-stdout", {}).emit(rec)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == ["/ 85%", "/home 12%"]


def test_nagios_short_text_defaults_to_name_and_status(capsys):
    create_output("nagios-stdout", {}).emit(record())
    assert capsys.readouterr().out.startswith("disk WARNING | {")


def test_a_pipe_in_the_texts_cannot_cut_the_nagios_line(capsys):
    rec = record(short="a|b\nc", long="x|y")
    create_output("nagios-stdout", {}).emit(rec)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("a/b c | {")
    assert json.loads(lines[0].partition(" | ")[2])["short"] == "a|b\nc"
    assert lines[1] == "x/y"


def test_nagios_base64_stdout_encodes_the_record(capsys):
    rec = record(short="DISK WARNING", long="details")
    create_output("nagios-base64-stdout", {}).emit(rec)
    lines = capsys.readouterr().out.splitlines()
    short, _, payload = lines[0].partition(" | ")
    assert short == "DISK WARNING"
    assert json.loads(base64.b64decode(payload)) == rec
    assert payload == base64.b64encode(to_json(rec).encode()).decode()
    assert lines[1] == "details"
