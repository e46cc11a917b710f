"""The built-in checks against the real machine: real disks, files, sockets and processes."""

import os
import select
import socket
import subprocess
import sys
import time
import uuid

import psutil
import pytest
from plugin_output import parse_perfdata, parse_plugin_output

from accre_monitor.checks.disk import disk_usage
from accre_monitor.checks.files import file_age
from accre_monitor.checks.load import loadavg
from accre_monitor.checks.memory import memory, read_meminfo
from accre_monitor.checks.mounts import mounts, read_mounts, unescape
from accre_monitor.checks.network import tcp_port
from accre_monitor.checks.processes import processes
from accre_monitor.perfdata import render as render_perfdata
from accre_monitor.record import normalize_return, record_from_return, to_json


def run(check, opts):
    """Call the check directly and return (status, data, short, long), checked as the CLI would.

    normalize_return refuses anything that is not a valid result with plain JSON data.
    """
    status, data, short, long, _ = normalize_return(check(opts))
    to_json(data)
    assert isinstance(short, str) and "\n" not in short
    return status, data, short, long


def perf(check, opts) -> dict:
    """The check's performance data as nagios-stdout prints it, read by the guidelines' grammar."""
    record = record_from_return(check.__name__, check(opts))
    return {metric.label: metric for metric in parse_perfdata(render_perfdata(record))}


def root_fstype() -> str:
    """The type of the file system mounted on / (the last, visible, mount), read by hand."""
    with open("/proc/self/mounts") as handle:
        types = [line.split()[2] for line in handle if line.split()[1] == "/"]
    return types[-1]


# --- loadavg -----------------------------------------------------------------------------


def test_loadavg_without_thresholds_is_ok_with_the_three_averages():
    status, data, short, _ = run(loadavg, {})
    assert status == "OK"
    assert data == pytest.approx(list(os.getloadavg()), abs=1.0)
    assert short.startswith("LOAD OK - load average: ")


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ({"warning": 1000}, "OK"),
        ({"warning": -1}, "WARNING"),
        ({"warning": [1000, 1000, -1]}, "WARNING"),
        ({"warning": -1, "critical": [-1, 1000, 1000]}, "CRITICAL"),
        ({"warning": "-1"}, "WARNING"),
    ],
)
def test_loadavg_plain_numbers_alert_above_them_as_before(opts, expected):
    assert run(loadavg, opts)[0] == expected


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ({"warning": "1000:"}, "WARNING"),
        ({"warning": "~:1000"}, "OK"),
        ({"warning": "0:1000"}, "OK"),
        ({"warning": "@0:1000"}, "WARNING"),
        ({"critical": "@~:1000"}, "CRITICAL"),
        ({"warning": ["0:1000", "0:1000", "@0:1000"]}, "WARNING"),
        ({"warning": "~:-1", "critical": "1000:"}, "CRITICAL"),
    ],
)
def test_loadavg_thresholds_accept_nagios_ranges(opts, expected):
    assert run(loadavg, opts)[0] == expected


@pytest.mark.parametrize(
    ("check", "label"),
    [
        (loadavg, "LOAD"),
        (disk_usage, "DISK"),
        (memory, "MEMORY"),
        (processes, "PROCS"),
        (file_age, "FILE_AGE"),
        (tcp_port, "TCP"),
        (mounts, "MOUNTS"),
    ],
)
def test_every_builtin_check_refuses_an_unknown_option_in_its_short_text(check, label):
    status, _, short, _ = run(check, {"no_such_option": 1})
    assert status == "UNKNOWN"
    assert short.startswith(f"{label} UNKNOWN - unknown option no_such_option (known: ")


def test_loadavg_refuses_an_unknown_option_saying_which():
    status, data, short, _ = run(loadavg, {"warnin": 3})
    assert status == "UNKNOWN"
    assert short == "LOAD UNKNOWN - unknown option warnin (known: warning, critical)"
    assert "warnin" in data["error"]


@pytest.mark.parametrize(
    ("opts", "reason"),
    [
        ({"warning": "abc"}, "option warning must be a number or a range"),
        ({"critical": "5:1"}, "option critical: invalid range '5:1': start is greater"),
        ({"warning": [1, 2]}, "option warning takes one threshold or three"),
        ({"warning": [1, 2, 3, 4]}, "option warning takes one threshold or three"),
        ({"warning": True}, "option warning must be a number or a range"),
        ({"warning": [1, None, 3]}, "option warning must be a number or a range"),
        ({"warning": {"load1": 1}}, "option warning must be a number or a range"),
    ],
)
def test_loadavg_bad_thresholds_are_unknown_saying_why(opts, reason):
    status, _, short, _ = run(loadavg, opts)
    assert status == "UNKNOWN"
    assert short.startswith(f"LOAD UNKNOWN - {reason}")


def test_loadavg_performance_data_has_the_three_averages_with_their_thresholds():
    found = perf(loadavg, {"warning": [1000, 900, "800:"], "critical": "@2000:3000"})
    assert list(found) == ["load1", "load5", "load15"]
    assert [found[label].warn for label in found] == ["~:1000", "~:900", "800:"]
    assert {found[label].crit for label in found} == {"@2000:3000"}
    assert {found[label].min for label in found} == {0}
    assert [found[label].value for label in found] == pytest.approx(os.getloadavg(), abs=1.0)


# --- disk_usage --------------------------------------------------------------------------


def test_disk_usage_of_root_reports_space_and_inodes():
    status, data, short, long = run(disk_usage, {})
    (entry,) = data["mounts"]
    assert entry["mount"] == "/"
    assert 0 <= entry["used_percent"] <= 100
    assert entry["total_bytes"] > 0
    assert entry["free_bytes"] <= entry["total_bytes"]
    assert short.startswith(f"DISK {status} - / ")
    assert "% used" in short
    assert long.startswith("/: ")


def test_disk_usage_matches_statvfs_of_the_path():
    st = os.statvfs("/")
    status, data, _, _ = run(disk_usage, {"mounts": "/"})
    assert data["mounts"][0]["total_bytes"] == st.f_blocks * st.f_frsize


def test_disk_usage_at_critical_zero_is_critical(tmp_path):
    status, data, short, _ = run(disk_usage, {"mounts": str(tmp_path), "critical": 0})
    assert status == "CRITICAL"
    assert data["mounts"][0]["status"] == "CRITICAL"
    assert short.startswith("DISK CRITICAL - ")
    assert "(CRITICAL)" in short


def test_disk_usage_at_warning_zero_is_warning(tmp_path):
    status, _, short, _ = run(disk_usage, {"mounts": [str(tmp_path)], "warning": 0})
    assert status == "WARNING"
    assert short.startswith("DISK WARNING - ")


def test_disk_usage_below_thresholds_of_100_is_ok(tmp_path):
    opts = {"mounts": str(tmp_path), "warning": 100, "critical": 100}
    opts |= {"inode_warning": 100, "inode_critical": 100}
    status, data, _, _ = run(disk_usage, opts)
    assert data["mounts"][0]["used_percent"] < 100
    assert status == "OK"


def test_disk_usage_inode_thresholds_alone_raise_the_status(tmp_path):
    st = os.statvfs(tmp_path)
    if not st.f_files:
        pytest.skip("this file system reports no inodes")
    opts = {"mounts": str(tmp_path), "warning": 100, "critical": 100, "inode_critical": 0}
    status, data, _, _ = run(disk_usage, opts)
    assert data["mounts"][0]["inodes_used_percent"] is not None
    assert status == "CRITICAL"


def test_disk_usage_missing_mount_is_unknown_for_that_mount_only(tmp_path):
    missing = str(tmp_path / "nope")
    status, data, short, _ = run(disk_usage, {"mounts": ["/", missing], "critical": 100})
    by_mount = {entry["mount"]: entry for entry in data["mounts"]}
    assert by_mount[missing]["status"] == "UNKNOWN"
    assert "error" in by_mount[missing]
    assert "used_percent" in by_mount["/"]
    assert status == "UNKNOWN"
    assert missing in short


def test_disk_usage_worst_status_over_mounts_wins(tmp_path):
    # CRITICAL on a disk beats UNKNOWN on a missing path.
    opts = {"mounts": ["/", str(tmp_path / "nope")], "critical": 0}
    status, _, _, _ = run(disk_usage, opts)
    assert status == "CRITICAL"


@pytest.mark.parametrize(
    "opts",
    [
        {"warning": "abc"},
        {"critical": -1},
        {"inode_warning": 101},
        {"warning": True},
        {"mounts": {"/": 1}},
        {"warn": 80},
    ],
)
def test_disk_usage_bad_options_are_unknown(opts):
    status, data, short, _ = run(disk_usage, opts)
    assert status == "UNKNOWN"
    assert short.startswith("DISK UNKNOWN - ")
    assert "error" in data


def test_disk_usage_accepts_numeric_strings_from_json():
    status, data, _, _ = run(disk_usage, {"warning": "0", "critical": "100"})
    assert data["thresholds"]["warning"] == 0
    assert status == "WARNING"


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ({"critical": "@0:100"}, "CRITICAL"),
        ({"warning": "101:"}, "WARNING"),
        ({"warning": "~:100", "critical": "~:100"}, "OK"),
        ({"warning": "@0:", "critical": "0:100"}, "WARNING"),
    ],
)
def test_disk_usage_thresholds_accept_nagios_ranges(tmp_path, opts, expected):
    opts = {"mounts": str(tmp_path), "inode_warning": 100, "inode_critical": 100, **opts}
    assert run(disk_usage, opts)[0] == expected


def test_disk_usage_data_keeps_thresholds_as_given():
    _, data, _, _ = run(disk_usage, {"warning": "~:95", "critical": 99})
    assert data["thresholds"] == {
        "warning": "~:95",
        "critical": 99,
        "inode_warning": 80,
        "inode_critical": 90,
    }


def test_disk_usage_performance_data_per_mount_with_units_and_thresholds(tmp_path):
    found = perf(disk_usage, {"mounts": ["/", str(tmp_path)], "critical": "~:95"})
    used = found["mounts./.used_percent"]
    assert (used.uom, used.warn, used.crit, used.min, used.max) == ("%", "@80:", "~:95", 0, 100)
    if os.statvfs(tmp_path).f_files:  # file systems without inodes have no inode percentage
        assert found[f"mounts.{tmp_path}.inodes_used_percent"].crit == "@90:"
    assert found["mounts./.total_bytes"].uom == "B"
    assert (
        found["mounts./.total_bytes"].value == os.statvfs("/").f_blocks * os.statvfs("/").f_frsize
    )
    assert not [label for label in found if label.startswith("thresholds")]


# --- memory ------------------------------------------------------------------------------


def test_memory_reports_available_percent_from_meminfo():
    status, data, short, _ = run(memory, {"warning": 0, "critical": 0})
    info = read_meminfo()
    assert data["total_bytes"] == info["MemTotal"]
    assert 0 < data["available_percent"] < 100
    assert status in ("OK", "WARNING", "CRITICAL")
    assert short.startswith(f"MEMORY {status} - ")
    assert "% available" in short


def test_memory_with_zero_thresholds_and_no_swap_pressure_is_ok():
    opts = {"warning": 0, "critical": 0, "swap_warning": 100, "swap_critical": 100}
    status, data, _, _ = run(memory, opts)
    assert data["swap_used_percent"] is None or data["swap_used_percent"] < 100
    assert status == "OK"


def test_memory_warning_at_100_is_warning():
    opts = {"warning": 100, "critical": 0, "swap_warning": 100, "swap_critical": 100}
    status, _, short, _ = run(memory, opts)
    assert status == "WARNING"
    assert "(WARNING)" in short


def test_memory_critical_at_100_is_critical():
    status, _, _, _ = run(memory, {"warning": 100, "critical": 100})
    assert status == "CRITICAL"


def test_swap_thresholds_apply_only_when_the_node_has_swap():
    opts = {"warning": 0, "critical": 0, "swap_warning": 0, "swap_critical": 0}
    status, data, short, _ = run(memory, opts)
    if read_meminfo().get("SwapTotal", 0):
        assert data["swap_used_percent"] is not None
        assert status == "CRITICAL"
    else:
        assert data["swap_used_percent"] is None
        assert "no swap" in short
        assert status == "OK"


@pytest.mark.parametrize(
    "opts", [{"warning": "abc"}, {"swap_critical": -5}, {"critical": [1, 2]}, {"bogus": 1}]
)
def test_memory_bad_options_are_unknown(opts):
    status, _, short, _ = run(memory, opts)
    assert status == "UNKNOWN"
    assert short.startswith("MEMORY UNKNOWN - ")


def test_read_meminfo_converts_kilobytes_to_bytes(tmp_path):
    path = tmp_path / "meminfo"
    path.write_text("MemTotal:       1000 kB\nHugePages_Total:       3\n")
    assert read_meminfo(str(path)) == {"MemTotal": 1024000, "HugePages_Total": 3}


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ({"warning": "101:", "critical": "0:"}, "WARNING"),
        ({"critical": "@0:100"}, "CRITICAL"),
        ({"warning": "~:100", "critical": "~:100", "swap_warning": "~:100"}, "OK"),
    ],
)
def test_memory_thresholds_accept_nagios_ranges(opts, expected):
    opts = {"swap_warning": 100, "swap_critical": 100, **opts}
    assert run(memory, opts)[0] == expected


def test_memory_ranges_spelling_the_plain_meaning_give_the_same_status():
    plain = {"warning": 30, "critical": 20, "swap_warning": 40, "swap_critical": 50}
    ranges = {"warning": "30:", "critical": "20:", "swap_warning": "@40:", "swap_critical": "@50:"}
    assert run(memory, plain)[0] == run(memory, ranges)[0]


def test_memory_performance_data_has_percentages_with_thresholds_and_bytes():
    found = perf(memory, {"warning": 15, "swap_critical": "@90:"})
    available = found["available_percent"]
    assert (available.uom, available.warn, available.crit) == ("%", "15:", "5:")
    assert found["total_bytes"].uom == "B"
    assert found["total_bytes"].value == read_meminfo()["MemTotal"]
    if "swap_used_percent" in found:
        assert found["swap_used_percent"].crit == "@90:"
    assert not [label for label in found if label.startswith("thresholds")]


# --- processes ---------------------------------------------------------------------------


@pytest.fixture
def sleepers():
    """Two child Python processes whose command line holds a unique marker."""
    marker = f"accre-test-{uuid.uuid4().hex}"
    code = "import time; time.sleep(120)"
    children = [subprocess.Popen([sys.executable, "-P", "-c", code, marker]) for _ in range(2)]
    try:
        # Wait until both have exec'd: before that, their command line is pytest's.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if all(marker in psutil.Process(c.pid).cmdline() for c in children):
                    break
            except psutil.Error:
                pass
            time.sleep(0.01)
        else:
            pytest.fail("the marked child processes did not start in 10 s")
        yield marker, sorted(child.pid for child in children)
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_processes_counts_command_lines_containing_a_substring(sleepers):
    marker, pids = sleepers
    status, data, short, long = run(processes, {"cmdline": marker, "min": 2, "max": 2})
    assert data["count"] == 2
    assert data["pids"] == pids
    assert status == "OK"
    assert short.startswith("PROCS OK - 2 processes with ")
    assert str(pids[0]) in long


def test_processes_above_max_is_warning(sleepers):
    marker, _ = sleepers
    status, _, short, _ = run(processes, {"cmdline": marker, "max": 1})
    assert status == "WARNING"
    assert "more than 1" in short


def test_processes_below_min_is_critical(sleepers):
    marker, _ = sleepers
    status, _, short, _ = run(processes, {"cmdline": marker, "min": 3})
    assert status == "CRITICAL"
    assert "fewer than 3" in short


def test_processes_below_min_warning_is_warning(sleepers):
    marker, _ = sleepers
    status, _, _, _ = run(processes, {"cmdline": marker, "min": 1, "min_warning": 3})
    assert status == "WARNING"


def test_processes_counts_by_exact_name(sleepers):
    _, pids = sleepers
    name = psutil.Process().name()
    status, data, _, _ = run(processes, {"name": name, "min": 2})
    assert set(pids) <= set(data["pids"])
    assert status == "OK"
    status, _, _, _ = run(processes, {"name": name, "max": 1})
    assert status == "WARNING"
    status, _, _, _ = run(processes, {"name": name, "min": 100000})
    assert status == "CRITICAL"


def test_processes_name_and_cmdline_must_both_match(sleepers):
    marker, _ = sleepers
    status, data, _, _ = run(processes, {"name": "no-such-process-name", "cmdline": marker})
    assert data["count"] == 0
    assert status == "CRITICAL"


def test_processes_name_must_match_exactly_not_as_a_substring(sleepers):
    name = psutil.Process().name()
    _, data, _, _ = run(processes, {"name": name[:-1], "min": 0})
    assert data["pids"] == [] or all(psutil.Process(p).name() == name[:-1] for p in data["pids"])


def test_processes_max_zero_alone_checks_that_nothing_runs():
    absent = f"accre-test-{uuid.uuid4().hex}"
    status, data, _, _ = run(processes, {"cmdline": absent, "max": 0})
    assert data["min"] == 0
    assert status == "OK"


def test_processes_never_counts_the_process_running_the_check():
    marker = f"accre-test-{uuid.uuid4().hex}"
    code = (
        "import sys; from accre_monitor.checks.processes import processes; "
        "print(processes({'cmdline': sys.argv[1], 'min': 0})[1]['count'])"
    )
    # The child's own command line holds the marker, twice; it must not count itself.
    out = subprocess.run(
        [sys.executable, "-P", "-c", code, marker], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0"


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"min": 1},
        {"name": "x", "min": -1},
        {"name": "x", "min": 2, "max": 1},
        {"name": "x", "max": 1.5},
        {"name": "x", "min": "many"},
        {"name": {"a": 1}},
    ],
)
def test_processes_bad_options_are_unknown(opts):
    status, _, short, _ = run(processes, opts)
    assert status == "UNKNOWN"
    assert short.startswith("PROCS UNKNOWN - ")


@pytest.mark.parametrize(
    ("opts", "expected", "why"),
    [
        ({"warning": "1:1", "critical": "1:"}, "WARNING", "(more than 1)"),
        ({"critical": "3:"}, "CRITICAL", "(fewer than 3)"),
        ({"critical": "@2:2"}, "CRITICAL", "(in @2:2)"),
        ({"warning": 1}, "WARNING", "(more than 1)"),
        ({"warning": 2}, "OK", "(critical 1:, warning 2)"),
        ({"warning": "2:2", "critical": "1:"}, "OK", "(critical 1:, warning 2:2)"),
    ],
)
def test_processes_warning_and_critical_take_nagios_ranges_on_the_count(
    sleepers, opts, expected, why
):
    marker, _ = sleepers
    status, data, short, _ = run(processes, {"cmdline": marker, **opts})
    assert data["count"] == 2
    assert status == expected
    assert short.endswith(why)


@pytest.mark.parametrize(
    "opts",
    [
        {"critical": "1:", "min": 1},
        {"warning": "1:", "max": 3},
        {"warning": 5, "min_warning": 1},
        {"warning": -1},
        {"critical": "many"},
        {"min_warning": 4, "max": 3},
    ],
)
def test_processes_range_options_refuse_mixing_and_bad_values(opts):
    status, _, short, _ = run(processes, {"name": "x", **opts})
    assert status == "UNKNOWN"
    assert short.startswith("PROCS UNKNOWN - option ")


def test_processes_performance_data_is_the_count_with_its_thresholds(sleepers):
    marker, _ = sleepers
    found = perf(processes, {"cmdline": marker, "min": 1, "min_warning": 2, "max": 5})
    assert list(found) == ["count"]
    assert (found["count"].value, found["count"].warn, found["count"].crit) == (2, "2:5", "1:")


# --- file_age ----------------------------------------------------------------------------


@pytest.fixture
def heartbeat(tmp_path):
    path = tmp_path / "heartbeat"
    path.touch()
    return path


def set_age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_fresh_heartbeat_file_is_ok(heartbeat):
    status, data, short, long = run(file_age, {"path": str(heartbeat)})
    assert status == "OK"
    assert data["exists"] is True
    assert 0 <= data["age_seconds"] < 60
    assert data["mtime"] == os.stat(heartbeat).st_mtime
    assert short.startswith(f"FILE_AGE OK - {heartbeat} modified ")
    assert long.startswith("mtime: ")


def test_heartbeat_older_than_warning_is_warning(heartbeat):
    set_age(heartbeat, 400)
    status, data, short, _ = run(file_age, {"path": str(heartbeat)})
    assert status == "WARNING"
    assert 399 <= data["age_seconds"] < 460
    assert "older than 5 min" in short


def test_heartbeat_older_than_critical_is_critical(heartbeat):
    set_age(heartbeat, 1000)
    status, _, _, _ = run(file_age, {"path": str(heartbeat)})
    assert status == "CRITICAL"


def test_heartbeat_thresholds_are_options(heartbeat):
    set_age(heartbeat, 100)
    status, _, _, _ = run(file_age, {"path": str(heartbeat), "warning": 50, "critical": 200})
    assert status == "WARNING"
    status, _, _, _ = run(file_age, {"path": str(heartbeat), "warning": 10, "critical": 50})
    assert status == "CRITICAL"


def test_heartbeat_with_mtime_in_the_future_is_ok(heartbeat):
    set_age(heartbeat, -3600)
    status, data, short, _ = run(file_age, {"path": str(heartbeat)})
    assert data["age_seconds"] < 0
    assert status == "OK"
    assert "in the future" in short


def test_missing_heartbeat_file_is_critical(tmp_path):
    path = tmp_path / "nope"
    status, data, short, _ = run(file_age, {"path": str(path)})
    assert status == "CRITICAL"
    assert data["exists"] is False
    assert data["age_seconds"] is None
    assert short == f"FILE_AGE CRITICAL - {path} does not exist"


def test_missing_heartbeat_file_takes_the_missing_status(tmp_path):
    path = str(tmp_path / "nope" / "deeper")
    for missing in ("ok", "WARNING", "Unknown"):
        status, _, _, _ = run(file_age, {"path": path, "missing": missing})
        assert status == missing.upper()


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"path": ["/a", "b"]},
        {"path": "/tmp", "warning": "abc"},
        {"path": "/tmp", "critical": -1},
        {"path": "/tmp", "missing": "BROKEN"},
    ],
)
def test_file_age_bad_options_are_unknown(opts):
    status, _, short, _ = run(file_age, opts)
    assert status == "UNKNOWN"
    assert short.startswith("FILE_AGE UNKNOWN - ")


@pytest.mark.parametrize(
    ("opts", "expected", "why"),
    [
        ({"warning": "0:50"}, "WARNING", "(older than 50 s)"),
        ({"warning": "@60:120"}, "WARNING", "(age in @60:120)"),
        ({"critical": "200:"}, "CRITICAL", "(newer than 3 min 20 s)"),
        ({"warning": "~:200", "critical": "~:300"}, "OK", "ago"),
    ],
)
def test_file_age_thresholds_accept_nagios_ranges_of_seconds(heartbeat, opts, expected, why):
    set_age(heartbeat, 100)
    status, data, short, _ = run(file_age, {"path": str(heartbeat), **opts})
    assert status == expected
    assert short.endswith(why)


def test_file_age_range_from_zero_warns_about_a_future_modification_time(heartbeat):
    set_age(heartbeat, -3600)
    status, _, short, _ = run(file_age, {"path": str(heartbeat), "warning": "0:300"})
    assert status == "WARNING"
    assert "in the future" in short


def test_file_age_performance_data_is_the_age_in_seconds_with_thresholds(heartbeat):
    set_age(heartbeat, 100)
    found = perf(file_age, {"path": str(heartbeat), "critical": "@0:1000"})
    assert list(found) == ["age_seconds"]
    age = found["age_seconds"]
    assert (age.uom, age.warn, age.crit) == ("s", "~:300", "@0:1000")
    assert 99 <= age.value < 160


# --- tcp_port ----------------------------------------------------------------------------


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def closed_port():
    """A port bound but not listening: connections to it are refused, and no one can take it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def test_listening_port_is_ok(listener):
    status, data, short, _ = run(tcp_port, {"port": listener})
    assert status == "OK"
    assert data["host"] == "127.0.0.1"
    assert data["port"] == listener
    assert 0 < data["connect_seconds"] < 5
    assert short.startswith(f"TCP OK - 127.0.0.1:{listener} connected in ")


def test_slow_connect_over_warning_is_warning(listener):
    status, _, short, _ = run(tcp_port, {"port": listener, "warning": 0})
    assert status == "WARNING"
    assert "slower than 0 s" in short


def test_refused_port_is_critical(closed_port):
    status, data, short, _ = run(tcp_port, {"port": closed_port, "timeout": 2})
    assert status == "CRITICAL"
    assert data["connect_seconds"] is None
    assert "refused" in data["error"]
    assert short.startswith(f"TCP CRITICAL - 127.0.0.1:{closed_port} ")


def test_port_whose_backlog_is_full_times_out_critical():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        # Never accepted: they fill the accept queue, and later SYNs are dropped.
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        # the first one is in the queue once its handshake is done (it turns writable)
        assert select.select([], fillers[:1], [], 10)[1]
        status, data, short, _ = run(tcp_port, {"port": port, "timeout": 0.3})
        assert status == "CRITICAL"
        assert data["error"] == "timed out after 0.3 s"
        assert short.endswith("timed out after 0.3 s")
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def test_tcp_port_over_ipv6_loopback_works():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    server = socket.socket(socket.AF_INET6)
    try:
        server.bind(("::1", 0))
    except OSError:
        server.close()
        pytest.skip("no IPv6 loopback")
    with server:
        server.listen(1)
        port = server.getsockname()[1]
        status, _, short, _ = run(tcp_port, {"host": "::1", "port": port})
    assert status == "OK"
    assert f"[::1]:{port}" in short


def test_unresolvable_host_is_unknown():
    status, data, _, _ = run(tcp_port, {"host": "no-such-host.invalid", "port": 80})
    assert status == "UNKNOWN"
    assert "no-such-host.invalid" in data["error"]


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"port": None},
        {"port": "http"},
        {"port": 0},
        {"port": 70000},
        {"port": 22.5},
        {"port": 22, "timeout": 0},
        {"port": 22, "timeout": "soon"},
        {"port": 22, "warning": -1},
        {"port": 22, "host": ["a", "b"]},
    ],
)
def test_tcp_port_bad_options_are_unknown(opts):
    status, _, short, _ = run(tcp_port, opts)
    assert status == "UNKNOWN"
    assert short.startswith("TCP UNKNOWN - option ")


def test_missing_port_says_it_is_required():
    _, _, short, _ = run(tcp_port, {"host": "127.0.0.1"})
    assert short == "TCP UNKNOWN - option port is required"


@pytest.mark.parametrize(
    ("opts", "expected", "why"),
    [
        ({"critical": "@0:10"}, "CRITICAL", "(in @0:10)"),
        ({"warning": "1:"}, "WARNING", "(faster than 1 s)"),
        ({"critical": 0}, "CRITICAL", "(slower than 0 s)"),
        ({"warning": 10, "critical": "~:10"}, "OK", " s"),
    ],
)
def test_tcp_port_thresholds_accept_nagios_ranges_of_seconds(listener, opts, expected, why):
    status, _, short, _ = run(tcp_port, {"port": listener, **opts})
    assert status == expected
    assert short.endswith(why)


def test_tcp_port_performance_data_is_the_connect_time_within_the_timeout(listener):
    found = perf(tcp_port, {"port": listener, "warning": 2, "timeout": 3})
    assert list(found) == ["connect_seconds"]
    seconds = found["connect_seconds"]
    assert (seconds.uom, seconds.warn, seconds.crit, seconds.min, seconds.max) == (
        "s",
        "~:2",
        None,
        0,
        3,
    )


def test_tcp_port_that_refuses_has_no_performance_data(closed_port):
    assert perf(tcp_port, {"port": closed_port}) == {}


# --- mounts ------------------------------------------------------------------------------


def test_root_mounted_with_its_real_type_is_ok():
    fstype = root_fstype()
    status, data, short, _ = run(mounts, {"require": f"/:{fstype}"})
    assert status == "OK"
    assert data["mounts"][0]["fstype"] == fstype
    assert data["mounts"][0]["expected"] == [fstype]
    assert short == f"MOUNTS OK - / {fstype}"


def test_mount_without_a_type_accepts_any_type():
    status, data, _, _ = run(mounts, {"require": "/"})
    assert status == "OK"
    assert data["mounts"][0]["expected"] == []


def test_mount_with_alternative_types_accepts_either():
    status, _, _, _ = run(mounts, {"require": [f"/:nosuchfs|{root_fstype()}"]})
    assert status == "OK"


def test_missing_mount_point_is_critical(tmp_path):
    missing = str(tmp_path / "not-a-mount")
    status, data, short, _ = run(mounts, {"require": ["/", f"{missing}:nfs"]})
    assert status == "CRITICAL"
    by_mount = {entry["mount"]: entry for entry in data["mounts"]}
    assert by_mount[missing]["fstype"] is None
    assert by_mount["/"]["status"] == "OK"
    assert short == f"MOUNTS CRITICAL - {missing} missing"


def test_mount_with_the_wrong_type_is_critical():
    fstype = root_fstype()
    status, data, short, _ = run(mounts, {"require": "/:nosuchfs"})
    assert status == "CRITICAL"
    assert data["mounts"][0]["fstype"] == fstype
    assert short == f"MOUNTS CRITICAL - / is {fstype}, expected nosuchfs"


def test_mounts_accepts_a_json_object_of_types():
    fstype = root_fstype()
    status, _, _, _ = run(mounts, {"require": {"/": fstype, "/proc": None}})
    assert status == "OK"
    status, _, _, _ = run(mounts, {"require": {"/": ["nosuchfs"]}})
    assert status == "CRITICAL"


def test_mount_points_are_compared_after_normalization():
    status, data, _, _ = run(mounts, {"require": "/proc/:proc"})
    assert data["mounts"][0]["mount"] == "/proc"
    assert status == "OK"


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"require": []},
        {"require": "relative/path"},
        {"require": 5},
        {"require": {"/": 5}},
        {"require": "/", "mounts": "/"},
    ],
)
def test_mounts_bad_options_are_unknown(opts):
    status, _, short, _ = run(mounts, opts)
    assert status == "UNKNOWN"
    assert short.startswith("MOUNTS UNKNOWN - ")


def test_mount_table_octal_escapes_are_decoded():
    assert unescape(rb"/mnt/my\040disk\011tab\134slash") == "/mnt/my disk\ttab\\slash"


def test_mount_table_last_mount_on_a_point_wins(tmp_path):
    table = tmp_path / "mounts"
    table.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        "server:/export /mnt/with\\040space nfs rw 0 0\n"
        "tmpfs /mnt/with\\040space tmpfs rw 0 0\n"
    )
    parsed = read_mounts(str(table))
    assert parsed["/mnt/with space"] == ("tmpfs", "tmpfs", "rw")
    assert parsed["/"][1] == "ext4"


# --- through the command line ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["disk_usage", "--mounts", "/", "--warning", "0"], 1),
        (["disk_usage", "--mounts", "/,/", "--critical", "100"], 0),
        (["disk_usage", "--inode-critical", "0", "--critical", "0"], 2),
        (["disk_usage", "--warning", "abc"], 3),
        (["memory", "--warning", "100", "--critical", "0"], 1),
        (["mounts", "--require", "/"], 0),
        (["mounts", "--require", "/,/no/such/mount"], 2),
        (["tcp_port"], 3),
        (["file_age", "--path", "/no/such/file", "--missing", "WARNING"], 1),
        (["processes", "--cmdline", "accre-test-never-running", "--max", "0"], 0),
        (["loadavg", "--warning", "1000,1000,1000"], 0),
        (["loadavg", "--critical=-1"], 2),
        (["loadavg", "--warning", "1000:"], 1),
        (["loadavg", "--critical", "@0:1000"], 2),
        (["loadavg", "--warning", "~:-1,0:1000,0:1000"], 1),
        (["loadavg", "--warnin", "3"], 3),
        (["disk_usage", "--warning", "@0:100"], 1),
        (["memory", "--critical", "@0:100"], 2),
        (["file_age", "--path", "/", "--warning", "@~:", "--critical", "~:"], 1),
        (["processes", "--cmdline", "accre-test-never-running", "--critical", "1:"], 2),
    ],
)
def test_command_line_options_reach_the_checks(cli, args, code):
    result = cli.run(*args)
    assert result.returncode == code, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "short"),
    [
        (["--warnin", "3"], "LOAD UNKNOWN - unknown option warnin (known: warning, critical)"),
        (
            ["--warning", "abc"],
            "LOAD UNKNOWN - option warning must be a number or a range "
            "(10, 10:, ~:10, 10:20 or @10:20), not 'abc'",
        ),
    ],
)
def test_bad_loadavg_options_tell_nagios_why(cli, args, short):
    result = cli.run("--outputs", "nagios-stdout", "loadavg", *args)
    assert result.returncode == 3
    assert result.stdout.partition(" | ")[0] == short


def test_nagios_stdout_prints_the_checks_perfdata_when_configured(cli):
    cli.write_config(
        """
        [monitoring]
        outputs = ["nagios-stdout"]
        [outputs.nagios-stdout]
        payload = "perfdata"
        """
    )
    result = cli.run("disk_usage", "--mounts", "/", "--critical", "~:99.5")
    parsed = parse_plugin_output(result.stdout)
    assert parsed.text.startswith("DISK ")
    used = parsed.metric("mounts./.used_percent")
    assert (used.uom, used.warn, used.crit, used.min, used.max) == ("%", "@80:", "~:99.5", 0, 100)
    assert parsed.long_lines[0].startswith("/: ")
    result = cli.run("loadavg", "--warning", "1000:,~:-1,0:1000")
    parsed = parse_plugin_output(result.stdout)
    assert result.returncode == 1
    assert [(m.label, m.warn) for m in parsed.perfdata] == [
        ("load1", "1000:"),
        ("load5", "~:-1"),
        ("load15", "1000"),
    ]


def test_an_unknown_nagios_payload_is_reported_on_stderr_without_a_traceback(cli):
    cli.write_config(
        """
        [monitoring]
        outputs = ["nagios-stdout"]
        [outputs.nagios-stdout]
        payload = "graphite"
        """
    )
    result = cli.run("loadavg")
    assert 'outputs.nagios-stdout.payload must be "json" or "perfdata"' in result.stderr
    assert "Traceback" not in result.stderr
