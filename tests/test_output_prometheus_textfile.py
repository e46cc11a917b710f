"""The `prometheus-textfile` output: one file of the node's latest results for node_exporter's
textfile collector, read back with prometheus_client's own parser; many runs at once replace
it whole under a lock, stale checks drop out, and a failed write never changes the verdict."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest
from as_user import OTHER, needs_root, run_as, shared_directory
from prometheus_client.parser import text_string_to_metric_families

from accre_monitor.dates import epoch_seconds as datetime_epoch_seconds
from accre_monitor.errors import ConfigError
from accre_monitor.outputs import create_output, is_synchronous
from accre_monitor.outputs.prometheus_textfile import epoch_seconds, number, render
from accre_monitor.record import build_record, iso_now
from accre_monitor.shared_file import SharedFileError

WARN = ("loadavg", "--warning", "-1,-1,-1")  # always WARNING: exit 1


def output(path, **settings):
    return create_output("prometheus-textfile", {"path": str(path), **settings})


def families(text: str) -> dict:
    """{family name: {(label items without check...): value}} keyed by check first."""
    found: dict = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            check = labels.pop("check")
            found.setdefault(sample.name, {})[(check, *sorted(labels.items()))] = sample.value
    return found


def statuses(text: str) -> dict[str, float]:
    rows = families(text).get("accre_monitor_check_status", {})
    return {key[0]: value for key, value in rows.items()}


def ago(seconds: float) -> str:
    return iso_now(time.time() - seconds)


# -- rendering ------------------------------------------------------------------------------


def test_a_record_gives_its_status_date_runtime_and_every_value_in_base_units(tmp_path):
    path = tmp_path / "node.prom"
    data = {
        "mounts": [{"mount": "/", "used_percent": 2.8, "size": 4, "free": 1024}],
        "wait": 250,
        "slept": 1500,
        "took": 1.5,
        "packets": 12,
        "inodes": 7,
    }
    perf = {
        "mounts": {"labels": "mount"},
        "mounts.*.used_percent": {"uom": "%", "warn": "@80:"},
        "mounts.*.size": {"uom": "GB"},
        "mounts.*.free": {"uom": "B"},
        "wait": {"uom": "ms"},
        "slept": {"uom": "us"},
        "took": {"uom": "s"},
        "packets": {"uom": "c"},
    }
    record = build_record("disk", "WARNING", data, perf=perf, runtime=0.25)
    output(path).emit(record)
    text = path.read_text()
    found = families(text)
    assert found["accre_monitor_check_status"] == {("disk",): 1}
    assert found["accre_monitor_check_timestamp_seconds"] == {
        ("disk",): datetime_epoch_seconds(record["date"])
    }
    assert found["accre_monitor_check_runtime_seconds"] == {("disk",): 0.25}
    assert found["accre_monitor_perf_ratio"] == {
        ("disk", ("label", "mounts./.used_percent")): 0.028
    }
    assert found["accre_monitor_perf_bytes"] == {
        ("disk", ("label", "mounts./.size")): 4 * 1024**3,
        ("disk", ("label", "mounts./.free")): 1024,
    }
    assert found["accre_monitor_perf_seconds"] == {
        ("disk", ("label", "wait")): 0.25,
        ("disk", ("label", "slept")): 0.0015,
        ("disk", ("label", "took")): 1.5,
    }
    assert found["accre_monitor_perf_counter_total"] == {("disk", ("label", "packets")): 12}
    assert found["accre_monitor_perf"] == {("disk", ("label", "inodes")): 7}
    assert "# TYPE accre_monitor_perf_counter_total counter\n" in text
    assert "# TYPE accre_monitor_check_status gauge\n" in text
    assert text.count("# HELP ") == text.count("# TYPE ") == 8


@pytest.mark.parametrize(
    ("status", "value"), [("OK", 0), ("WARNING", 1), ("CRITICAL", 2), ("UNKNOWN", 3)]
)
def test_each_status_has_its_number(tmp_path, status, value):
    output(tmp_path / "node.prom").emit(build_record("disk", status, None))
    assert statuses((tmp_path / "node.prom").read_text()) == {"disk": value}


def test_label_values_escape_backslash_double_quote_and_newline(tmp_path):
    path = tmp_path / "node.prom"
    name, label = 'od"d\\check\nx', 'a "b"\\c\nd'
    output(path).emit(build_record(name, "OK", {label: 1}))
    output(path).emit(build_record(name, "CRITICAL", {label: 2}))  # found again, replaced
    text = path.read_text()
    assert 'check="od\\"d\\\\check\\nx"' in text
    assert 'label="a \\"b\\"\\\\c\\nd"' in text
    assert families(text)["accre_monitor_perf"] == {(name, ("label", label)): 2}
    assert statuses(text) == {name: 2}


def test_a_record_without_a_runtime_or_numbers_gives_status_and_timestamp_only(tmp_path):
    path = tmp_path / "node.prom"
    output(path).emit(build_record("text_only", "OK", {"state": "fine", "up": True}))
    assert set(families(path.read_text())) == {
        "accre_monitor_check_status",
        "accre_monitor_check_timestamp_seconds",
    }


def test_numbers_are_written_as_the_text_format_reads_them():
    assert number(3) == "3"
    assert number(-(2**53)) == "-9007199254740992"
    assert float(number(2**70 + 1)) == float(2**70)
    assert number(10**400) == "+Inf" and number(-(10**400)) == "-Inf"
    assert number(float("nan")) == "NaN"
    assert number(float("-inf")) == "-Inf"
    assert number(0.1) == "0.1"


def test_the_records_own_date_form_reads_as_datetime_reads_it():
    for date in [
        "2026-11-24T08:55:32.123+01:00",
        "2024-02-29T23:59:59.999-05:30",
        "1970-01-01T00:00:00.000+00:00",
        "2000-03-01T00:00:00.000+14:00",
        "2100-12-31T23:59:59.500-12:00",
        iso_now(),
    ]:
        assert epoch_seconds(date) == datetime_epoch_seconds(date), date
    # any other ISO 8601 still reads (through datetime)
    assert epoch_seconds("2026-11-24T07:55:32Z") == datetime_epoch_seconds("2026-11-24T07:55:32Z")


def test_an_empty_file_set_renders_nothing():
    assert render({}) == ""


# -- the file -------------------------------------------------------------------------------


def test_a_check_replaces_its_own_lines_and_keeps_the_others(tmp_path):
    path = tmp_path / "node.prom"
    out = output(path)
    out.emit(build_record("a", "OK", {"x": 1, "y": 2}))
    out.emit(build_record("b", "WARNING", {"x": 3}))
    out.emit(build_record("a", "CRITICAL", {"x": 4}))  # y is gone from a's data
    found = families(path.read_text())
    assert statuses(path.read_text()) == {"a": 2, "b": 1}
    assert found["accre_monitor_perf"] == {("a", ("label", "x")): 4, ("b", ("label", "x")): 3}
    assert sorted(os.listdir(tmp_path)) == ["node.prom", "node.prom.lock"]


def test_a_result_older_than_the_one_in_the_file_changes_nothing(tmp_path):
    path = tmp_path / "node.prom"
    output(path).emit(build_record("a", "CRITICAL", None, date=ago(10)))
    output(path).emit(build_record("a", "OK", None, date=ago(5)))
    before = path.read_text()
    output(path).emit(build_record("a", "CRITICAL", None, date=ago(20)))  # a slower older run
    assert path.read_text() == before
    assert statuses(before) == {"a": 0}


def test_a_result_dated_in_the_future_is_replaced_when_the_clock_was_set_back(tmp_path):
    path = tmp_path / "node.prom"
    output(path).emit(build_record("a", "CRITICAL", None, date=ago(-600)))
    output(path).emit(build_record("a", "OK", None))
    assert statuses(path.read_text()) == {"a": 0}


def test_a_check_not_run_for_stale_after_seconds_drops_out_at_the_next_write(tmp_path):
    path = tmp_path / "node.prom"
    output(path).emit(build_record("old", "CRITICAL", {"v": 1}, date=ago(1800)))
    output(path).emit(build_record("recent", "OK", {"v": 2}, date=ago(60)))
    assert statuses(path.read_text()) == {"old": 2, "recent": 0}  # within the default hour
    output(path, stale_after=600).emit(build_record("now", "OK", {"v": 3}))
    text = path.read_text()
    assert statuses(text) == {"recent": 0, "now": 0}
    assert "old" not in text


def test_stale_after_zero_keeps_every_check(tmp_path):
    path = tmp_path / "node.prom"
    output(path).emit(build_record("old", "CRITICAL", None, date=ago(3000)))
    output(path, stale_after=0).emit(build_record("now", "OK", None, date=ago(0)))
    assert statuses(path.read_text()) == {"old": 2, "now": 0}


def test_a_result_already_stale_is_not_written(tmp_path):
    path = tmp_path / "node.prom"
    output(path, stale_after=60).emit(build_record("late", "OK", None, date=ago(120)))
    assert statuses(path.read_text()) == {}


def test_lines_of_a_check_without_a_timestamp_drop_out(tmp_path):
    path = tmp_path / "node.prom"
    path.write_text('accre_monitor_check_status{check="stray"} 0\nnot a sample\n')
    output(path).emit(build_record("a", "OK", None))
    assert statuses(path.read_text()) == {"a": 0}


def test_the_file_keeps_the_mode_of_the_one_it_replaces_and_starts_readable_by_all(tmp_path):
    path = tmp_path / "node.prom"
    old = os.umask(0o077)
    try:
        output(path).emit(build_record("a", "OK", None))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # node_exporter is another user
        path.chmod(0o640)
        output(path).emit(build_record("b", "OK", None))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert statuses(path.read_text()) == {"a": 0, "b": 0}


def test_a_temporary_file_left_by_a_writer_that_died_is_replaced(tmp_path):
    path = tmp_path / "node.prom"
    (tmp_path / "node.prom.tmp").write_text("half a fi")
    output(path).emit(build_record("a", "OK", None))
    assert statuses(path.read_text()) == {"a": 0}
    assert not (tmp_path / "node.prom.tmp").exists()


def test_a_writer_waits_for_the_lock_and_gives_up_in_one_line(tmp_path):
    import fcntl

    from accre_monitor.shared_file import replace_shared

    path = tmp_path / "node.prom"
    holder = os.open(f"{path}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(SharedFileError, match=r"lock .*node\.prom\.lock is held for more"):
            replace_shared(str(path), lambda text: "x\n", wait=0.05)
    finally:
        os.close(holder)
    assert replace_shared(str(path), lambda text: "x\n", wait=0.05)
    assert path.read_text() == "x\n"


def test_a_missing_directory_is_an_error_naming_it(tmp_path):
    out = output(tmp_path / "absent" / "node.prom")
    with pytest.raises(SharedFileError, match=r"absent does not exist"):
        out.emit(build_record("a", "OK", None))
    assert out.problems() == [
        f"output prometheus-textfile cannot write {tmp_path}/absent/node.prom: "
        f"directory {tmp_path}/absent does not exist"
    ]
    assert output(tmp_path / "node.prom").problems() == []


@pytest.fixture
def shared():
    yield from shared_directory()


@needs_root
def test_a_directory_the_user_may_not_write_is_an_error_and_a_problem(shared):
    directory = shared / "root-only"
    directory.mkdir(mode=0o755)
    out = output(directory / "node.prom")

    def attempt() -> str:
        problems = out.problems()
        try:
            out.emit(build_record("a", "OK", None))
        except SharedFileError as exc:
            return f"{exc} / {problems}"
        return "written"

    answer = run_as(OTHER, attempt)
    assert "cannot open its lock file" in answer and "Permission denied" in answer
    assert "is not writable by this user" in answer
    assert not (directory / "node.prom").exists()


@needs_root
def test_another_user_updates_the_file_through_a_lock_file_it_may_only_read(shared):
    directory = shared / "textfile"
    directory.mkdir()
    directory.chmod(0o777)
    path = directory / "node.prom"
    output(path).emit(build_record("as_root", "OK", None))  # lock file and file are root's, 0644
    answer = run_as(OTHER, lambda: str(output(path).emit(build_record("as_nobody", "OK", None))))
    assert answer == "None"
    assert statuses(path.read_text()) == {"as_root": 0, "as_nobody": 0}
    assert path.stat().st_uid == OTHER


# -- settings -------------------------------------------------------------------------------


def test_the_output_renders_in_the_checks_process():
    assert is_synchronous("prometheus-textfile")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"stale_after": -1}, "stale_after must be a number of seconds from 0 to 2592000"),
        ({"stale_after": "1h"}, "stale_after must be a number of seconds from 0 to 2592000"),
        ({"path": ""}, "path must be a non-empty string"),
    ],
)
def test_bad_settings_are_one_line_each(settings, message):
    with pytest.raises(ConfigError, match=message):
        create_output("prometheus-textfile", settings)


# -- on the command line --------------------------------------------------------------------


def textfile_config(cli, path, extra: str = "") -> None:
    cli.write_config(
        '[monitoring]\noutputs = ["nagios-stdout", "prometheus-textfile"]\n'
        f'{extra}[spool]\npath = "{cli.tmp / "spool.db"}"\n'
        f'[outputs.prometheus-textfile]\npath = "{path}"\n'
    )


def test_a_failed_write_keeps_the_verdict_says_one_line_and_spool_health_names_it(cli):
    path = cli.tmp / "absent" / "node.prom"
    textfile_config(cli, path)
    result = cli.run(*WARN)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("LOAD WARNING")
    errors = result.stderr.splitlines()
    assert len(errors) == 1, result.stderr
    assert f"cannot write {path}: directory {path.parent} does not exist" in errors[0]
    health = cli.run("--outputs", "nagios-stdout", "spool_health")
    assert health.returncode == 2
    assert health.stdout.startswith(
        f"SPOOL CRITICAL - output prometheus-textfile cannot write {path}: directory"
    )
    path.parent.mkdir()
    assert cli.run(*WARN).returncode == 1
    assert statuses(path.read_text()) == {"loadavg": 1}
    assert cli.run("--outputs", "nagios-stdout", "spool_health").returncode == 0


def test_a_bad_setting_shows_in_spool_health_whatever_outputs_its_run_names(cli):
    textfile_config(cli, cli.tmp / "node.prom")
    cli.config_path.write_text(cli.config_path.read_text() + "stale_after = -5\n")
    health = cli.run("--outputs", "nagios-stdout", "spool_health")
    assert health.returncode == 2
    assert "outputs.prometheus-textfile.stale_after must be" in health.stdout.splitlines()[0]


def test_a_bad_setting_falls_back_alone_and_the_file_stays_where_it_is_configured(cli):
    path = cli.tmp / "node.prom"
    textfile_config(cli, path)
    cli.config_path.write_text(cli.config_path.read_text() + "stale_after = -5\n")
    result = cli.run(*WARN)
    assert result.returncode == 1, result.stderr
    assert "stale_after must be" in result.stderr and "using its default" in result.stderr
    assert statuses(path.read_text()) == {"loadavg": 1}  # not the default path


CHECKS = 40
SAME = 10
SITE = "from accre_monitor import monitor_command\n" + "".join(
    f"\n@monitor_command\ndef tf_{n:02d}(opts):\n"
    f'    """Check {n}."""\n'
    f'    return "OK", {{"n": {n}, "ratio": 12.5}}, None, None, {{"ratio": {{"uom": "%"}}}}\n'
    for n in range(CHECKS)
)


def test_fifty_runs_at_once_never_show_a_reader_half_a_file_or_lose_a_check(cli):
    path = cli.tmp / "textfile" / "node.prom"
    path.parent.mkdir()
    cli.write_module("tfsite", SITE)
    textfile_config(cli, path, extra='check_modules = ["tfsite"]\n')
    assert cli.run("loadavg").returncode in (0, 1, 2)  # the config is parsed and cached

    stop = threading.Event()
    seen: set[str] = set()
    problems: list[str] = []
    reads = [0]

    def read_in_a_loop() -> None:
        while not stop.is_set():
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            try:
                found = families(text)
            except Exception as exc:  # noqa: BLE001 - any parse error is the finding
                problems.append(f"parse error {exc!r} in {text!r}")
                continue
            checks = {key[0] for key in found.get("accre_monitor_check_status", {})}
            stamped = {key[0] for key in found.get("accre_monitor_check_timestamp_seconds", {})}
            if not text.endswith("\n") or stamped != checks:
                problems.append(f"incomplete file: {text!r}")
            if seen - checks:
                problems.append(f"lost {sorted(seen - checks)}")
            seen.update(checks)
            reads[0] += 1

    reader = threading.Thread(target=read_in_a_loop)
    reader.start()
    try:
        names = [f"tf_{n:02d}" for n in range(CHECKS)] + ["loadavg"] * SAME
        runs = [cli.popen(name) for name in names]
        results = [(run.wait(timeout=240), run.stderr.read()) for run in runs]
    finally:
        stop.set()
        reader.join()
        for run in runs:
            run.stdout.close()
            run.stderr.close()
    assert problems == []
    assert [code for code, _ in results if code != 0 and code != 1 and code != 2] == []
    assert [err for _, err in results if err] == []
    assert reads[0] > 0
    text = path.read_text()
    status_rows = families(text)["accre_monitor_check_status"]
    expected = {f"tf_{n:02d}" for n in range(CHECKS)} | {"loadavg"}
    assert {key[0] for key in status_rows} == expected
    assert len(status_rows) == len(expected)  # every check exactly once
    assert text.count('accre_monitor_check_status{check="loadavg"}') == 1
    ratios = families(text)["accre_monitor_perf_ratio"]
    assert set(ratios.values()) == {0.125} and len(ratios) == CHECKS
