"""`python -m accre_monitor` is `accre-monitor`."""

from accre_monitor.cli import main

main()
