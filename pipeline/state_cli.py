"""What the state commands share (`silence`, `forget`, `overview`), and `forget` itself.

Each command opens the state that `[state]` names, as the shipper does, and closes it when
done. A store that cannot be reached (Redis down, a file it may not open) is one line on
stderr and exit 1: it says which store, never a traceback.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sqlite3
import sys
from collections.abc import Iterator
from typing import Any

import argh

from accre_monitor import log
from accre_monitor.errors import UserError
from accre_monitor.pipeline.state import StateStore
from accre_monitor.pipeline.state_store import SQLITE, open_state, state_url
from accre_monitor.redaction import redact_url


def load_config() -> Any:
    """The config `accre-pipeline` was given (`--config`, or found as usual)."""
    from accre_monitor.pipeline.cli import current_config  # cli registers these commands

    return current_config()


def state_dir(config: Any) -> str:
    """Where the state lives by default: beside the spool."""
    return os.path.dirname(config.spool["path"])


def where(config: Any) -> str:
    """The state's URL as messages show it (a password masked)."""
    return redact_url(state_url(config.state, state_dir(config)))


def sqlite_missing(config: Any) -> bool:
    """Whether the state is a SQLite file that does not exist yet (nothing was ever taken):
    commands that only read say so rather than create it."""
    url = state_url(config.state, state_dir(config))
    if not url.startswith(SQLITE) or url == SQLITE + ":memory:":
        return False
    return not os.path.exists("/" + url[len(SQLITE) :].lstrip("/"))


def unreachable() -> tuple[type[BaseException], ...]:
    """The errors that mean the store cannot be used now (not a fault of this program)."""
    errors: list[type[BaseException]] = [OSError, sqlite3.Error]
    with contextlib.suppress(ImportError):
        from redis.exceptions import RedisError

        errors.append(RedisError)
    return tuple(errors)


@contextlib.contextmanager
def opened_state(config: Any) -> Iterator[StateStore]:
    """The state store `[state]` names, closed afterwards; a store that cannot be reached
    ends the command with one line and exit 1."""
    errors = unreachable()
    store = None
    try:
        store = open_state(config.state, state_dir(config))
        yield store
    except errors as exc:
        location, reason = where(config), _reason(exc)
        log.error(
            f"cannot use the state: {reason}"
            if location in reason
            else f"cannot use the state at {location}: {reason}"
        )
        sys.exit(1)
    finally:
        if store is not None:
            with contextlib.suppress(*errors):
                store.close()


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    filename = getattr(exc, "filename", None)
    return f"{text}: {filename}" if filename else text


@argh.arg("--node", help="the node's exact name")
@argh.arg("--check", help="only this check of the node (its exact name)")
def forget(*, node: str | None = None, check: str | None = None) -> None:
    """Drop a decommissioned node (every check, its liveness, what it still owes) or one
    retired check from the state, so that it never alerts again (until it reports again)."""
    if not node:
        raise UserError("forget needs --node NAME (and --check NAME for one check)")
    config = load_config()
    with opened_state(config) as store:
        known = store.entries(node=glob.escape(node))
        if not known and all(n.name != node for n in store.nodes()):
            raise UserError(f"no node {node!r} in the state at {where(config)}")
        if check is not None and all(e.check != check for e in known):
            raise UserError(f"no check {check!r} of node {node!r} in the state")
        gone = store.forget(node, check)
    if check is not None:
        print(f"forgot check {check} of node {node}: {gone} entry")
    else:
        print(
            f"forgot node {node}: {gone} {'entry' if gone == 1 else 'entries'} "
            "(every check, its liveness and what it still owed)"
        )
