"""Errors a user can cause: reported as one line on stderr with the UNKNOWN exit code."""


class UserError(Exception):
    """A mistake in the command line, the options or the config; never shown as a traceback."""


class ConfigError(UserError):
    """The config file cannot be read or does not validate; `key` names the bad setting of
    an output's section, when one is to blame (its default can then stand in for it)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key
