"""`nagios-nsca` from the command line: outages, replay in time order, expiry past max_age."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from servers import NscaServer, missing_reason
from test_outage import nsca_record

pytestmark = pytest.mark.integration

PASSWORD = "cli-n5ca-pass"


def configure(cli, srv, extra=""):
    cli.write_config(
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\ninline_budget = 2.0\n'
        f"[outputs.nagios-nsca]\nport = {srv.port}\ntimeout = 1\n{extra}"
    )


def run(cli, *args, expect=0):
    result = cli.run("--outputs", "stdout,nagios-nsca", *(args or ("loadavg",)))
    assert result.returncode == expect, result.stderr
    return json.loads(result.stdout), result.stderr


def pipeline(cli, *args):
    return cli.run(*args, script="accre-pipeline")


def nsca_status(cli) -> dict:
    result = pipeline(cli, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["outputs"].get("nagios-nsca", {"spooled": 0})


def test_a_check_run_sends_its_result_with_its_own_status(cli, daemon):
    configure(cli, daemon)
    record, stderr = run(cli, "loadavg", "--critical", "-1,-1,-1", expect=2)
    assert stderr == ""
    daemon.flush()
    [(_ts, host, service, code, output)] = daemon.results()
    assert (host, service, code) == (record["node"], "loadavg", 2)
    assert nsca_record(output) == record


def test_results_spooled_during_an_outage_arrive_in_time_order_after_a_restart(cli, daemon):
    configure(cli, daemon)
    daemon.stop()
    made = [
        run(cli, "loadavg", "--critical", "-1,-1,-1", expect=2)[0],
        run(cli, "loadavg", "--warning", "-1,-1,-1", expect=1)[0],
        run(cli)[0],
    ]
    assert nsca_status(cli)["spooled"] == 3
    daemon.start()
    result = pipeline(cli, "replay")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "delivered 3" in result.stdout
    daemon.flush()
    got = [(code, nsca_record(output)["id"]) for _ts, _h, _s, code, output in daemon.results()]
    by_time = sorted(made, key=lambda r: datetime.fromisoformat(r["date"]))
    assert got == [(2, made[0]["id"]), (1, made[1]["id"]), (0, made[2]["id"])]
    assert [record_id for _code, record_id in got] == [r["id"] for r in by_time]
    assert nsca_status(cli)["spooled"] == 0


def test_a_spooled_result_older_than_max_age_expires_and_is_counted(cli, daemon):
    configure(cli, daemon, "max_age = 0.5\n")
    daemon.stop()
    record, _ = run(cli)
    assert nsca_status(cli)["spooled"] == 1
    made = datetime.fromisoformat(record["date"]).timestamp()
    deadline = time.monotonic() + 10
    while time.time() - made <= 0.6:  # until the spooled result is older than max_age
        assert time.monotonic() < deadline
        time.sleep(0.05)
    daemon.start()
    result = pipeline(cli, "replay")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "expired 1" in result.stdout
    assert "expired instead of being sent" in result.stderr
    assert "expired=1" in result.stderr
    status = nsca_status(cli)
    assert (status["expired"], status["spooled"]) == (1, 0)
    table = pipeline(cli, "status").stdout.splitlines()
    header = table[1].split()
    row = next(line.split() for line in table if line.startswith("nagios-nsca"))
    assert "expired" in header
    assert row[header.index("expired")] == "1"
    daemon.flush()
    assert daemon.results() == []  # the daemon was up, and still never got it


def test_the_password_from_the_environment_is_used_and_never_shown(cli):
    reason = missing_reason("nsca")
    if reason:
        pytest.skip(reason)
    with NscaServer(password=PASSWORD) as srv:
        configure(cli, srv, "encryption = 1\n")
        cli.env["ACCRE_MONITOR_NAGIOS_NSCA_PASSWORD"] = PASSWORD
        record, stderr = run(cli)
        assert stderr == ""
        srv.flush()
        assert [nsca_record(r[4])["id"] for r in srv.results()] == [record["id"]]
        srv.stop()
        _, stderr = run(cli)
        assert "record spooled" in stderr
        assert PASSWORD not in stderr
        del cli.env["ACCRE_MONITOR_NAGIOS_NSCA_PASSWORD"]
        _, stderr = run(cli)
        assert "outputs.nagios-nsca.encryption 1 (XOR) needs" in stderr
        assert "ACCRE_MONITOR_NAGIOS_NSCA_PASSWORD" in stderr
