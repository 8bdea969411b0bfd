"""What the switcher keeps per switch in progress and per input (switcher.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.switch.gop import GopBuffer
from relay.switch.timeline import InputTimeline


@dataclass(slots=True)
class SwitchRecord:
    to: str
    from_: str | None
    reason: str
    requested_at: float
    cut_at: float | None = None  # when the target's keyframe went out
    freeze_ms: float = 0.0
    added_delay_ms: float = 0.0
    gap_ms: float = 0.0
    flowing: int = 0  # target video packets on air (sent or held back) since the cut
    urgent: bool = False  # the input on air is failing: do not wait with it on air
    bridge: bool = False  # a bridge is wanted until the target's keyframe (auto)
    bridged: bool = False  # a bridge went on air for this switch
    still_since: float | None = None  # when the still went on air (its picture held since)


@dataclass(slots=True)
class InputState:
    timeline: InputTimeline = field(default_factory=InputTimeline)
    gop: GopBuffer = field(default_factory=GopBuffer)
    last_arrival: float | None = None  # when its latest packet arrived
    codec: str | None = None  # its latest video packet's codec
