"""One retry policy for every path a record takes: the spool (inline runs, replay, the
node's shipper) and the broker (the shipper's queues).

- A record the store refuses (REJECTED: it cannot be prepared, rendered or accepted) is the
  record's failure: it becomes a dead letter once it was refused `max_attempts` times
  (default 1: at once), with the reason.
- A store that cannot take records now (RETRY: unreachable, timing out, 5xx, 429) is the
  store's failure: the record waits and is tried again, never given up on. The wait grows
  exponentially with the attempts, from `backoff_base` up to `backoff_max` seconds, and is
  never shorter than a store's `Retry-After`.
- A shipper holding a batch that its store could not take at all (or, for an output that
  asks for order, the head of its queue) probes the store again sooner: after 0.5 s,
  doubling up to 30 s (`probe`), or the store's `Retry-After`. One process probing one
  store costs little, and delivery resumes within seconds of the store's return.
- In the spool each wait gets jitter (x0.5 to x1.5), so nodes that failed together do not
  all come back at once. On the broker a record waits in a queue of fixed delay, one queue
  per step of the same ladder (`delays()`), so every message of a queue expires in order
  and no record ever waits for another one's longer backoff.
"""

from __future__ import annotations

import random

from accre_monitor.outcome import POISON, REJECTED

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_STEPS = 16  # broker delay queues per output at most (2**15 x base is past any sane cap)
PROBE_START = 0.5  # seconds before a shipper tries again a store that could not take a batch
PROBE_MAX = 30.0


class RetryPolicy:
    """Backoff and giving up, from the `[spool]` settings."""

    __slots__ = ("base", "cap", "max_attempts")

    def __init__(self, base: float, cap: float, max_attempts: int) -> None:
        self.base = float(base)
        self.cap = max(float(cap), self.base)
        self.max_attempts = max(int(max_attempts), 1)

    @classmethod
    def from_settings(cls, spool: dict[str, Any]) -> RetryPolicy:
        return cls(spool["backoff_base"], spool["backoff_max"], spool["max_attempts"])

    def gives_up(self, state: str, attempts: int) -> bool:
        """Whether a record whose attempt number `attempts` ended in `state` is a dead letter."""
        return state == POISON or (state == REJECTED and attempts >= self.max_attempts)

    def step(self, attempts: int) -> float:
        """The wait before attempt `attempts + 1`, without jitter: base x 2^(attempts-1), capped."""
        exponent = min(max(attempts - 1, 0), 64)
        return min(self.base * 2**exponent, self.cap)

    def backoff(self, attempts: int, retry_after: float | None = None, jitter: float = -1) -> float:
        """Seconds to wait after attempt `attempts`: the step with jitter, at least `retry_after`.

        `jitter` in [0, 1) draws the factor (0.5 + jitter); the default draws it at random.
        """
        if jitter < 0:
            jitter = random.random()
        wait = self.step(attempts) * (0.5 + jitter)
        return max(wait, float(retry_after or 0.0))

    def probe(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds before a held batch is tried again after `failures` failures in a row,
        with jitter (x0.5 to x1); at least the store's `Retry-After`."""
        step = min(PROBE_START * 2 ** min(max(failures - 1, 0), 32), PROBE_MAX)
        return max(step * (0.5 + random.random() / 2), float(retry_after or 0.0))

    def delays(self) -> list[float]:
        """The broker's fixed delays, shortest first: base, 2 x base, ... up to the cap."""
        steps: list[float] = []
        attempts = 1
        while len(steps) < MAX_STEPS:
            delay = self.step(attempts)
            if steps and delay <= steps[-1]:
                break
            steps.append(delay)
            attempts += 1
        return steps

    def delay_for(self, attempts: int, retry_after: float | None = None) -> float:
        """The broker delay queue a record enters after attempt `attempts`: its step, or the
        shortest step that is at least the store's `Retry-After` (the longest one when none is)."""
        delays = self.delays()
        wanted = max(self.step(attempts), float(retry_after or 0.0))
        for delay in delays:
            if delay >= wanted:
                return delay
        return delays[-1]
