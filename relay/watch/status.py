"""What the watchers tell the failover policy about one input, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class OpenFault:
    """A fault raised and not yet cleared."""

    signal: str  # "stalled", "black", ... (BEHAVIOUR §3 first column)
    tier: int  # 1, 2 or 3
    since: float  # monotonic time it was raised
    value: float | str | None = None
    threshold: float | str | None = None


@dataclass(frozen=True, slots=True)
class InputStatus:
    """One input's condition at one moment: connected or not, and its open faults."""

    input_id: str
    priority: int
    connected: bool
    faults: tuple[OpenFault, ...] = field(default_factory=tuple)
    # monotonic time since which the input has had no tier-1/2 fault and been connected; None if not
    healthy_since: float | None = None

    @property
    def worst_tier(self) -> int | None:
        return min((f.tier for f in self.faults), default=None)

    def healthy_for(self, now: float) -> float:
        return 0.0 if self.healthy_since is None else now - self.healthy_since
