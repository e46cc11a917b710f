"""Disk space checks."""

import os

from accre_monitor import Option, Range, monitor_command
from accre_monitor.status import OK, UNKNOWN, worst

from ._format import fmt_bytes, fmt_percent, level


def _percent(name: str, default: int, help: str) -> Option:
    return Option(
        name, Range.alert_at_or_above, default, help, metavar="PCT", minimum=0, maximum=100
    )


OPTIONS = [
    Option(
        "mounts",
        list,
        "/",
        "mount points to check, comma-separated. Any existing path works: the file system "
        "holding it is measured.",
        metavar="PATHS",
    ),
    _percent("warning", 80, "WARNING when space used reaches PCT percent"),
    _percent("critical", 90, "CRITICAL when space used reaches PCT percent"),
    _percent("inode_warning", 80, "WARNING when inodes used reach PCT percent"),
    _percent("inode_critical", 90, "CRITICAL when inodes used reach PCT percent"),
]
THRESHOLDS = ("warning", "critical", "inode_warning", "inode_critical")


@monitor_command(label="DISK", options=OPTIONS)
def disk_usage(opts: dict) -> tuple:
    """Percent of space and of inodes used on each mount point (os.statvfs).

    A threshold is a percentage from 0 to 100, compared with >= (so 0 always fires and
    100 fires only on a full file system), or a Nagios range: `A:B` alerts outside A to
    B (bounds included), `A:` below A, `~:B` above B, `@A:B` from A to B. So `@80:` is
    the same as 80, and `~:80` alerts only above 80.

    Space used is computed like df: used blocks over used plus blocks available to
    unprivileged users, so blocks reserved for root count as used. File systems that
    report no inodes (btrfs, some network file systems) skip the inode thresholds.

    Status: the worst over all mounts. A path that does not exist or cannot be
    queried is UNKNOWN for that mount. Bad option values give UNKNOWN.

    Data: {"mounts": [{"mount", "status", "used_percent", "inodes_used_percent",
    "total_bytes", "used_bytes", "free_bytes", "inodes_total", "inodes_free"}]}
    (free_bytes: available to unprivileged users), or {"mount", "status", "error"}
    for a mount that could not be read; plus the thresholds as given ("thresholds").
    Performance data: per mount (labelled mounts.MOUNT.FIELD) the percentages with
    their thresholds, the sizes in bytes and the inode counts.
    """
    mounts = opts["mounts"] or ["/"]
    thresholds = {key: opts[key] for key in THRESHOLDS}

    results = [_measure(mount, thresholds) for mount in mounts]
    status = worst(*(entry["status"] for entry in results))
    short = f"DISK {status} - " + "; ".join(_summary(entry) for entry in results)
    long = "\n".join(_details(entry) for entry in results)
    data = {"mounts": results, "thresholds": {k: t.given for k, t in thresholds.items()}}
    return status, data, short, long, _perf(thresholds)


def _perf(thresholds: dict[str, Range]) -> dict:
    """Performance data hints: units, and the thresholds on the two percentages."""
    percent = {"uom": "%", "min": 0, "max": 100}
    size = {"uom": "B", "min": 0}
    return {
        "mounts": {"labels": "mount"},
        "mounts.*.used_percent": {
            **percent,
            "warn": thresholds["warning"].range,
            "crit": thresholds["critical"].range,
        },
        "mounts.*.inodes_used_percent": {
            **percent,
            "warn": thresholds["inode_warning"].range,
            "crit": thresholds["inode_critical"].range,
        },
        "mounts.*.total_bytes": size,
        "mounts.*.used_bytes": size,
        "mounts.*.free_bytes": size,
        "mounts.*.inodes_total": {"min": 0},
        "mounts.*.inodes_free": {"min": 0},
        "thresholds": {"omit": True},
    }


def _measure(mount: str, thresholds: dict) -> dict:
    try:
        st = os.statvfs(mount)
    except OSError as err:
        return {"mount": mount, "status": UNKNOWN, "error": err.strerror or str(err)}
    used_blocks = st.f_blocks - st.f_bfree
    # df's formula: blocks reserved for root are neither used nor available to users.
    usable = used_blocks + st.f_bavail
    used_percent = round(100.0 * used_blocks / usable, 2) if usable else 0.0
    if st.f_files:
        inodes_used_percent = round(100.0 * (st.f_files - st.f_ffree) / st.f_files, 2)
    else:
        inodes_used_percent = None
    status = level(used_percent, thresholds["warning"], thresholds["critical"])
    if inodes_used_percent is not None:
        status = worst(
            status,
            level(inodes_used_percent, thresholds["inode_warning"], thresholds["inode_critical"]),
        )
    return {
        "mount": mount,
        "status": status,
        "used_percent": used_percent,
        "inodes_used_percent": inodes_used_percent,
        "total_bytes": st.f_blocks * st.f_frsize,
        "used_bytes": used_blocks * st.f_frsize,
        "free_bytes": st.f_bavail * st.f_frsize,
        "inodes_total": st.f_files,
        "inodes_free": st.f_ffree,
    }


def _summary(entry: dict) -> str:
    if "error" in entry:
        return f"{entry['mount']} cannot be read: {entry['error']} ({entry['status']})"
    text = (
        f"{entry['mount']} {fmt_percent(entry['used_percent'])}% used, "
        f"inodes {fmt_percent(entry['inodes_used_percent'])}"
        + ("%" if entry["inodes_used_percent"] is not None else "")
    )
    return text if entry["status"] == OK else f"{text} ({entry['status']})"


def _details(entry: dict) -> str:
    if "error" in entry:
        return f"{entry['mount']}: {entry['status']}: {entry['error']}"
    return (
        f"{entry['mount']}: {entry['status']}: {fmt_bytes(entry['used_bytes'])} used of "
        f"{fmt_bytes(entry['used_bytes'] + entry['free_bytes'])} usable "
        f"({fmt_bytes(entry['free_bytes'])} free, {fmt_percent(entry['used_percent'])}%), "
        f"inodes {entry['inodes_total'] - entry['inodes_free']} used of {entry['inodes_total']}"
    )
