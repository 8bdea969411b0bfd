"""Reconnect pacing: exponential backoff with jitter, so a fleet of relays (or encoders
and pulls) that lost the same server do not knock on it in lockstep when it returns.
Used by the MQTT client, the SRT listener supervisor and pulled inputs."""

from __future__ import annotations

import random


class ReconnectBackoff:
    """``first_s``, doubling up to ``max_s``; each delay is drawn from [50 %, 100 %]
    of the step ("equal jitter"), so it never collapses to zero."""

    def __init__(self, first_s: float = 0.5, max_s: float = 15.0, rng: random.Random | None = None) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError("expected 0 < first_s <= max_s")
        self.first_s = first_s
        self.max_s = max_s
        self._rng = rng or random.Random()
        self._step = first_s
        self.attempts = 0

    def next(self) -> float:
        step = self._step
        self._step = min(self._step * 2, self.max_s)
        self.attempts += 1
        return step * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        self._step = self.first_s
        self.attempts = 0
