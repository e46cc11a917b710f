"""The installed distribution's version, for `accre-monitor --version` and
`accre-pipeline --version`.

Read from the distribution's metadata only when asked: importlib.metadata (with the `re`,
`email` and `zipfile` it brings) would cost a check run several times the check itself.
"""

from __future__ import annotations

DISTRIBUTION = "accre-monitor"


def installed_version() -> str:
    """The version pip installed (`0.1.0`), or why there is none."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (the accre-monitor distribution is not installed)"


def version_line(program: str) -> str:
    """`accre-monitor 0.1.0`: the program's name and the distribution's version."""
    return f"{program} {installed_version()}"
