"""Outputs that ask for order (NSCA, Slack) get the results of one check oldest first,
whatever the spool went through: a store down for several runs, a 429 holding the head of
the backlog. Seen from the command line, against the real NSCA daemon and the Slack test
webhook.
"""

from __future__ import annotations

import json
import time

import pytest
from slack_server import Reply
from test_outage import nsca_record

pytestmark = pytest.mark.integration

CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}

SEQUENCED = """
from accre_monitor import monitor_command

@monitor_command
def sequenced(opts):
    \"\"\"Gives the status it is told, and its place in the sequence as data.\"\"\"
    return opts.get("status", "OK"), {"seq": opts.get("seq")}
"""


def configure(cli, section: str, spool_extra: str = "", node: str | None = None) -> None:
    cli.write_module("sequenced_checks", SEQUENCED)
    cli.write_config(
        '[monitoring]\ncheck_modules = ["sequenced_checks"]\n'
        + (f'node = "{node}"\n' if node else "")
        + f'[spool]\npath = "{cli.tmp / "spool.db"}"\ninline_budget = 3\n{spool_extra}'
        f"{section}"
    )


def nsca_section(daemon) -> str:
    return f"[outputs.nagios-nsca]\nport = {daemon.port}\ntimeout = 1\n"


def run(cli, output: str, seq: int, status: str = "OK"):
    """One run of the check, giving `status` and `seq`: (its record, its stderr)."""
    options = json.dumps({"status": status, "seq": seq})
    result = cli.run("--outputs", f"stdout,{output}", "--options", options, "sequenced")
    assert result.returncode == CODES[status], result.stderr
    return json.loads(result.stdout), result.stderr


def pipeline(cli, *args):
    return cli.run(*args, script="accre-pipeline")


def spooled(cli, output: str) -> int:
    result = pipeline(cli, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["outputs"].get(output, {}).get("spooled", 0)


def replay_until_empty(cli, *args: str, timeout: float = 30.0) -> list[str]:
    """`accre-pipeline replay ARGS` again and again until it leaves nothing spooled; the
    output of each replay that delivered something."""
    deadline = time.monotonic() + timeout
    delivering = []
    while True:
        result = pipeline(cli, "replay", *args)
        if "delivered 0" not in result.stdout:
            delivering.append(result.stdout)
        if result.returncode == 0:
            return delivering
        assert "dead-lettered" not in result.stdout, result.stdout + result.stderr
        assert time.monotonic() < deadline, result.stdout + result.stderr
        time.sleep(0.1)


def nsca_sequence(daemon) -> list[int]:
    daemon.flush()
    return [nsca_record(output)["data"]["seq"] for *_, output in daemon.results()]


def test_nagios_gets_the_results_spooled_during_an_outage_oldest_first(cli, daemon):
    # each run also retries the backlog, so the oldest entries collect the most attempts and
    # the longest backoff: the newest are due first, yet must not overtake them
    configure(cli, nsca_section(daemon), "backoff_base = 0.2\nbackoff_max = 4\n")
    daemon.stop()
    for seq in range(1, 7):
        run(cli, "nagios-nsca", seq)
    assert spooled(cli, "nagios-nsca") == 6
    daemon.start()
    replay_until_empty(cli, "--due")
    assert nsca_sequence(daemon) == [1, 2, 3, 4, 5, 6]


def test_a_run_whose_result_queues_behind_a_backlog_says_it_was_spooled(cli, daemon):
    configure(cli, nsca_section(daemon))
    daemon.stop()
    first, stderr = run(cli, "nagios-nsca", 1)
    assert stderr.count("spooled") == 1 and first["id"] in stderr
    second, stderr = run(cli, "nagios-nsca", 2)
    lines = [line for line in stderr.splitlines() if "spooled" in line]
    assert len(lines) == 1, stderr
    assert second["id"] in lines[0] and "nagios-nsca" in lines[0]
    assert spooled(cli, "nagios-nsca") == 2


def slack_section(slack, notify: str) -> str:
    return (
        f'[outputs.slack]\nwebhook_url = "{slack.url}"\nmin_interval = 0\ntimeout = 2\n'
        "group_wait = 0\n"
        f'notify = "{notify}"\n'
    )


@pytest.mark.parametrize("output, notify", [("slack-all", "every"), ("slack-warning", "change")])
def test_slack_gets_the_results_held_by_a_429_in_order_once_the_wait_is_over(
    cli, slack, output, notify
):
    slack.script(Reply(429, "rate_limited", retry_after=2))
    runs = [("cn1", "CRITICAL"), ("cn2", "WARNING"), ("cn1", "OK"), ("cn3", "CRITICAL")]
    for seq, (node, status) in enumerate(runs, start=1):
        configure(cli, slack_section(slack, notify), "backoff_base = 0.2\nbackoff_max = 1\n", node)
        run(cli, output, seq, status)
    replay_until_empty(cli)
    titles = [p["attachments"][0]["title"] for p in slack.delivered()]
    # in order; cn1's CRITICAL was superseded by its OK while it waited, and that OK ends a
    # problem the channel never heard of: the channel hears the state, not the history
    assert titles == ["WARNING: sequenced on cn2", "CRITICAL: sequenced on cn3"]
    refused, *delivered = slack.requests
    assert refused.reply.status == 429
    assert delivered[0].at - refused.at >= 2  # nothing overtook the head during its wait
