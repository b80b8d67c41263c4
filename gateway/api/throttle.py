"""Failed authentications, limited per client address and per subject.

A key (``address:127.0.0.1`` or ``subject:alice``) that failed ``limit`` times within
``window`` seconds is throttled: every authentication attempt under it is answered 429
with Retry-After until the oldest of those failures leaves the window, whether or not the
credential is good (otherwise a guesser would still learn which guess was right). So a
key gets at most ``limit`` failures per window, however hard it is pushed.

Each replica keeps its own counts in memory: nothing is written per attempt (a flood of
bad tokens must not become a flood of writes), and with N replicas behind a balancer a
key gets at most N times the budget. A burst (failures with no quiet gap of a whole
window between them) is audited once, when the key becomes throttled, not per refused
attempt.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["AuthThrottle", "Throttled"]

# Keys kept at most; beyond it the least recently failed are forgotten (they had the
# fewest recent failures, so forgetting them lets nothing through that was throttled).
_MAX_KEYS = 10_000


class Throttled(Exception):
    def __init__(self, key: str, retry_after: float) -> None:
        super().__init__(key)
        self.key = key
        self.retry_after = retry_after


@dataclass
class _Failures:
    times: deque[float]
    throttled: bool = False  # inside a burst that was already audited


@dataclass
class AuthThrottle:
    limit: int
    window: float
    clock: Callable[[], float] = time.monotonic
    _keys: OrderedDict[str, _Failures] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, key: str) -> None:
        """Raise :class:`Throttled` while ``key`` is throttled."""
        if self.limit <= 0:
            return
        now = self.clock()
        with self._lock:
            entry = self._keys.get(key)
            if entry is None:
                return
            wait = self._wait(entry, now)
            if wait <= 0:
                return
        raise Throttled(key, wait)

    def fail(self, *keys: str) -> list[str]:
        """Count a failure against each key; the keys that became throttled by it (to be
        audited, once per burst)."""
        if self.limit <= 0:
            return []
        now = self.clock()
        started: list[str] = []
        with self._lock:
            for key in keys:
                entry = self._keys.get(key)
                if entry is None:
                    entry = self._keys[key] = _Failures(deque(maxlen=self.limit))
                self._keys.move_to_end(key)
                if entry.times and entry.times[-1] + self.window <= now:
                    entry.throttled = False  # a quiet window: the burst is over
                entry.times.append(now)
                if self._wait(entry, now) > 0 and not entry.throttled:
                    entry.throttled = True
                    started.append(key)
            while len(self._keys) > _MAX_KEYS:
                self._keys.popitem(last=False)
        return started

    def _wait(self, entry: _Failures, now: float) -> float:
        if len(entry.times) < self.limit:
            return 0.0
        return entry.times[0] + self.window - now
