"""Check statuses, their order of severity, and the exit codes each monitoring system expects."""

OK = "OK"
WARNING = "WARNING"
CRITICAL = "CRITICAL"
UNKNOWN = "UNKNOWN"

STATUSES = (OK, WARNING, CRITICAL, UNKNOWN)

# UNKNOWN ranks with CRITICAL: a check that cannot tell is as urgent as one that fails.
SEVERITY = {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 2}

EXITCODE_MAPS = {"nagios": {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3}}


def normalize_status(value: object) -> str:
    """Return the upper-case status for `value`, or raise ValueError when it is not one."""
    if isinstance(value, str) and value.upper() in SEVERITY:
        return value.upper()
    raise ValueError(f"unknown status {value!r} (expected one of {', '.join(STATUSES)})")


def worst(*statuses: str) -> str:
    """The most severe of `statuses` (CRITICAL wins over UNKNOWN on a tie)."""
    return max(statuses, key=lambda s: (SEVERITY[s], s == CRITICAL))
