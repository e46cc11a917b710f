"""The `@monitor_command` decorator and the table of checks it fills."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    CheckFunction = Callable[[dict[str, Any]], tuple]


# name -> function, filled as check modules are imported.
REGISTRY: dict[str, CheckFunction] = {}


def monitor_command(func: CheckFunction) -> CheckFunction:
    """Register `func` as a check named after the function.

    The function takes the options payload (a dict) and returns
    `(status, data)`, `(status, data, short)` or `(status, data, short, long)`.
    It is returned unchanged, so it can still be called directly.
    """
    func.__monitor_command__ = True  # type: ignore[attr-defined]
    REGISTRY[func.__name__] = func
    return func


def is_auditor(name: str) -> bool:
    """Auditor checks exist on the command line only when the config enables them."""
    return name.startswith("auditor")
