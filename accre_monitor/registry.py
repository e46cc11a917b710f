"""The `@monitor_command` decorator and the table of checks it fills."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from accre_monitor.check_options import Option

    CheckFunction = Callable[[dict[str, Any]], tuple]


# name -> function, filled as check modules are imported.
REGISTRY: dict[str, CheckFunction] = {}


def monitor_command(
    func: CheckFunction | None = None,
    *,
    options: Iterable[Option] | None = None,
    label: str | None = None,
) -> Any:
    """Register `func` as a check named after the function: `@monitor_command`.

    The function takes the options payload (a dict) and returns
    `(status, data)`, `(status, data, short)` or `(status, data, short, long)`.

    `@monitor_command(options=[Option(...), ...], label="LOAD")` declares its options: the
    check is called with every one parsed (see `accre_monitor.Option`), and options it does
    not declare, or values that do not parse, give an UNKNOWN result naming the option,
    `LABEL UNKNOWN - reason` (the label defaults to the name in capitals). Without `options`
    the check gets the payload as given, and the function is registered unchanged.
    Either way what is registered can still be called directly.
    """
    if func is None:
        return lambda inner: monitor_command(inner, options=options, label=label)
    if options is not None:
        from accre_monitor.check_options import declare

        func = declare(func, options, label)
    elif label is not None:
        raise TypeError("monitor_command: label= goes with options=")
    func.__monitor_command__ = True  # type: ignore[attr-defined]
    REGISTRY[func.__name__] = func
    return func


def is_auditor(name: str) -> bool:
    """Auditor checks exist on the command line only when the config enables them."""
    return name.startswith("auditor")
