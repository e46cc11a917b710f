"""The shipper delivers each batch in whichever worker thread is free: one Slack output,
deciding from the cluster state in a file, must take batches from any of them."""

from __future__ import annotations

import threading

import pytest

from accre_monitor.outcome import DELIVERED
from accre_monitor.outputs import create_output
from accre_monitor.record import build_record

pytest.importorskip("urllib3")

pytestmark = pytest.mark.integration


def deliver_in_a_thread(output, records):
    """`output.deliver(records)` in a thread of its own: its outcomes, or what it raised."""
    answer = {}

    def work():
        try:
            answer["outcomes"] = output.deliver(records, 5)
        except Exception as exc:  # noqa: BLE001 - the test reports whatever it was
            answer["outcomes"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    return answer["outcomes"]


@pytest.mark.parametrize("notify", ["every", "change"])
def test_batches_from_several_worker_threads_all_reach_slack(slack, tmp_path, notify):
    output = create_output(
        "slack-all",
        {"webhook_url": slack.url, "min_interval": 0, "notify": notify, "group_wait": 0},
        state_dir=str(tmp_path),
    )
    results = []
    for batch in range(4):  # each batch in a new thread, as a pool may hand them out
        status = ("WARNING", "CRITICAL")[batch % 2]
        record = build_record("disk_usage", status, {"batch": batch}, node="cn0001")
        outcomes = deliver_in_a_thread(output, [record])
        results.append([o.state for o in outcomes] if isinstance(outcomes, list) else outcomes)
    assert results == [[DELIVERED]] * 4
    assert len(slack.delivered()) == 4
    output.close()  # and closed from yet another thread
    assert (tmp_path / "state.db").exists()
