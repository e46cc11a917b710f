"""Opening the cluster state the `[state]` section names: SQLite (the default, `state.db`
beside the spool) or Redis (shared by shippers on several machines)."""

from __future__ import annotations

import os

from accre_monitor.errors import ConfigError
from accre_monitor.pipeline.state import StateStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SQLITE = "sqlite:///"


def state_url(settings: dict[str, Any] | None, state_dir: str | None = None) -> str:
    """The state's URL: `[state] url`, else `state.db` in `state_dir` (None: in memory)."""
    if settings and settings.get("url"):
        return str(settings["url"])
    if state_dir is None:
        return SQLITE + ":memory:"
    return SQLITE + os.path.join(state_dir, "state.db")


def open_state(settings: dict[str, Any] | None, state_dir: str | None = None) -> StateStore:
    """The store behind the state's URL; ConfigError for a URL it cannot use."""
    url = state_url(settings, state_dir)
    settings = settings or {}
    busy_timeout = float(settings.get("busy_timeout", 10.0))
    if url.startswith(SQLITE):
        from accre_monitor.pipeline.state_sqlite import SqliteState

        path = url[len(SQLITE) :]
        return SqliteState(path if path == ":memory:" else "/" + path.lstrip("/"), busy_timeout)
    if url.startswith(("redis://", "rediss://")):
        try:
            from accre_monitor.pipeline.state_redis import RedisState
        except ImportError as exc:
            raise ConfigError(
                f"state.url names Redis, which needs the redis package ({exc}): "
                "pip install 'accre-monitor[redis]'"
            ) from None
        prefix = str(settings.get("key_prefix", "accre-monitor"))
        return RedisState(url, prefix=prefix, busy_timeout=busy_timeout)
    raise ConfigError("state.url must be a sqlite:///PATH or redis:// URL")
