"""`min_occurrences = N` in front of any remote output: what passes, decided from the cluster
state (an in-memory SQLite state; a store that records what it was asked to write)."""

from __future__ import annotations

import pytest

from accre_monitor.errors import ConfigError
from accre_monitor.outcome import DELIVERED, REJECTED, RETRY, Outcome, StoreUnavailable
from accre_monitor.outputs.remote import RemoteOutput
from accre_monitor.pipeline.state import Entry, stale_record
from accre_monitor.record import build_record, iso_now

T0 = 1_800_000_000.0


class Recording(RemoteOutput):
    """A store that keeps what it was sent, and answers what it is told to."""

    def __init__(self, *args, answer=DELIVERED, **kw):
        super().__init__(*args, **kw)
        self.sent: list[dict] = []
        self.answer = answer

    def write_batch(self, items, timeout):
        if self.answer == "down":
            raise StoreUnavailable("store down")
        self.sent += items
        return [Outcome(self.answer) for _ in items]


class Ordered(Recording):
    ordered = True


def store(minimum=3, cls=Recording, **kw):
    return cls("redis", {"min_occurrences": minimum}, **kw)


def rec(status, minute, node="cn1", check="disk", **extra):
    record = build_record(check, status, {}, node=node, date=iso_now(T0 + 60 * minute))
    record.update(extra)
    return record


def sent_statuses(output):
    return [r["status"] for r in output.sent]


def deliver_each(output, statuses):
    """Each status a record of its own minute, one batch each; the outcomes' states."""
    return [output.deliver([rec(s, n)], 5)[0].state for n, s in enumerate(statuses)]


def test_a_problem_passes_from_its_nth_occurrence_and_its_resolution_after_it():
    output = store(3)
    states = deliver_each(output, ["CRITICAL", "CRITICAL", "CRITICAL", "CRITICAL", "OK", "OK"])
    assert states == [DELIVERED] * 6  # what does not pass is delivered unsent
    assert sent_statuses(output) == ["CRITICAL", "CRITICAL", "OK", "OK"]


def test_a_problem_that_never_reached_n_has_no_resolution_either():
    output = store(3)
    deliver_each(output, ["OK", "CRITICAL", "CRITICAL", "OK"])
    assert sent_statuses(output) == ["OK"]  # the first OK only


def test_the_count_restarts_with_each_status_but_the_problem_s_watermark_survives():
    output = store(2)
    deliver_each(output, ["WARNING", "WARNING", "CRITICAL", "OK"])
    # WARNING twice passes; CRITICAL once does not; the resolution ends a run that passed
    assert sent_statuses(output) == ["WARNING", "OK"]


def test_a_superseded_record_does_not_pass_even_when_counted_enough():
    output = store(1)
    newer, older = rec("CRITICAL", 5), rec("WARNING", 1)
    output.deliver([newer], 5)
    assert output.deliver([older], 5)[0].state == DELIVERED
    assert sent_statuses(output) == ["CRITICAL"]


def test_in_one_batch_only_the_latest_result_of_a_check_is_judged():
    output = store(2)
    outcomes = output.deliver([rec("CRITICAL", n) for n in range(3)], 5)
    assert [o.state for o in outcomes] == [DELIVERED] * 3
    assert len(output.sent) == 1 and output.sent[0]["date"] == iso_now(T0 + 120)


def test_a_stale_record_passes_at_once_and_so_does_the_recovery_after_it():
    output = store(3)
    output.deliver([rec("OK", 0)], 5)
    entry = output.state_store().entries()[0]
    stale = stale_record(entry, "UNKNOWN", T0 + 600)
    output.deliver([stale], 5)
    output.deliver([rec("OK", 11)], 5)
    assert sent_statuses(output) == ["OK", "UNKNOWN", "OK"]
    # and a later problem short of the count has no resolution: the stale one was ended
    output.deliver([rec("CRITICAL", 12)], 5)
    output.deliver([rec("OK", 13)], 5)
    assert sent_statuses(output) == ["OK", "UNKNOWN", "OK"]


def test_a_record_the_state_cannot_take_is_refused_alone():
    output = store(1)
    record = rec("CRITICAL", 0)
    record["status"] = "bad"
    outcomes = output.deliver([record], 5)
    assert outcomes[0].state == REJECTED and "the state cannot take it" in outcomes[0].error


def test_a_store_down_retries_what_passes_and_delivers_what_does_not():
    output = store(2, answer="down")
    outcomes = output.deliver([rec("CRITICAL", 0, node="cn1"), rec("OK", 0, node="cn2")], 5)
    assert [o.state for o in outcomes] == [DELIVERED, RETRY]
    # only records that pass: the store's failure holds the whole batch
    with pytest.raises(StoreUnavailable):
        output.deliver([rec("OK", 1, node="cn3")], 5)


def test_an_ordered_output_keeps_a_quiet_record_behind_a_retried_one_of_its_check():
    output = store(1, cls=Ordered, answer=RETRY)
    head, older = rec("CRITICAL", 2), rec("OK", -5)  # older: superseded, delivered unsent
    outcomes = output.deliver([head, older, rec("OK", -5, node="cn2")], 5)
    assert [o.state for o in outcomes] == [RETRY, RETRY, RETRY]
    assert "waits for an earlier result" in outcomes[1].error
    outcomes = output.deliver([head, older], 5)
    assert [o.state for o in outcomes] == [RETRY, RETRY]
    assert "waits for an earlier result" in outcomes[1].error


def test_a_state_that_cannot_be_reached_holds_the_batch(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    output = Recording(
        "redis", {"min_occurrences": 2}, state={"url": f"sqlite:///{blocked}/state.db"}
    )
    with pytest.raises(StoreUnavailable, match="cannot use the cluster state"):
        output.deliver([rec("CRITICAL", 0)], 5)
    assert output.sent == []


@pytest.mark.parametrize("value", [0, 1001, "3", 2.5, True])
def test_min_occurrences_is_an_integer_from_1_to_1000(value):
    with pytest.raises(ConfigError) as caught:
        Recording("redis", {"min_occurrences": value})
    assert str(caught.value).startswith("outputs.redis.min_occurrences must be an integer from 1")
    assert "\n" not in str(caught.value)


def test_without_min_occurrences_the_state_is_never_opened():
    output = Recording("redis", {})
    output.deliver([rec("CRITICAL", 0)], 5)
    assert output._state is None and sent_statuses(output) == ["CRITICAL"]


def test_the_entry_a_store_remembers_is_its_own():
    output = store(1)
    output.deliver([rec("OK", 0)], 5)
    entry = output.state_store().entries()[0]
    output.deliver([stale_record(entry, "UNKNOWN", T0 + 600)], 5)
    remembered: Entry = output.state_store().entries()[0]
    assert set(remembered.notified) == {"redis"}
    assert remembered.notified["redis"]["status"] == "UNKNOWN"
