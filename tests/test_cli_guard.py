"""The installed command running checks that misbehave: Nagios still gets one clean result."""

import json

import pytest

from accre_monitor.record import MAX_DEPTH

ODD_CHECKS = """
import os
from accre_monitor import monitor_command


@monitor_command
def undecodable(opts):
    \"\"\"Report a file name that is not valid UTF-8.\"\"\"
    name = os.fsdecode(b"/scratch/\\xff")
    return "WARNING", {name: name}, f"odd file {name}", f"found {name}"


@monitor_command
def deep(opts):
    \"\"\"Return data nested 1,100 levels deep.\"\"\"
    data = []
    for _ in range(1099):
        data = [data]
    return "OK", data
"""


@pytest.fixture
def site(cli):
    cli.write_module("oddsite.checks", ODD_CHECKS)
    cli.write_config('[monitoring]\ncheck_modules = ["oddsite.checks"]\n')
    return cli


def record_of(result):
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("timeout", ["0", "5"])
@pytest.mark.parametrize("outputs", ["stdout", "nagios-stdout"])
def test_undecodable_text_comes_out_as_valid_utf8(site, timeout, outputs):
    result = site.run(
        "--timeout",
        timeout,
        "--outputs",
        outputs,
        "undecodable",
        encoding="utf-8",
        errors="surrogateescape",
    )
    assert result.returncode == 1, result.stderr
    result.stdout.encode("utf-8")  # undecodable bytes would have become lone surrogates
    assert "Traceback" not in result.stderr
    if outputs == "stdout":
        record = record_of(result)
        assert record["data"] == {"/scratch/\ufffd": "/scratch/\ufffd"}
        assert (record["short"], record["long"]) == (
            "odd file /scratch/\ufffd",
            "found /scratch/\ufffd",
        )
    else:
        assert result.stdout.startswith("odd file /scratch/\ufffd | ")


@pytest.mark.parametrize("timeout", ["0", "5"])
def test_data_nested_too_deep_is_unknown_saying_so(site, timeout):
    result = site.run("--timeout", timeout, "deep")
    assert result.returncode == 3, result.stderr
    record = record_of(result)
    assert record["short"] == f"UNKNOWN: check returned data nested deeper than {MAX_DEPTH} levels"
    assert "Traceback" not in result.stderr
