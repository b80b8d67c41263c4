"""Backoff with jitter and a circuit breaker, per source (pure, clock injected)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    base: float = 2.0
    cap: float = 300.0
    open_after: int = 5  # consecutive failures that open the circuit
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random)

    @property
    def circuit_open(self) -> bool:
        return self.failures >= self.open_after

    def success(self) -> None:
        self.failures = 0

    def failure(self, retry_after: float | None = None) -> float:
        """Record a failure; return seconds to wait before the next attempt."""
        self.failures += 1
        if self.circuit_open:
            delay = self.cap
        else:
            delay = min(self.cap, self.base * (2 ** (self.failures - 1)))
        delay *= self.rng.uniform(0.5, 1.5)
        if retry_after is not None:
            # The source said when: never earlier than that, never absurdly later.
            delay = max(min(retry_after, 3600.0), 0.0)
        return min(delay, 3600.0)
