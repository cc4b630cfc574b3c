"""Concurrency control for API calls: a limit on calls in flight that halves under rate limiting."""

import threading
import time


class AdaptiveLimiter:
    """A semaphore whose limit halves when the API pushes back and creeps back up as calls succeed.

    Use it as a context manager around each call (`with limiter: ...`); call `slow_down()` when the
    API rate-limits. One burst of rate limiting halves the limit once: a `slow_down()` from a call
    that started before the last halving is the same burst, already acted on, and is ignored. Only
    calls that start and finish under the current limit, without an exception and without asking
    to slow down, count towards raising the limit again.
    """

    def __init__(self, limit: int, recover_after: int = 20):
        """Create the limiter.

        Args:
            limit: The most calls in flight (the worker count); at least 1.
            recover_after: Successful calls needed to raise the limit by one again; at least 1.
        """
        self.max_limit = max(1, int(limit))
        self.limit = self.max_limit
        self.recover_after = max(1, int(recover_after))
        self._in_flight = 0
        self._successes = 0
        self._slowdowns = 0
        # Bumped by each halving; a call remembers the generation it started in.
        self._generation = 0
        self._held = threading.local()
        self._cond = threading.Condition()

    @property
    def slowdowns(self) -> int:
        """How many times the limit was halved (or, already at 1, would have been)."""
        return self._slowdowns

    @property
    def in_flight(self) -> int:
        """How many calls hold the limiter now."""
        return self._in_flight

    def _holds(self) -> list:
        holds = getattr(self._held, "generations", None)
        if holds is None:
            holds = self._held.generations = []
        return holds

    def __enter__(self) -> "AdaptiveLimiter":
        with self._cond:
            while self._in_flight >= self.limit:
                self._cond.wait()
            self._in_flight += 1
            self._holds().append(self._generation)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        with self._cond:
            started_in = self._holds().pop()
            self._in_flight -= 1
            if exc_type is None and started_in == self._generation:
                self._successes += 1
                if self._successes >= self.recover_after:
                    self._successes = 0
                    if self.limit < self.max_limit:
                        self.limit += 1
            # Wake every waiter: a slot was freed, and the limit may have risen by one.
            self._cond.notify_all()

    def slow_down(self) -> None:
        """Halve the limit (never below one call in flight) and restart the count towards recovery."""
        with self._cond:
            holds = self._holds()
            if holds and holds[-1] != self._generation:
                return
            self.limit = max(1, self.limit // 2)
            self._successes = 0
            self._slowdowns += 1
            self._generation += 1


class MinInterval:
    """At most one event per `interval` seconds across threads (e.g. 5 requests per second)."""

    def __init__(self, interval: float):
        """Create the pacer.

        Args:
            interval: The minimum number of seconds between two `wait()` returns.
        """
        self.interval = interval
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until the next slot, then claim it."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        delay = slot - now
        if delay > 0:
            time.sleep(delay)
