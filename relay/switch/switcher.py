"""The switcher: every input's packets in, one continuous output timeline out (BEHAVIOUR §4).

The switcher is a plain object: no sockets, threads or clock reads; the daemon
feeds it every packet of every input with the time it has, and sends whatever it
returns to the outputs. The policy decides *which* input; the switcher performs
the switch on a keyframe and keeps the output's timestamps continuous.

Output timeline
    The active input's packets go out as they arrive with ``out = in + offset``.
    At every switch (and every re-anchoring) the offset is chosen so that the
    new input's keyframe is shown one frame interval (or the pause, in whole
    frame intervals) after the last picture shown: with B-frames that is the
    highest pts sent, not the last dts; whole intervals keep the output on one
    frame grid. Video and audio of one input share the offset, so the input's own
    A/V relation reaches the output unchanged. Output timestamps rise strictly
    per track: a video packet that would not is moved up by the missing
    milliseconds (pts with it, keeping its composition offset; a video frame
    cannot be dropped without breaking the frames that reference it); an audio
    packet that would not is dropped, as is audio that ends before the keyframe
    the output (re)started from.

Switching (``FailoverSettings.switch_at``)
    ``auto`` (the default) picks per switch. Unless the switch is ``urgent`` (a
    fault, an operator's cut, leaving the slate: the policy's decision says so) the
    input on air stays on air and the cut happens at the target's next keyframe, as
    ``next`` does, with no freeze and no added delay. An urgent switch starts at once
    from the target's buffered keyframe if that adds no more than
    ``max_added_delay_ms`` in all (its age, less the pause the fault already made);
    otherwise a *bridge* (push/bridge.py, fed in with ``on_bridge_packet``) goes on
    air as soon as it is ready, and the cut happens at the target's next keyframe.
    The live bridge is the target's own pictures re-encoded on its own timeline: it
    starts like a buffered switch (continuous, the pause taken from the viewer's
    buffer; what its picture's age would add beyond ``max_added_delay_ms`` is held
    as a pause, in whole frames), the target's audio goes out with it on the same
    offset, and the cut keeps that offset. The still (the fallback) is held from the
    last picture shown. A waiting switch whose input on air then fails (``urge``, or
    that input disconnecting) turns urgent the same way.
    ``buffered``: the switch happens at once from the target's buffered group of
    pictures (gop.py): its keyframe and everything after it go out in one burst.
    Nothing freezes, but the output timeline is now ahead of the wall clock by
    the keyframe's age: the viewer's player holds that much more in its buffer,
    and the stream's delay has grown by it (``added_delay_ms``). If the old input
    had already stopped sending, the pause first drained the viewer's buffer, so
    the delay added is the age minus that pause (never below zero).
    ``next``: the old input keeps going out until the target's next keyframe
    arrives, then the output cuts over at it, stamped one frame interval or the
    wall-clock time since the last output video packet after it, whichever is
    longer: a pause shows as the real gap (``freeze_ms``), and no delay is added.
    A buffered switch to an input with no usable buffer (no keyframe yet, its
    group grew past its bounds, or nothing arrived in the last second) waits for
    the next keyframe the same way (in ``auto``, behind a bridge when urgent).
    The very first switch (nothing has gone out yet) starts from the buffered
    keyframe when it is recent enough, or waits for the next one.

Dropping added delay
    The added delay lives downstream, in the viewer's buffer; the only way to
    take it back is to send less media than wall-clock time passes. Once it
    exceeds ``max_added_delay_ms``, the switcher stops forwarding the active
    input at the point of a group from where the rest of the group is the added
    delay (its keyframe interval predicts the next keyframe; a whole group when
    the delay exceeds one; when that point has passed, in the next group), and
    resumes at that keyframe, stamped one frame interval after the last output
    frame. The timestamps stay continuous; the content jumps forward by the
    skipped span and the viewer's buffer shrinks by it. A keyframe later than
    predicted skips more than the delay (the player then waits that much); an
    earlier one skips less and another round follows.

Jumps of the active input's own timeline
    Each track is watched on its own (timeline.py). A track that jumps (back, or
    forward beyond its arrival time) is re-anchored so that it continues one
    frame after its last output packet. When the other track jumps soon after
    (within ``JUMP_PAIR_S``: the same encoder restart seen on both tracks), both
    take the larger of the two new offsets, which restores the input's A/V
    relation on its new timeline while keeping both tracks rising. A jump in one
    track only is the input's own desync (the drift signal watches that): the
    switcher keeps the output continuous and does not try to repair it.

Audio the new input does not have
    While the active input sends none (within ``AUDIO_GONE_S``), the output gets AAC
    silence in the last audio configuration it carried (else AAC-LC 48 kHz stereo) up
    to the output video timestamp, timed in samples (timeline.SilenceClock).

Codec parameters
    Packets keep pointing at their own input's VideoConfig/AudioConfig; a switch
    always starts with the new input's keyframe, so an output sees the new
    configuration on that keyframe and signals new sequence headers there; the
    keyframe after every cut also carries its parameter sets in band and, for HEVC,
    goes out as a splice point with the pictures that cannot decode left out
    (splice.py). The show's codec is the first video codec that went out: unless
    ``mixed_codecs``, a switch to an input that sends another is refused (it fails
    at once; the policy keeps off such inputs anyway, watch/codec.py) and the input
    on air's pictures in another codec are not forwarded.

Verification and reports
    A switch is verified once ``VERIFY_PACKETS`` video packets of the target went on
    air after its keyframe (sent or held back by the delay take-back: what Relay chose
    not to send is not the target failing), or its live bridge put that many of its
    pictures on air (the cut at its keyframe follows). It failed when that has not
    happened ``verify_within_s`` after the cut, or, before it, when nothing arrived
    from the target for ``verify_within_s`` or its keyframe is overdue (beyond the
    one its own interval predicts, at most ``MAX_KEYFRAME_WAIT_S``): the old input
    (or the bridge) stays on air. ``(to, verified)`` goes to the policy
    (``pop_results``); a verified switch is announced here with the figures only the
    switcher has (``Switched``: freeze, added delay, gap), a failed one by the policy
    (``SwitchFailed``; the reason is kept in ``health()["last_failure"]``). A switch
    superseded by a newer request reports nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from relay.events import EventSink, Switched
from relay.media import AudioConfig, MediaPacket, Track, VideoConfig
from relay.settings import FailoverSettings
from relay.switch.gop import MAX_GOP_MS, ends_before
from relay.switch.records import InputState, SwitchRecord
from relay.switch.splice import cut_point, leading_after_cut, parameter_sets_in_band
from relay.switch.timeline import DEFAULT_AUDIO, SilenceClock, audio_frame_ms

AUDIO_GONE_S = 0.5  # an active input with no audio packet for this long gets silence instead
JUMP_PAIR_S = 2.0  # a jump of the other track within this is the same discontinuity
STALE_BUFFER_S = 1.0  # a buffered group whose newest packet is older than this is not started from
VERIFY_PACKETS = 3  # video packets of the target after its first, to call media "flowing"
MAX_KEYFRAME_WAIT_S = MAX_GOP_MS / 1000  # a waiting switch gives up on a keyframe later than this
MAX_SILENCE_BACKFILL_MS = 1000  # silence never reaches further back than this behind the video


class Switcher:
    def __init__(self, settings: FailoverSettings, emit: EventSink,
                 silence: Callable[[AudioConfig], bytes]) -> None:
        self._settings = settings
        self._emit = emit
        self._silence = silence
        self._inputs: dict[str, InputState] = {}
        self._active: str | None = None
        self._offset = {Track.VIDEO: 0, Track.AUDIO: 0}  # the active input's, per track
        self._switch: SwitchRecord | None = None
        self._resync = False  # the active input reconnected: wait for its keyframe
        self._results: list[tuple[str, bool]] = []
        self._last_failure: str | None = None
        # The output timeline.
        self._last_out: dict[Track, int | None] = {Track.VIDEO: None, Track.AUDIO: None}
        self._last_video_sent: float | None = None  # `now` when the last video packet went out
        self._frame_ms = 33  # frame interval of the input whose video went out last
        self._frame_exact = 1000 / 30  # the same, to a fraction of a millisecond
        self._out_audio: AudioConfig | None = None  # the audio configuration the output carries
        self._audio_floor: int | None = None  # out dts of the keyframe the output (re)started at
        self._delay_ms = 0.0  # how far the output timeline runs ahead of the wall clock
        self._skipping = False  # dropping added delay: not forwarding until the next keyframe
        self._jump: tuple[Track, float] | None = None  # the last single-track jump, and when
        self._silence_clock: SilenceClock | None = None
        self._bridge: InputState | None = None  # the bridge on air (auto), else None
        self._bridge_for: str | None = None  # the input it bridges to
        self._bridge_live = False  # it is the live bridge (the target's own pictures), not the still
        self._live_verified: SwitchRecord | None = None  # a switch verified on its live bridge, cut pending
        self._params_due = False  # the next keyframe out carries its SPS/PPS in band
        self._max_video_pts: int | None = None  # the latest presentation time sent (B-frames)
        self._show_codec: str | None = None  # the video codec of the output (see Codec parameters)
        self._cut_due = False  # the next keyframe out follows a cut (a switch, a skip)
        self._after_cut = False  # since that keyframe: pictures that lead it are left out

    # ----------------------------------------------------------------- public

    @property
    def active(self) -> str | None:
        """The input on air; while a bridge is on air, the input it leads to."""
        if self._bridge is not None:
            return self._switch.to if self._switch is not None else self._bridge_for
        return self._active

    @property
    def switching_to(self) -> str | None:
        """The input a switch is in progress to (its cut or its verification pending)."""
        return None if self._switch is None else self._switch.to

    def on_packet(self, input_id: str, pkt: MediaPacket, now: float) -> list[MediaPacket]:
        """Take one packet of any input; returns the output packets to send now."""
        state = self._inputs.get(input_id)
        if state is None:
            state = self._inputs[input_id] = InputState()
        state.last_arrival = now
        if pkt.track is Track.VIDEO and isinstance(pkt.config, VideoConfig):
            state.codec = pkt.config.codec
            if not self._carries(state):
                pending = self._switch
                if pending is not None and pending.to == input_id and pending.cut_at is None:
                    self._refuse(pending)
                return self._fill_silence(now)  # never on air: its codec is not the show's
        jumped = state.timeline.observe(pkt)
        if jumped:
            state.gop.clear()  # a group spanning two timelines cannot be replayed
        state.gop.add(pkt)

        out: list[MediaPacket] = []
        switch = self._switch
        is_keyframe = pkt.track is Track.VIDEO and pkt.keyframe
        waiting = switch if switch is not None and switch.cut_at is None and switch.to == input_id else None
        if waiting is None and self._live_verified is not None and self._live_verified.to == input_id:
            waiting = self._live_verified
        if waiting is not None:
            if is_keyframe:  # the group is this keyframe and the audio overlapping it
                out += self._cut_over(waiting, state.gop.packets(), now, buffered=False)
            elif self._bridge_live and self._bridge_for == input_id and pkt.track is Track.AUDIO:
                out += self._send(state, pkt, now)  # its own sound, with its pictures re-encoded
        elif input_id == self._active:
            if self._resync:
                if is_keyframe:
                    self._anchor(pkt, now, buffered=False)
                    self._resync = False
                    out += self._send(state, pkt, now)
            else:
                out += self._forward(state, pkt, now, jumped)
                # Held back by the delay take-back or not, the target's media is arriving on air.
                if switch is not None and switch.to == input_id and pkt.track is Track.VIDEO:
                    switch.flowing += 1
                    if switch.flowing >= VERIFY_PACKETS:
                        self._verified(switch)
        out += self._fill_silence(now)
        return out

    def on_bridge_packet(self, pkt: MediaPacket, now: float, *, live: bool = False) -> list[MediaPacket]:
        """One packet of the bridge (see the module docstring): ``live``, a picture of the
        target re-encoded, on the target's own timeline; else the still's. Returns what to send."""
        switch = self._switch
        if switch is None or not switch.bridge or switch.cut_at is not None:
            switch = self._live_verified  # verified on the live bridge: on air until its keyframe
        if self._bridge is None or live != self._bridge_live or (
                switch is not None and self._bridge_for != switch.to):
            if switch is None or not (pkt.track is Track.VIDEO and pkt.keyframe):
                return []  # not wanted (any more), or not where it can start
            out = self._start_bridge(switch, pkt, now, live)
        else:
            self._bridge.timeline.observe(pkt)
            out = self._send(self._bridge, pkt, now)
        if live and switch is self._switch and switch is not None and pkt.track is Track.VIDEO:
            # the target's own pictures are on air: the switch is verified without its keyframe
            switch.flowing += 1
            if switch.flowing >= VERIFY_PACKETS:
                self._live_verified = switch
                self._verified(switch)
        return out

    def _start_bridge(self, switch: SwitchRecord, keyframe: MediaPacket, now: float,
                      live: bool) -> list[MediaPacket]:
        """The bridge (or its other mode) goes on air from ``keyframe``. The live bridge
        continues the output like a start from the buffer (its picture is the newest; the
        pause before it drained the viewer's buffer), the still is held from the last
        picture shown."""
        before = self._delay_ms
        freeze_ms, gap_ms = self._anchor(keyframe, now, buffered=live)
        if live:
            age_ms = max(0.0, (now - keyframe.arrival) * 1000)
            self._delay_ms = max(0.0, before - max(0.0, gap_ms - self._frame_ms) + age_ms)
            freeze_ms += self._hold_over_budget(keyframe, before)
        if switch.still_since is not None:
            switch.freeze_ms += (now - switch.still_since) * 1000
        switch.still_since = None if live else now
        if switch.bridged:
            switch.freeze_ms += freeze_ms
        else:
            switch.bridged = True
            switch.freeze_ms, switch.gap_ms = freeze_ms, gap_ms
        switch.added_delay_ms += max(0.0, self._delay_ms - before)
        self._bridge = InputState()
        self._bridge_for = switch.to
        self._bridge_live = live
        self._active = None
        self._resync = False
        self._silence_clock = None
        self._bridge.timeline.observe(keyframe)
        out = self._send(self._bridge, keyframe, now)
        state = self._inputs.get(switch.to)
        if live and state is not None:  # the target's sound from that picture on
            for pkt in state.gop.packets():
                if pkt.track is Track.AUDIO:
                    out += self._send(state, pkt, now)
        return out

    def _hold_over_budget(self, keyframe: MediaPacket, before: float) -> float:
        """A live bridge adds its picture's age, but no delay beyond ``max_added_delay_ms`` (or what
        was there; taken back, it would stop the feed for a group right after the bridge): the rest is
        a pause at ``keyframe`` (just anchored), in whole frames. Returns it (ms)."""
        excess = self._delay_ms - max(before, self._settings.max_added_delay_ms)
        if excess <= 0:
            return 0.0
        held = max(round(math.ceil(excess / self._frame_exact) * self._frame_exact), math.ceil(excess))
        self._offset = {track: offset + held for track, offset in self._offset.items()}
        self._audio_floor = keyframe.dts + self._offset[Track.VIDEO]
        self._delay_ms -= held
        return float(held)

    def buffered(self, input_id: str) -> list[MediaPacket]:
        """An input's buffered group of pictures, keyframe first (the live bridge's start)."""
        state = self._inputs.get(input_id)
        return [] if state is None else state.gop.packets()

    @property
    def bridge_mode(self) -> str | None:
        """What bridge is on air: "live", "still", or None."""
        if self._bridge is None:
            return None
        return "live" if self._bridge_live else "still"

    def bridge_wanted(self) -> str | None:
        """The input whose picture should bridge a switch now (None: no bridge needed)."""
        switch = self._switch
        if switch is not None and switch.bridge and switch.cut_at is None:
            return switch.to
        if self._bridge is not None:
            return self._bridge_for
        return None

    def urge(self, now: float) -> list[MediaPacket]:
        """The input on air is failing: a switch waiting for the target's keyframe must not
        wait with it on air (``auto``). Returns packets to send now."""
        switch = self._switch
        if (switch is None or switch.urgent or switch.cut_at is not None
                or self._settings.switch_at != "auto"):
            return []
        switch.urgent = True
        return self._start_urgent(switch, now) + self._fill_silence(now)

    def request_switch(self, to: str, now: float, reason: str, *,
                       urgent: bool | None = None) -> list[MediaPacket]:
        """Put ``to`` on air (reason: fault/command/drill/failback); returns packets to send now.

        ``urgent``: the input on air is failing (default: when the reason is ``fault``)."""
        current = self._switch
        if to == self._active and (current is None or current.to == to):
            return []  # already on air (or being verified)
        if to == self._active and self._bridge is None:
            self._switch = None  # back to the one on air: the pending switch is off
            return []
        if current is None and self._live_verified is not None and to == self._live_verified.to:
            return []  # on air through its live bridge
        if urgent is None:
            urgent = reason == "fault"
        # From the still every switch is urgent: the picture on air is already still.
        urgent = urgent or (self._bridge is not None and not self._bridge_live)
        switch = SwitchRecord(to=to, from_=self.active, reason=reason, requested_at=now, urgent=urgent)
        self._switch = switch
        state = self._inputs.get(to)
        if state is not None and not self._carries(state):
            self._refuse(switch)
            return []
        mode = self._settings.switch_at
        if mode == "buffered" and state is not None and self._usable(state, now):
            out = self._cut_over(switch, state.gop.packets(), now, buffered=True)
            return out + self._fill_silence(now)
        if mode == "auto" and self._last_out[Track.VIDEO] is None:
            # Nothing out yet: from the buffer if recent, else if urgent behind the bridge, else wait.
            if state is not None and self._usable(state, now) and self._within_budget(state, now):
                out = self._cut_over(switch, state.gop.packets(), now, buffered=True)
                return out + self._fill_silence(now)
            if not urgent:
                return []
        if mode == "auto" and urgent:
            return self._start_urgent(switch, now) + self._fill_silence(now)
        return []

    def tick(self, now: float) -> list[MediaPacket]:
        """Time-driven work: failed verifications, silence; returns packets to send now."""
        switch = self._switch
        if switch is not None and self._overdue(switch, now):
            self._failed(switch)
        return self._fill_silence(now)

    def forget(self, input_id: str, now: float | None = None) -> list[MediaPacket]:
        """The input disconnected: its buffer and timeline are gone (a reconnect starts a new one).
        Given ``now``, a switch waiting with it on air turns urgent; returns packets to send now."""
        self._inputs.pop(input_id, None)
        if input_id != self._active:
            return []
        self._resync = True
        self._skipping = False
        self._silence_clock = None
        return [] if now is None else self.urge(now)

    def keyframes(self, input_id: str) -> tuple[int | None, float | None]:
        """An input's keyframe interval (ms, once two were seen) and when its latest
        keyframe arrived (None: none yet on this connection)."""
        state = self._inputs.get(input_id)
        if state is None:
            return None, None
        return state.timeline.keyframe_interval_ms, state.timeline.last_keyframe_arrival

    def pop_results(self) -> list[tuple[str, bool]]:
        """``(to, verified)`` of every switch settled since the last call, for the policy."""
        results, self._results = self._results, []
        return results

    def health(self) -> dict[str, object]:
        switch = self._switch
        pending: dict[str, object] | None = None if switch is None else {
            "to": switch.to, "reason": switch.reason, "since": switch.requested_at,
            "cut_over": switch.cut_at is not None}
        return {
            "active": self._active, "pending": pending,
            "last_video_dts": self._last_out[Track.VIDEO], "last_audio_dts": self._last_out[Track.AUDIO],
            "frame_interval_ms": self._frame_ms, "added_delay_ms": round(self._delay_ms, 1),
            "dropping_delay": self._skipping, "silence": self._silence_clock is not None,
            "bridge": self.bridge_mode, "last_failure": self._last_failure,
            "buffered": {
                input_id: {"packets": len(state.gop), "span_ms": state.gop.span_ms}
                for input_id, state in self._inputs.items()
            },
        }

    # ---------------------------------------------------------------- switching

    def _usable(self, state: InputState, now: float) -> bool:
        packets = state.gop.packets()
        return bool(packets) and now - packets[-1].arrival <= STALE_BUFFER_S

    def _within_budget(self, state: InputState, now: float) -> bool:
        """Would starting from this buffered keyframe keep the delay within max_added_delay_ms?"""
        keyframe = state.gop.keyframe
        if keyframe is None:
            return False
        age_ms = max(0.0, (now - keyframe.arrival) * 1000)
        pause_ms = 0.0
        if self._last_video_sent is not None:
            pause_ms = max(0.0, (now - self._last_video_sent) * 1000 - self._frame_ms)
        return max(0.0, self._delay_ms - pause_ms + age_ms) <= self._settings.max_added_delay_ms

    def _start_urgent(self, switch: SwitchRecord, now: float) -> list[MediaPacket]:
        """``auto`` on a fault: from the buffer within the delay budget, else behind a bridge."""
        state = self._inputs.get(switch.to)
        if state is not None and self._usable(state, now) and self._within_budget(state, now):
            return self._cut_over(switch, state.gop.packets(), now, buffered=True)
        if state is None or state.last_arrival is None or now - state.last_arrival > STALE_BUFFER_S:
            return []  # nothing arrives from the target: no keyframe to bridge to; it waits
        switch.bridge = True
        if self._bridge is not None:  # already on air (a previous switch's): it goes on
            switch.bridged = True
            switch.still_since = None if self._bridge_live else now
        return []

    def _overdue(self, switch: SwitchRecord, now: float) -> bool:
        """Has the switch failed verification (see the module docstring)?"""
        within = self._settings.verify_within_s
        if switch.cut_at is not None or self._settings.switch_at == "buffered":
            return now - (switch.cut_at or switch.requested_at) >= within
        state = self._inputs.get(switch.to)
        if state is None or state.last_arrival is None or now - state.last_arrival >= within:
            return now - switch.requested_at >= within  # nothing is arriving from the target
        # Media arrives; the keyframe is what it waits for: as long as its cadence promises one.
        gop_ms = state.timeline.keyframe_interval_ms
        key = state.gop.keyframe
        if gop_ms is not None and key is not None:
            wait = max(within, key.arrival + gop_ms / 1000 + within - switch.requested_at)
        else:
            wait = max(within, MAX_KEYFRAME_WAIT_S)
        return now - switch.requested_at >= min(wait, MAX_KEYFRAME_WAIT_S + within)

    def _cut_over(self, switch: SwitchRecord, burst: list[MediaPacket], now: float, *,
                  buffered: bool) -> list[MediaPacket]:
        keyframe = burst[0]
        before = self._delay_ms
        if not buffered and self._bridge_live and self._bridge_for == switch.to:
            # From its own pictures re-encoded to its own: the same timeline, the same offset.
            freeze_ms = gap_ms = 0.0
            self._params_due = self._cut_due = True
            self._skipping = False
            self._jump = None
        else:
            freeze_ms, gap_ms = self._anchor(keyframe, now, buffered=buffered)
        if buffered:
            age_ms = max(0.0, (now - keyframe.arrival) * 1000)
            pause_ms = max(0.0, gap_ms - self._frame_ms)
            self._delay_ms = max(0.0, before - pause_ms + age_ms)
        switch.cut_at = now
        if switch.still_since is not None:  # the still held the picture until now
            switch.freeze_ms += (now - switch.still_since) * 1000
        if switch.bridged:
            switch.freeze_ms += freeze_ms
        else:
            switch.freeze_ms = freeze_ms
            switch.gap_ms = gap_ms
        switch.added_delay_ms += max(0.0, self._delay_ms - before)  # on what a live bridge added
        self._active = switch.to
        self._bridge = None
        self._bridge_live = False
        self._live_verified = None
        self._resync = False
        self._silence_clock = None
        state = self._inputs[switch.to]
        out: list[MediaPacket] = []
        for pkt in burst:
            out += self._send(state, pkt, now)
        return out

    def _anchor(self, keyframe: MediaPacket, now: float, *, buffered: bool) -> tuple[float, float]:
        """Set the offset so ``keyframe`` continues the output; returns (freeze_ms, gap_ms)."""
        last_video = self._last_out[Track.VIDEO]
        freeze_ms = gap_ms = 0.0
        if last_video is None or self._last_video_sent is None:
            last_audio = self._last_out[Track.AUDIO]
            keyframe_out = 0 if last_audio is None else last_audio + 1
        else:
            gap_ms = (now - self._last_video_sent) * 1000
            step = self._frame_ms if buffered else max(self._frame_ms, round(gap_ms))
            keyframe_out = self._continuing_dts(keyframe, step)
            freeze_ms = float(step - self._frame_ms)
        offset = keyframe_out - keyframe.dts
        self._offset = {Track.VIDEO: offset, Track.AUDIO: offset}
        self._audio_floor = keyframe_out
        self._skipping = False
        self._jump = None
        self._params_due = True
        self._cut_due = True
        return freeze_ms, gap_ms

    def _continuing_dts(self, first: MediaPacket, step: int) -> int:
        """The output dts for ``first`` (a keyframe starting a new run of video): shown ``step``
        ms after the last frame shown (with B-frames not the last sent: pts runs ahead of dts),
        on the frame grid (ffmpeg's CLI re-timing to the rate gives off-grid pictures one slot),
        decoded a whole frame after the last decoded (a 1-ms dts step reads as 1000 fps)."""
        last_dts = self._last_out[Track.VIDEO]
        assert last_dts is not None
        shown = last_dts if self._max_video_pts is None else self._max_video_pts
        frames = max(1, round(step / self._frame_exact))
        pts = shown + round(frames * self._frame_exact)
        cts = first.pts - first.dts
        while pts - cts < last_dts + round(self._frame_exact):
            frames += 1
            pts = shown + round(frames * self._frame_exact)
        return pts - cts

    @property
    def show_codec(self) -> str | None:
        """The video codec on air since the first picture went out (None before)."""
        return self._show_codec

    def _carries(self, state: InputState) -> bool:
        show = self._show_codec
        return self._settings.mixed_codecs or show is None or state.codec in (None, show)

    def _refuse(self, switch: SwitchRecord) -> None:
        state = self._inputs.get(switch.to)
        self._failed(switch)
        self._last_failure = (f"{switch.to} sends {state.codec if state else '?'}; {self._show_codec} is on "
                              "air and a platform cannot follow a change of codec (failover.mixed_codecs)")

    def _verified(self, switch: SwitchRecord) -> None:
        self._switch = None
        self._results.append((switch.to, True))
        self._emit(Switched(from_=switch.from_, to=switch.to, reason=switch.reason,
                            freeze_ms=round(switch.freeze_ms, 1), gap_ms=round(switch.gap_ms, 1),
                            added_delay_ms=round(switch.added_delay_ms, 1), verified=True))

    def _failed(self, switch: SwitchRecord) -> None:
        self._switch = None
        self._results.append((switch.to, False))
        within = self._settings.verify_within_s
        if switch.cut_at is None:
            self._last_failure = f"no keyframe from {switch.to} within {within:g} s"
        else:
            self._last_failure = f"media from {switch.to} stopped after the cut (within {within:g} s)"

    # --------------------------------------------------------------- forwarding

    def _forward(self, state: InputState, pkt: MediaPacket, now: float, jumped: bool) -> list[MediaPacket]:
        """One packet of the active input, on the steady path."""
        if jumped:
            self._reanchor_jump(state, pkt, now)
        if pkt.track is Track.AUDIO:
            return [] if self._skipping else self._send(state, pkt, now)
        if self._skipping:
            if not pkt.keyframe:
                return []
            self._end_skip(pkt)
        elif self._should_skip(state, pkt):
            self._skipping = True
            return []
        return self._send(state, pkt, now)

    def _send(self, state: InputState, pkt: MediaPacket, now: float) -> list[MediaPacket]:
        """Rewrite ``pkt`` onto the output timeline: a new packet, or none (audio that can't rise)."""
        offset = self._offset[pkt.track]
        dts = pkt.dts + offset
        pts = pkt.pts + offset
        last = self._last_out[pkt.track]
        data = pkt.data
        if pkt.track is Track.VIDEO:
            if self._after_cut and not pkt.keyframe:
                if leading_after_cut(pkt):
                    return []  # references pictures from before the cut: cannot decode
                self._after_cut = False
            if last is not None and dts <= last:
                pts += last + 1 - dts
                dts = last + 1
            self._last_video_sent = now
            self._frame_ms = state.timeline.frame_interval_ms
            self._frame_exact = state.timeline.frame_duration_ms
            out_pts = max(pts, dts)
            if self._max_video_pts is None or out_pts > self._max_video_pts:
                self._max_video_pts = out_pts
            if self._show_codec is None or self._settings.mixed_codecs:
                self._show_codec = pkt.config.codec if isinstance(pkt.config, VideoConfig) else None
            if self._params_due and pkt.keyframe:
                self._params_due = False
                data = parameter_sets_in_band(pkt)
            if pkt.keyframe:
                self._after_cut, self._cut_due = self._cut_due, False
                if self._after_cut:
                    data = cut_point(data, pkt)
        else:
            floor = self._audio_floor
            if (last is not None and dts <= last) or (floor is not None and ends_before(pkt, floor - offset)):
                return []
            if isinstance(pkt.config, AudioConfig):
                self._out_audio = pkt.config
            self._silence_clock = None
        self._last_out[pkt.track] = dts
        return [MediaPacket(pkt.track, dts, max(pts, dts), data, pkt.keyframe, pkt.config, pkt.arrival)]

    def _reanchor_jump(self, state: InputState, pkt: MediaPacket, now: float) -> None:
        track = pkt.track
        other = Track.AUDIO if track is Track.VIDEO else Track.VIDEO
        last = self._last_out[track]
        if last is None:
            own = self._offset[other]
        elif track is Track.VIDEO:
            own = self._continuing_dts(pkt, self._frame_ms) - pkt.dts
        else:
            own = last + math.ceil(audio_frame_ms(self._out_audio or state.timeline.audio_config)) - pkt.dts
        if self._jump is not None and self._jump[0] is other and now - self._jump[1] <= JUMP_PAIR_S:
            common = max(own, self._offset[other])
            self._offset = {Track.VIDEO: common, Track.AUDIO: common}
            self._jump = None
        else:
            self._offset[track] = own
            self._jump = (track, now)

    # ------------------------------------------------------------ added delay

    def _should_skip(self, state: InputState, pkt: MediaPacket) -> bool:
        """Start dropping added delay here? Only so that the skip ends on the predicted keyframe."""
        if self._delay_ms <= self._settings.max_added_delay_ms:
            return False
        gop_ms = state.timeline.keyframe_interval_ms
        last_keyframe = state.timeline.last_keyframe_dts
        if gop_ms is None or last_keyframe is None:
            return False
        if pkt.keyframe:
            return self._delay_ms >= gop_ms  # skip this whole group
        # Skip from where the rest of the group is the added delay; past that point, skipping
        # the rest would take back only part of it: the next group does it in one go.
        start = last_keyframe + gop_ms - self._delay_ms
        return start <= pkt.dts < start + 2 * self._frame_ms

    def _end_skip(self, keyframe: MediaPacket) -> None:
        last_video = self._last_out[Track.VIDEO]
        assert last_video is not None  # skipping starts only after video went out
        keyframe_out = self._continuing_dts(keyframe, self._frame_ms)
        skipped = self._offset[Track.VIDEO] - (keyframe_out - keyframe.dts)
        self._offset[Track.VIDEO] -= skipped
        self._offset[Track.AUDIO] -= skipped
        self._delay_ms = max(0.0, self._delay_ms - skipped)
        self._audio_floor = keyframe_out
        self._skipping = False
        self._cut_due = True  # the pictures skipped are what its leading pictures reference

    # ----------------------------------------------------------------- silence

    def _fill_silence(self, now: float) -> list[MediaPacket]:
        last_video = self._last_out[Track.VIDEO]
        # the still brings its own silence; the live bridge has its target's sound, if any
        source = self._active if self._bridge is None else self._bridge_for if self._bridge_live else None
        if source is None or self._resync or last_video is None:
            return []
        state = self._inputs.get(source)
        if state is not None and state.timeline.has_audio(now, AUDIO_GONE_S):
            self._silence_clock = None
            return []
        clock = self._silence_clock
        last_audio = self._last_out[Track.AUDIO]
        if clock is None:
            audio = self._out_audio or DEFAULT_AUDIO
            start = last_video if self._audio_floor is None else self._audio_floor
            if last_audio is not None:
                start = max(last_audio + math.ceil(audio_frame_ms(audio)), start)
            start = max(start, last_video - MAX_SILENCE_BACKFILL_MS)
            clock = self._silence_clock = SilenceClock(start, audio)
            self._out_audio = audio
        out: list[MediaPacket] = []
        while clock.next_dts <= last_video:
            dts = clock.advance()
            if last_audio is not None and dts <= last_audio:
                continue
            out.append(MediaPacket(Track.AUDIO, dts, dts, self._silence(clock.audio), True, clock.audio, now))
            last_audio = self._last_out[Track.AUDIO] = dts
        return out
