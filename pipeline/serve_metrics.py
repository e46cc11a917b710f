"""`/metrics` of `accre-pipeline serve`: the cluster state for Prometheus.

Read at each scrape from the view the page reads (`serve_data.StateView`: a read of the
state shared for a second or two), through `prometheus_client`'s text format:

    accre_monitor_state_up                          1: the state was read; 0: it cannot be
    accre_monitor_state_checks{check,status}        node-check pairs in each status (0s too)
    accre_monitor_state_stale_checks{check}         of them, stale (ttl run out, or a stale
                                                    or keepalive record)
    accre_monitor_state_silenced_checks{check}      of them, covered by an active silence
    accre_monitor_state_nodes                       nodes in the state
    accre_monitor_state_silent_nodes                nodes a keepalive record called silent
    accre_monitor_silences_active                   silences in force now
    accre_monitor_silences_pending                  silences that begin later
    accre_monitor_watchdog_last_round_timestamp_seconds   when the acting watchdog last
                                                    finished a round (0: never); alert on
                                                    `time() - ... > 300`
    accre_monitor_watchdog_last_round_duration_seconds
    accre_monitor_watchdog_last_round_records{kind} stale, keepalive, published records
    accre_monitor_state_read_seconds                how long reading the state took
    accre_monitor_state_read_timestamp_seconds      when the figures were read

and the process' own (`process_*`). A state that cannot be read is `state_up 0` and a
200: the scrape itself worked, and the alert says what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from accre_monitor.pipeline.serve_data import StateUnavailable, StateView, per_check
from accre_monitor.status import STATUSES

PREFIX = "accre_monitor_"


def gauge(name: str, documentation: str, value: float | None = None, **kw: Any) -> Any:
    family = GaugeMetricFamily(PREFIX + name, documentation, **kw)
    if value is not None:
        family.add_metric([], value)
    return family


class StateCollector:
    """The state's figures, read when scraped."""

    def __init__(self, view: StateView) -> None:
        self.view = view

    def describe(self) -> list[Metric]:
        return []  # figures only at collection: registering reads nothing

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = self.view.snapshot()
        except StateUnavailable:
            yield gauge("state_up", "Whether the cluster state could be read", 0)
            return
        yield gauge("state_up", "Whether the cluster state could be read", 1)
        checks = gauge(
            "state_checks", "Node-check pairs per check and status", labels=["check", "status"]
        )
        stale = gauge("state_stale_checks", "Stale node-check pairs per check", labels=["check"])
        silenced = gauge(
            "state_silenced_checks",
            "Node-check pairs covered by an active silence, per check",
            labels=["check"],
        )
        for check, row in sorted(per_check(snapshot).items()):
            for status in STATUSES:
                checks.add_metric([check, status], row[status])
            stale.add_metric([check], row["stale"])
            silenced.add_metric([check], row["silenced"])
        yield checks
        yield stale
        yield silenced
        yield gauge("state_nodes", "Nodes in the cluster state", snapshot.nodes)
        yield gauge(
            "state_silent_nodes", "Nodes a keepalive record called silent", snapshot.silent_nodes
        )
        active = len(snapshot.active_silences())
        yield gauge("silences_active", "Silences in force now", active)
        yield gauge(
            "silences_pending", "Silences that begin later", len(snapshot.silences) - active
        )
        yield from self._watchdog(snapshot.watchdog)
        yield gauge(
            "state_read_seconds", "How long reading the cluster state took", snapshot.read_seconds
        )
        yield gauge("state_read_timestamp_seconds", "When these figures were read", snapshot.now)

    @staticmethod
    def _watchdog(last: dict[str, Any] | None) -> Iterator[Metric]:
        last = last or {}
        yield gauge(
            "watchdog_last_round_timestamp_seconds",
            "When the acting watchdog last finished a round (0: never)",
            float(last.get("at") or 0),
        )
        yield gauge(
            "watchdog_last_round_duration_seconds",
            "How long the watchdog's last round took",
            float(last.get("seconds") or 0),
        )
        records = gauge(
            "watchdog_last_round_records",
            "Records the watchdog's last round fired or published",
            labels=["kind"],
        )
        for kind, key in (
            ("stale", "stale"),
            ("keepalive", "keepalives"),
            ("published", "published"),
        ):
            records.add_metric([kind], float(last.get(key) or 0))
        yield records


class Metrics:
    """The registry one server scrapes: the state's figures and the process' own."""

    def __init__(self, view: StateView) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StateCollector(view))
        ProcessCollector(registry=self.registry)

    def exposition(self) -> tuple[bytes, str]:
        """(the text exposition, its content type) for a scrape."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
