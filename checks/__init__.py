"""Built-in checks: every @monitor_command function in a module here is a subcommand."""
