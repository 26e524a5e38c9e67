"""Per-client rate limiting: one token bucket per verified ``iss``, time passed in.

Buckets are keyed by the *verified* issuer, after the signature check: keying by an
unverified ``iss`` would let anyone drain a real client's budget with forged tokens.
Forged-token floods are bounded instead by the cost of a failed verification and by
the network layer in front of the service.
"""

from __future__ import annotations

import threading
from typing import Final

from auditor.errors import ConfigurationError

_MAX_KEYS: Final = 100_000


class TokenBucketLimiter:
    """Allows each key ``rate`` requests per second on average, in bursts of up to ``burst``.

    Thread-safe. A bucket that has refilled completely is indistinguishable from a new one,
    so full buckets are dropped when the table reaches ``max_keys``.

    Args:
        rate: Sustained requests per second per key.
        burst: Bucket capacity: requests allowed at once after a quiet period.
        max_keys: Most buckets kept.
    """

    __slots__ = ("_buckets", "_lock", "burst", "max_keys", "rate")

    def __init__(self, *, rate: float, burst: float, max_keys: int = _MAX_KEYS) -> None:
        if rate <= 0 or burst < 1:
            raise ConfigurationError("the rate limit needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated at)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenBucketLimiter(rate={self.rate}, burst={self.burst})"

    def acquire(self, key: str, now: float) -> float:
        """Take one request from ``key``'s bucket at time ``now`` (seconds).

        Returns:
            ``0.0`` when the request is allowed; otherwise the seconds until it would be.
        """
        with self._lock:
            tokens, updated = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - updated) * self.rate)
            if tokens >= 1.0:
                if key not in self._buckets and len(self._buckets) >= self.max_keys:
                    self._drop_full(now)
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _drop_full(self, now: float) -> None:
        rate, burst = self.rate, self.burst
        full = [k for k, (t, u) in self._buckets.items() if t + (now - u) * rate >= burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            # Every bucket is in use: forget the oldest half rather than grow without bound.
            oldest = sorted(self._buckets.items(), key=lambda item: item[1][1])
            for key, _ in oldest[: len(oldest) // 2]:
                del self._buckets[key]
