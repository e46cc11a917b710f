"""The watchdog: results that stop coming are noticed.

Results are pushed: when a check hangs or a node dies, nothing arrives, and only something
that looks at the state from outside can say so. Every shipper that keeps the cluster state
runs a watchdog in a thread of its own; a lease in the state store (`watchdog`) lets exactly
one of them act at a time, however many shippers run, on however many machines. Every
`[state] watchdog_interval` seconds the holder:

1. publishes what the state's outbox still owes: records the state made (stale, keepalive
   and recovered keepalive records) are taken into the state and put in its outbox in one
   transaction, and leave the outbox only once the bus confirmed them. A watchdog killed in
   between loses nothing: the next one publishes the same record, with the same id, which
   outputs that keep one copy per id never say twice.
2. calls silent the nodes from which no result at all came within `[state] node_ttl`: one
   `keepalive` record each (status `node_status`). The node's next result recovers it: the
   store makes that OK record itself and owes it (step 1).
3. calls stale the checks with no newer result within their `ttl`: one stale record per gap
   in the results (status `ttl_status`), unless the node is silent or may be (its keepalive
   speaks for it: one alert per dead node, not one per check), or came back less than the
   check's ttl ago.

Every record is made and taken with compare-and-set (`fire_stale`, `fire_keepalive`): a
record that arrived meanwhile, or another watchdog that fired first, wins, and nothing is
fired twice. The records then go "through the bus like any other record": on the RabbitMQ
bus one confirmed, persistent publish to the exchange (every output's queue gets it behind
its bindings); on the in-process bus one spool write for every remote output that wants it,
which the shipper's spool drainer delivers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from accre_monitor import log
from accre_monitor.outcome import DELIVERED, describe
from accre_monitor.pipeline.bus import record_bytes
from accre_monitor.pipeline.daemon import Stopping
from accre_monitor.pipeline.state import Entry, Node, StateStore, keepalive_record, stale_record
from accre_monitor.pipeline.state_store import open_state

LEASE = "watchdog"  # the lease's name in the state store
LAST_ROUND = "watchdog:last-round"  # the document where the acting watchdog notes each round
CHUNK = 200  # entries or nodes looked at, fired and published at a time
OUTBOX_BATCH = 200  # owed records published at a time


class Outlet(Protocol):
    """Where the watchdog's records go: the bus."""

    def publish(self, records: list[dict[str, Any]]) -> int:
        """Publish `records` in order; how many, from the first, are confirmed (an
        exception when none could be)."""
        ...

    def close(self) -> None: ...


class BrokerOutlet:
    """The RabbitMQ bus: a confirmed, mandatory, persistent publish to the exchange, with
    the routing key of any record (`STATUS.check_name`), on a connection of its own."""

    def __init__(self, config: Any) -> None:
        from accre_monitor.pipeline.broker_backlog import BrokerForwarder, remote_outputs

        self.forwarder = BrokerForwarder(config, remote_outputs(config))

    def publish(self, records: list[dict[str, Any]]) -> int:
        outcomes = self.forwarder.deliver(records, self.forwarder.timeout)
        confirmed = 0
        for outcome in outcomes:
            if outcome.state != DELIVERED:
                break
            confirmed += 1
        return confirmed

    def close(self) -> None:
        self.forwarder.close()


class SpoolOutlet:
    """The in-process bus: the record is spooled, due at once, for every remote output of
    the config that wants it (behind its filters), as a run with `[spool] inline = false`
    does; the shipper's spool drainer delivers it."""

    def __init__(self, config: Any) -> None:
        from accre_monitor.pipeline.broker_backlog import remote_outputs
        from accre_monitor.pipeline.spool import Spool
        from accre_monitor.pipeline.wiring import destination

        self.spool = Spool.from_config(config)
        self.destinations = [destination(name, config) for name in remote_outputs(config)]

    def publish(self, records: list[dict[str, Any]]) -> int:
        entries = []
        for record in records:
            body = record_bytes(record)
            entries += [(record["id"], d.name, body) for d in self.destinations if d.wants(record)]
        if entries:
            self.spool.add(entries, attempts=0)
        return len(records)

    def close(self) -> None:
        self.spool.close()


def bus_outlet(config: Any) -> Outlet:
    """The outlet of the config's bus."""
    if config.bus["kind"] == "rabbitmq":
        return BrokerOutlet(config)
    return SpoolOutlet(config)


@dataclass(slots=True)
class Round:
    """What one round did (for the log and the benchmark)."""

    active: bool = False  # this watchdog held the lease
    published: int = 0
    keepalives: int = 0
    stale: int = 0
    spared: int = 0  # overdue entries left for now (a silent node's, one just back)

    @property
    def acted(self) -> bool:
        return bool(self.published or self.keepalives or self.stale)


class Watchdog:
    """Fires stale and keepalive records from the state, and publishes what it owes."""

    def __init__(
        self,
        store: StateStore,
        outlet: Outlet,
        settings: dict[str, Any],
        stopping: Stopping | None = None,
        holder: str | None = None,
        chunk: int = CHUNK,
        clock: Any = time.time,
    ) -> None:
        self.store = store
        self.outlet = outlet
        self.interval = float(settings["watchdog_interval"])
        self.lease = float(settings["lease"])
        self.ttl_status = str(settings["ttl_status"])
        self.node_ttl = float(settings["node_ttl"])
        self.node_status = str(settings["node_status"])
        self.stopping = stopping if stopping is not None else Stopping()  # falsy until set
        # unique per process (and per watchdog): a restarted shipper is another holder
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.chunk = chunk
        self.clock = clock  # what the watchdog calls now (tests move it)
        self.holding = False
        self.outlet_down = False
        self.failing = False  # the last round could not use the state store

    @classmethod
    def from_config(cls, config: Any, stopping: Stopping) -> Watchdog:
        """The shipper's watchdog: the state and the bus on connections of its own.
        ConfigError when the state cannot be used (a Redis URL without the redis package)."""
        store = open_state(config.state, os.path.dirname(config.spool["path"]))
        try:
            outlet = bus_outlet(config)
        except BaseException:
            store.close()
            raise
        return cls(store, outlet, config.state, stopping)

    # -- the daemon's loop -------------------------------------------------------------

    def run(self) -> None:
        """A round every `watchdog_interval` seconds until stopped; the lease is released
        on the way out, so another shipper's watchdog takes over at once."""
        log.info(
            "watchdog started",
            interval=self.interval,
            node_ttl=self.node_ttl,
            holder=self.holder,
        )
        try:
            while not self.stopping:
                started = time.monotonic()
                self.step()
                self.stopping.wait(self.interval - (time.monotonic() - started))
        finally:
            self.close()
            log.info("watchdog stopped")

    def step(self) -> Round | None:
        """One round, whatever happens: a state store that cannot be used (down, timing out)
        is said once, and the rounds go on until it can be used again."""
        started = time.monotonic()
        try:
            result = self.round()
        except Exception as exc:
            if not self.failing:
                log.error(
                    "watchdog cannot use the cluster state; trying again every round",
                    error=describe(exc),
                )
            self.failing = True
            return None
        if self.failing:
            log.info("watchdog uses the cluster state again")
            self.failing = False
        if result.acted:
            log.info(
                "watchdog round",
                stale=result.stale,
                keepalive=result.keepalives,
                published=result.published,
                spared=result.spared,
                seconds=round(time.monotonic() - started, 3),
            )
        return result

    def close(self) -> None:
        if self.holding:
            with contextlib.suppress(Exception):
                self.store.release_lease(LEASE, self.holder)
            self.holding = False
        for part in (self.outlet, self.store):
            with contextlib.suppress(Exception):
                part.close()

    # -- one round -----------------------------------------------------------------------

    def round(self) -> Round:
        """One round: nothing unless this watchdog holds the lease. The acting watchdog
        notes each round it finishes in the state (`last_round`), so that a status page or
        a scrape can tell a watchdog that stopped from a cluster with nothing to fire."""
        result = Round()
        if not self._hold():
            return result
        started = time.monotonic()
        result.active = True
        result.published += self.publish_owed()
        # each step only while the lease is still ours (a round can outlast it)
        if self.node_ttl > 0 and self._hold():
            self._silent_nodes(result)
        if self._hold():
            self._overdue(result)
        self._note(result, time.monotonic() - started)
        return result

    def _note(self, result: Round, seconds: float) -> None:
        """Keep this round as the watchdog's last one (one small document, set if
        unchanged: a watchdog that lost the lease meanwhile may lose the race, harmlessly)."""
        _, version = self.store.load_doc(LAST_ROUND)
        self.store.save_doc(
            LAST_ROUND,
            {
                "holder": self.holder,
                "at": self.clock(),
                "seconds": round(seconds, 6),
                "interval": self.interval,
                "stale": result.stale,
                "keepalives": result.keepalives,
                "published": result.published,
                "spared": result.spared,
            },
            version,
        )

    def _hold(self) -> bool:
        """Take or renew the lease; say when this watchdog starts or stops acting."""
        held = self.store.acquire_lease(LEASE, self.holder, self.lease)
        if held != self.holding:
            log.info("watchdog acting" if held else "watchdog standing by", holder=self.holder)
        self.holding = held
        return held

    def publish_owed(self) -> int:
        """Publish what the outbox owes, oldest first; each record leaves it only once the
        bus confirmed it. A bus that cannot take them now keeps them owed."""
        total = 0
        while not self.stopping:
            owed = self.store.outbox(OUTBOX_BATCH)
            if not owed or (total and not self._hold()):  # a long backlog: keep the lease
                break
            try:
                confirmed = self.outlet.publish(owed)
            except Exception as exc:
                self._outlet_failed(exc, len(owed))
                break
            if confirmed:
                self.store.published([str(r["id"]) for r in owed[:confirmed]])
                total += confirmed
            if confirmed < len(owed):
                self._outlet_failed(None, len(owed) - confirmed)
                break
            if self.outlet_down:
                log.info("watchdog publishing again")
                self.outlet_down = False
            if len(owed) < OUTBOX_BATCH:
                break
        return total

    def _outlet_failed(self, exc: BaseException | None, owed: int) -> None:
        if not self.outlet_down:
            log.warning(
                "watchdog cannot publish now; the records stay owed",
                error=describe(exc) if exc is not None else "not confirmed",
                owed=owed,
            )
        self.outlet_down = True

    def _silent_nodes(self, result: Round) -> None:
        """One keepalive record per node silent for `node_ttl`."""
        while not self.stopping:
            now = self.clock()
            candidates = self.store.silent_candidates(now, self.node_ttl, self.chunk)
            fired = sum(
                self.store.fire_keepalive(
                    keepalive_record(node, self.node_status, now, self.node_ttl), node.last, now
                )
                for node in candidates
            )
            result.keepalives += fired
            if fired:
                result.published += self.publish_owed()
            # the fired ones are no candidates any more; the others changed meanwhile
            if len(candidates) < self.chunk or not fired or not self._hold():
                break

    def _overdue(self, result: Round) -> None:
        """One stale record per check whose ttl ran out, chunk by chunk (each published as
        soon as it is fired); the entries spared are paged past."""
        nodes: dict[str, Node] | None = None
        spared = 0
        while not self.stopping:
            now = self.clock()
            entries = self.store.overdue(now, self.chunk, spared)
            if not entries:
                break
            if nodes is None:  # after the keepalives: a node called silent now counts
                nodes = {node.name: node for node in self.store.nodes()}
            fired = 0
            for entry in entries:
                if self.spares(entry, nodes.get(entry.node), now):
                    spared += 1
                    continue
                record = stale_record(entry, self.ttl_status, now)
                fired += self.store.fire_stale(record, entry.record_id, now)
            result.stale += fired
            result.spared = spared
            if fired:
                result.published += self.publish_owed()
            if len(entries) < self.chunk or not self._hold():
                break

    def spares(self, entry: Entry, node: Node | None, now: float) -> bool:
        """Whether an overdue entry gets no stale record for now: its node is silent; with
        `node_ttl` on, its node sent nothing since the entry came due (it may be silent
        altogether: its keepalive will say so, one alert for the node, not one per
        check); or its node came back less than the entry's ttl ago."""
        if node is None:
            return False
        if node.silent:
            return True
        if self.node_ttl > 0 and node.last < entry.date + entry.ttl:
            return True
        return bool(node.back) and now - node.back < entry.ttl


def last_round(store: StateStore) -> dict[str, Any] | None:
    """What the acting watchdog noted of its last round (`at`: epoch seconds, `holder`,
    `seconds`, `interval`, and what it fired), or None when no watchdog ever ran."""
    value, _ = store.load_doc(LAST_ROUND)
    return value if isinstance(value, dict) else None
