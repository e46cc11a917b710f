"""The configuration of the run a check belongs to.

A check that needs the configuration (where the spool is, which outputs are set up) must
see the one its run uses, `accre-monitor --config site.toml` included, not whatever the
default lookup finds: `run_config()` gives it, in the forked check process as well.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from accre_monitor.config import Config

_current: Config | None = None


def set_run_config(config: Config | None) -> None:
    """Make `config` what `run_config()` answers (the command line does this before a check)."""
    global _current
    _current = config


def run_config() -> Config:
    """The configuration of the current run; outside a run, the one the default lookup finds."""
    if _current is None:
        from accre_monitor.config import load_config

        return load_config()
    return _current
