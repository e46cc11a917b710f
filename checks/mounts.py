"""Mount point checks."""

import os
import re

from accre_monitor import Option, OptionError, monitor_command
from accre_monitor.status import CRITICAL, OK, UNKNOWN, worst

MOUNTS_FILE = "/proc/self/mounts"
_OCTAL_ESCAPE = re.compile(rb"\\([0-3][0-7]{2})")


def parse_requirements(value) -> list[tuple[str, list[str]]]:
    """[(mount point, allowed types)] from the `require` option (see the check's docstring)."""
    pairs: list[tuple[str, object]] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    else:
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str) or not item:
                raise OptionError(
                    f"option require: each entry must be MOUNTPOINT[:FSTYPE], not {item!r}"
                )
            mount, sep, fstypes = item.rpartition(":")
            pairs.append((mount, fstypes) if sep else (item, None))
    requirements = []
    for mount, fstypes in pairs:
        if not isinstance(mount, str) or not mount.startswith("/"):
            raise OptionError(
                f"option require: mount point must be an absolute path, not {mount!r}"
            )
        if fstypes is None or fstypes == "":
            allowed = []
        elif isinstance(fstypes, str):
            allowed = fstypes.split("|")
        elif isinstance(fstypes, list) and all(isinstance(t, str) for t in fstypes):
            allowed = list(fstypes)
        else:
            raise OptionError(
                f"option require: file system type for {mount} must be a string, not {fstypes!r}"
            )
        allowed = [fstype.strip() for fstype in allowed if fstype.strip()]
        requirements.append((os.path.normpath(mount), allowed))
    if not requirements:
        raise OptionError("option require is empty")
    return requirements


OPTIONS = [
    Option(
        "require",
        parse_requirements,
        help="the mount points to require, comma-separated; each is MOUNTPOINT (any file "
        "system type) or MOUNTPOINT:FSTYPE, where FSTYPE may list alternatives with `|`: "
        "`/home:nfs|nfs4`. Example: --require '/:ext4,/home:nfs|nfs4,/scratch:gpfs' (quote "
        "`|` in a shell). A mount point that holds a colon needs a trailing colon: "
        "`/odd:name:` (any type). As JSON (--options), `require` may also be an object "
        '{"/scratch": "gpfs", "/home": ["nfs", "nfs4"], "/tmp": null} (null or "" for any '
        "type), or a list of the strings above.",
        required=True,
        metavar="SPECS",
    )
]


@monitor_command(label="MOUNTS", options=OPTIONS)
def mounts(opts: dict) -> tuple:
    """Required mount points are mounted, with the expected file system type.

    The mount table is read from /proc/self/mounts, whose octal escapes (\\040 for a
    space, \\011, \\012, \\134) are decoded. Nothing is stat'ed, so a hung NFS mount
    cannot hang the check. When a mount point is mounted over several times, the last
    (visible) mount counts. Mount points are compared after normalization (a trailing
    slash does not matter) and must be absolute.

    Status: CRITICAL when a required mount point is not mounted or has another type;
    OK otherwise. UNKNOWN when the mount table cannot be read or bad option values
    are given.

    Data: {"mounts": [{"mount", "status", "expected" (list of types, empty = any),
    "fstype" (null when missing), "device", "options"}]}.
    """
    required = opts["require"]

    try:
        table = read_mounts()
    except OSError as err:
        message = f"cannot read {MOUNTS_FILE}: {err.strerror or err}"
        return UNKNOWN, {"error": message}, f"MOUNTS UNKNOWN - {message}", None

    results = []
    for mount, expected in required:
        entry = table.get(mount)
        if entry is None:
            results.append(
                {
                    "mount": mount,
                    "status": CRITICAL,
                    "expected": expected,
                    "fstype": None,
                    "device": None,
                    "options": None,
                }
            )
            continue
        device, fstype, options = entry
        ok = not expected or fstype in expected
        results.append(
            {
                "mount": mount,
                "status": OK if ok else CRITICAL,
                "expected": expected,
                "fstype": fstype,
                "device": device,
                "options": options,
            }
        )

    status = worst(*(entry["status"] for entry in results))
    problems = [_describe(entry) for entry in results if entry["status"] != OK]
    if problems:
        short = f"MOUNTS {status} - " + "; ".join(problems)
    else:
        short = "MOUNTS OK - " + ", ".join(f"{e['mount']} {e['fstype']}" for e in results)
    long = "\n".join(
        f"{e['mount']}: {e['status']}: "
        + (f"{e['fstype']} from {e['device']} ({e['options']})" if e["fstype"] else "missing")
        for e in results
    )
    return status, {"mounts": results}, short, long


def _describe(entry: dict) -> str:
    if entry["fstype"] is None:
        return f"{entry['mount']} missing"
    return f"{entry['mount']} is {entry['fstype']}, expected {' or '.join(entry['expected'])}"


def unescape(field: bytes) -> str:
    """A /proc/self/mounts field with its octal escapes (`\\040` = space) decoded."""
    raw = _OCTAL_ESCAPE.sub(lambda match: bytes([int(match.group(1), 8)]), field)
    return os.fsdecode(raw)


def read_mounts(path: str = MOUNTS_FILE) -> dict[str, tuple[str, str, str]]:
    """{mount point: (device, fstype, options)}; the last mount on a point wins."""
    table = {}
    with open(path, "rb") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) < 4:
                continue
            device, mount, fstype, options = (unescape(f) for f in fields[:4])
            table[mount] = (device, fstype, options)
    return table
