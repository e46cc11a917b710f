"""Errors a user can cause: reported as one line on stderr with the UNKNOWN exit code."""


class UserError(Exception):
    """A mistake in the command line, the options or the config; never shown as a traceback."""


class ConfigError(UserError):
    """The config file cannot be read or does not validate."""
