"""The durable spool: order, backoff, leases, the size cap, dead letters, crashes, concurrency."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from accre_monitor.outcome import DELIVERED, REJECTED, RETRY
from accre_monitor.pipeline.spool import SCHEMA, Spool, spool_settings


def make_spool(tmp_path, **settings):
    return Spool(spool_settings({"path": str(tmp_path / "state" / "spool.db"), **settings}))


def entries(n, output="redis", start=0):
    return [(f"id-{i}", output, f'{{"id": "id-{i}"}}'.encode()) for i in range(start, start + n)]


def test_a_new_spool_is_private_and_in_wal_mode(tmp_path):
    spool = make_spool(tmp_path)
    spool.add(entries(1))
    assert os.stat(spool.path).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(spool.path)).st_mode & 0o777 == 0o700
    assert spool.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_entries_are_claimed_oldest_first_and_delivered_ones_leave(tmp_path):
    spool = make_spool(tmp_path)
    spool.add(entries(5))
    claimed = spool.claim("redis", 3, due_only=False)
    assert [e.record_id for e in claimed] == ["id-0", "id-1", "id-2"]
    assert spool.settle([(e, DELIVERED, None) for e in claimed]) == (3, 0, 0, 0)
    assert [e.record_id for e in spool.claim("redis", 10, due_only=False)] == ["id-3", "id-4"]


def test_the_same_record_is_owed_once_per_output(tmp_path):
    spool = make_spool(tmp_path)
    spool.add(entries(2))
    spool.add(entries(2))
    spool.add(entries(2, output="couch"))
    assert spool.pending("redis") == 2
    assert spool.pending() == 4


def test_a_failed_attempt_backs_off_exponentially_with_jitter(tmp_path):
    spool = make_spool(tmp_path, backoff_base=10.0, backoff_max=100.0)
    delays = [spool.backoff(n) for n in (1, 2, 3, 10) for _ in range(50)]
    assert all(5 <= d <= 15 for d in delays[:50])
    assert all(10 <= d <= 30 for d in delays[50:100])
    assert all(50 <= d <= 150 for d in delays[150:])
    assert len(set(delays[:50])) > 40  # jitter spreads the retries of many nodes


def test_a_retried_entry_is_not_due_until_its_backoff_passes(tmp_path):
    spool = make_spool(tmp_path)
    spool.add(entries(1), error="refused")
    assert spool.claim("redis", 10) == []  # the first attempt already failed: backing off
    (entry,) = spool.claim("redis", 10, due_only=False)
    assert entry.attempts == 1 and entry.last_error == "refused"
    spool.settle([(entry, RETRY, "still refused")])
    (entry,) = spool.claim("redis", 10, due_only=False)
    assert entry.attempts == 2 and entry.last_error == "still refused"


def test_a_claimed_entry_is_leased_away_from_other_processes(tmp_path):
    first, second = make_spool(tmp_path), make_spool(tmp_path)
    first.add(entries(4))
    taken = first.claim("redis", 2, due_only=False)
    other = second.claim("redis", 10, due_only=False)
    assert {e.record_id for e in taken}.isdisjoint(e.record_id for e in other)
    assert len(other) == 2


def test_records_rejected_for_good_become_dead_letters_with_the_reason(tmp_path):
    spool = make_spool(tmp_path, max_attempts=2)
    spool.add(entries(2))
    first = spool.claim("redis", 10, due_only=False)
    assert spool.settle(
        [(first[0], REJECTED, "mapper_parsing_exception: bad"), (first[1], DELIVERED, None)]
    ) == (1, 0, 1, 0)
    (letter,) = spool.dead_letters()
    assert (letter["record_id"], letter["reason"]) == ("id-0", "mapper_parsing_exception: bad")
    assert spool.pending() == 0
    assert spool.stats()["redis"]["dead_letters"] == 1
    assert spool.retry_dead_letters() == 1
    assert spool.pending() == 1 and list(spool.dead_letters()) == []
    (entry,) = spool.claim("redis", 1)
    assert entry.attempts == 0
    spool.settle([(entry, REJECTED, "again")])
    spool.settle([(spool.claim("redis", 1, due_only=False)[0], REJECTED, "again")])
    assert spool.purge_dead_letters("redis") == 1


def test_at_the_size_cap_the_oldest_entries_are_dropped_counted_and_logged(tmp_path, capsys):
    spool = make_spool(tmp_path, max_entries=10)
    spool.add(entries(8))
    assert spool.add(entries(7, start=8)) == 5
    remaining = [e.record_id for e in spool.claim("redis", 100, due_only=False)]
    assert remaining == [f"id-{i}" for i in range(5, 15)]
    assert spool.dropped() == 5
    assert "spool full: dropped the oldest entries" in capsys.readouterr().err


def test_status_reports_backlog_age_and_due_per_output(tmp_path):
    spool = make_spool(tmp_path)
    spool.add(entries(3, output="couch"))
    stats = spool.stats()
    assert stats["couch"]["spooled"] == 3
    assert 0 <= stats["couch"]["oldest_age"] < 60
    assert stats["couch"]["due"] == 0


WRITER = """
import sys
from accre_monitor.pipeline.spool import Spool, spool_settings
spool = Spool(spool_settings({"path": sys.argv[1], "synchronous": "normal"}))
i = 0
while True:
    spool.add([(f"{sys.argv[2]}-{i}", "redis", b"x" * 200)])
    print(i, flush=True)
    i += 1
"""


def test_a_writer_killed_at_any_point_leaves_the_spool_consistent(tmp_path):
    path = str(tmp_path / "spool.db")
    for round_ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-P", "-c", WRITER, path, f"r{round_}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        acknowledged = -1
        deadline = time.monotonic() + 0.2 + round_ * 0.05
        while time.monotonic() < deadline:
            acknowledged = int(proc.stdout.readline())
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for line in proc.stdout:  # what it acknowledged before it died, still in the pipe
            acknowledged = int(line)
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute(
            "SELECT count(*) FROM queue WHERE record_id LIKE ?", (f"r{round_}-%",)
        ).fetchone()[0]
        db.close()
        # everything acknowledged is there; at most the one in flight beyond it
        assert acknowledged + 1 <= rows <= acknowledged + 2


ADDER = """
import sys
from accre_monitor.pipeline.spool import Spool, spool_settings
spool = Spool(spool_settings({"path": sys.argv[1]}))
for i in range(20):
    spool.add([(f"{sys.argv[2]}-{i}", "redis", b"{}")])
"""


def test_fifty_processes_writing_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "spool.db")
    procs = [
        subprocess.Popen(
            [sys.executable, "-P", "-c", ADDER, path, f"p{n}"], stderr=subprocess.PIPE, text=True
        )
        for n in range(50)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 50, "\n".join(errors)
    assert not any("locked" in e for e in errors)
    spool = Spool(spool_settings({"path": path}))
    assert spool.pending() == 50 * 20


def test_unknown_and_bad_spool_settings_are_reported(tmp_path, capsys):
    from accre_monitor.errors import ConfigError

    spool_settings({"pth": "x"})
    assert "spool.pth" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="max_entries"):
        spool_settings({"max_entries": 0})


# -- a corrupt spool file is set aside, never in the way ---------------------------------------


def corrupt(path, how):
    with open(path, "r+b") as handle:
        if how == "header":
            handle.write(b"this is not sqlite at all")
        elif how == "truncated":
            handle.truncate(1500)
        else:  # pages of random bytes, header kept
            handle.seek(4096)
            handle.write(os.urandom(4096 * 4))


@pytest.mark.parametrize("how", ["header", "truncated", "pages"])
def test_a_corrupt_spool_is_set_aside_and_a_fresh_one_takes_the_record(tmp_path, how, capsys):
    spool = make_spool(tmp_path)
    spool.add(entries(300))
    spool.close()
    sqlite3.connect(spool.path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    corrupt(spool.path, how)

    fresh = make_spool(tmp_path)
    fresh.add([("new-1", "redis", b"{}")])
    assert fresh.pending() == 1
    (aside,) = fresh.set_aside
    assert aside.startswith(spool.path + ".corrupt-") and os.path.exists(aside)
    assert "spool file is corrupt" in capsys.readouterr().err
    from accre_monitor.sqlite_files import set_aside_files

    assert set_aside_files(spool.path) == [aside]


def test_a_healthy_spool_is_never_set_aside(tmp_path):
    spool = make_spool(tmp_path)
    spool.add(entries(3))
    spool._set_aside_corrupt(sqlite3.DatabaseError("pretend"))
    assert spool.set_aside == []
    assert make_spool(tmp_path).pending() == 3


def test_reading_the_status_creates_and_writes_nothing(tmp_path):
    from accre_monitor.pipeline.report import read_spool

    settings = spool_settings({"path": str(tmp_path / "state" / "spool.db")})
    report = read_spool(settings)
    assert not report.exists and report.outputs == {}
    assert not (tmp_path / "state").exists()
    spool = Spool(settings)
    spool.add(entries(2))
    spool.close()
    before = sorted(os.listdir(tmp_path / "state"))
    stamp = os.stat(settings["path"]).st_mtime_ns
    report = read_spool(settings)
    assert report.outputs["redis"]["spooled"] == 2
    assert sorted(os.listdir(tmp_path / "state")) == before
    assert os.stat(settings["path"]).st_mtime_ns == stamp


def test_reading_a_corrupt_spool_reports_it_without_moving_it(tmp_path):
    from accre_monitor.pipeline.report import read_spool

    spool = make_spool(tmp_path)
    spool.add(entries(2))
    spool.close()
    corrupt(spool.path, "header")
    report = read_spool(spool.settings)
    assert "is corrupt" in report.corrupt
    assert os.path.exists(spool.path) and report.set_aside == []


def test_an_expired_entry_leaves_and_is_counted(tmp_path):
    from accre_monitor.outcome import EXPIRED

    spool = make_spool(tmp_path)
    spool.add(entries(3, output="nsca"))
    claimed = spool.claim("nsca", 3, due_only=False)
    assert spool.settle([(e, EXPIRED, "too old") for e in claimed[:2]]) == (0, 0, 0, 2)
    stats = spool.stats()["nsca"]
    assert (stats["spooled"], stats["expired"]) == (1, 2)


def test_a_retry_waits_at_least_what_the_store_asked(tmp_path):
    spool = make_spool(tmp_path, backoff_base=0.01, backoff_max=0.02)
    spool.add(entries(1))
    (entry,) = spool.claim("redis", 1, due_only=False)
    spool.settle([(entry, RETRY, "429 slow down", 120.0)])
    row = spool.stats()["redis"]
    assert row["due"] == 0 and row["next_due"] - time.time() > 110


def test_what_a_store_asked_to_hold_back_is_not_taken_even_when_draining_everything(tmp_path):
    spool = make_spool(tmp_path)
    spool.add(entries(2))
    first, second = spool.claim("redis", 2, due_only=False)
    spool.settle([(first, RETRY, "429", 60.0), (second, RETRY, "500 busy")])
    assert [e.record_id for e in spool.claim("redis", 5, due_only=False)] == ["id-1"]
    spool.add([("id-9", "slack", b"{}")], error="429", not_before=60.0)
    assert spool.claim("slack", 5, due_only=False) == []


def test_a_spool_an_earlier_release_set_back_to_its_version_opens_again(tmp_path):
    """A process of the first release that writes a migrated spool sets its version back to 1
    (it creates its tables if missing, then stamps its version): the next process of this
    release migrates it again instead of failing on the column it already has."""
    spool = make_spool(tmp_path)
    spool.add(entries(1))
    spool.close()
    db = sqlite3.connect(spool.path)
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    again = make_spool(tmp_path)
    again.add(entries(1, start=1))
    assert again.pending("redis") == 2
    assert again.db.execute("PRAGMA user_version").fetchone()[0] == 3


def test_a_spool_of_the_earlier_schema_keeps_its_entries(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    old_schema = SCHEMA.replace("    not_before REAL NOT NULL DEFAULT 0,\n", "")
    for statement in old_schema.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(
        "INSERT INTO queue (record_id, output, body, created) VALUES ('old-1', 'redis', x'7b7d', 1)"
    )
    db.execute("PRAGMA user_version=1")
    db.close()
    from accre_monitor.pipeline.report import read_spool

    settings = spool_settings({"path": str(path)})
    assert read_spool(settings).outputs["redis"]["spooled"] == 1
    spool = Spool(settings)
    assert [e.record_id for e in spool.claim("redis", 5, due_only=False)] == ["old-1"]
