"""The command line of `accre-monitor`: its own options, the check name, the check's options.

Parsed by hand rather than with argparse: the check's options are free-form
`--key value` pairs, checks are found lazily, and every millisecond of start-up
is paid on every node every minute.
"""

from __future__ import annotations

from accre_monitor.errors import UserError
from accre_monitor.util import interpret_string_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The command's own options, which go before the check name; all take a value.
GLOBAL_OPTIONS = ("--config", "--options", "--outputs", "--timeout")
HELP_FLAGS = ("-h", "--help")
VERSION_FLAG = "--version"


class CommandLine:
    """What the user asked for."""

    __slots__ = ("globals", "check", "check_args", "help", "version")

    def __init__(self) -> None:
        self.globals: dict[str, str] = {}
        self.check: str | None = None
        self.check_args: list[str] = []
        self.help = False
        self.version = False


def parse_command_line(argv: list[str]) -> CommandLine:
    """Split argv into the command's options, the check name and the check's arguments."""
    line = CommandLine()
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in HELP_FLAGS:
            line.help = True
            index += 1
            continue
        if arg == VERSION_FLAG:  # before the check name only: after it, it is the check's
            line.version = True
            index += 1
            continue
        if arg.startswith("-") and arg != "-":
            key, has_value, value = arg.partition("=")
            if key not in GLOBAL_OPTIONS:
                raise UserError(
                    f"unknown option {key} before the check name "
                    f"(the command's options are {', '.join(GLOBAL_OPTIONS)}, {VERSION_FLAG})"
                )
            if not has_value:
                if index + 1 >= len(argv):
                    raise UserError(f"option {key} needs a value")
                index += 1
                value = argv[index]
            line.globals[key[2:]] = value
            index += 1
            continue
        line.check = arg
        line.check_args = argv[index + 1 :]
        line.help = line.help or any(a in HELP_FLAGS for a in line.check_args)
        break
    return line


def parse_json_options(text: str) -> dict[str, Any]:
    """The `--options` payload: a JSON object, or a UserError saying what is wrong."""
    import json

    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UserError(f"--options is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UserError(f"--options must be a JSON object, not {type(value).__name__}")
    return value


# The short options every Nagios plugin takes (`check_load -w 5,5,5 -c 10,10,10`).
SHORT_OPTIONS = {"-w": "warning", "-c": "critical"}


def parse_check_args(args: list[str]) -> dict[str, Any]:
    """`--key value`, `--key=value` and bare `--flag` (None) pairs; dashes in keys become `_`.

    `-w` and `-c` are `--warning` and `--critical` (`-w 5`, `-w5`). An option followed by
    another option has no value (None): `--warning --critical 30` gives warning None, which
    a check declaring `warning` refuses.
    """
    options: dict[str, Any] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        short = SHORT_OPTIONS.get(arg[:2])
        if short is not None:
            key, has_value, value = short, len(arg) > 2, arg[2:]
        elif not arg.startswith("--") or arg == "--":
            raise UserError(f"unexpected argument {arg!r}: check options are --key value pairs")
        else:
            key, has_value, value = arg[2:].partition("=")
            if not key:
                raise UserError(f"empty option name in {arg!r}")
            key = key.replace("-", "_")
        if has_value:
            options[key] = interpret_string_value(value)
        elif index + 1 < len(args) and not is_option(args[index + 1]):
            index += 1
            options[key] = interpret_string_value(args[index])
        else:
            options[key] = None
        index += 1
    return options


def is_option(arg: str) -> bool:
    """Whether a check argument names an option rather than giving a value (`-5` is a value)."""
    return arg.startswith("--") or arg[:2] in SHORT_OPTIONS


def build_payload(options_json: str | None, check_args: list[str]) -> dict[str, Any]:
    """`--options` JSON first, then the check's own `--key value` pairs on top."""
    payload = parse_json_options(options_json) if options_json is not None else {}
    payload.update(parse_check_args(check_args))
    return payload


def parse_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"--timeout must be a number of seconds, not {text!r}") from None
    from accre_monitor.config import MAX_TIMEOUT

    if not 0 <= value <= MAX_TIMEOUT:  # nan and inf too
        raise UserError(
            f"--timeout must be a number of seconds from 0 (no limit) to {MAX_TIMEOUT:g}, "
            f"not {text!r}"
        )
    return value


def parse_outputs(text: str) -> list[str]:
    outputs = [name.strip() for name in text.split(",") if name.strip()]
    if not outputs:
        raise UserError("--outputs needs at least one output name")
    return outputs
