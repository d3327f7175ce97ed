"""The staff feed's ordering and replay rules, apart from any socket.

A restaurant's events are numbered 1, 2, 3... within an epoch. A board connects with the last
seq it has (and the epoch it was counted in) and must end up with every later event exactly
once, in order. The consumer moves frames; these functions decide what it sends:

- on connect, ``resume_plan``: nothing to replay (a new board), a replay of the missed stretch from
  the database, or a ``reset`` when the board's position is not in this stream (another epoch,
  ahead of the head) or the stretch is longer than the replay window;
- for each broadcast frame, ``on_frame``: skip it (already sent), send it (the next seq), or
  first fill the gap before it (a lost or reordered broadcast);
- for a gap, ``catch_up``: replay it from the database, or ``reset`` when it is longer than
  the replay window.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Resume(Enum):
    LIVE = "live"  # a board without a position: it starts at the head
    REPLAY = "replay"  # send the frames after its seq, up to the head
    RESET = "reset"  # tell it to reload: its position cannot be continued


class Frame(Enum):
    DUPLICATE = "duplicate"  # at or before the position: already sent
    NEXT = "next"  # the next seq: send it
    GAP = "gap"  # frames are missing before it: fill them from the database first


class CatchUp(Enum):
    REPLAY = "replay"
    RESET = "reset"


@dataclass(frozen=True)
class ResumePlan:
    """What a connecting board gets, and what its ``hello`` says about it: ``resumed`` when every
    event after its position follows on this socket; otherwise the ``reason`` and, when events
    exist that the socket will not replay, the ``gap`` (first and last seq) the board must fetch
    or show."""

    kind: Resume
    reason: str = ""
    gap: tuple[int, int] | None = None

    @property
    def resumed(self) -> bool:
        return self.kind is Resume.REPLAY

    def hello_fields(self) -> dict[str, object]:
        fields: dict[str, object] = {"resumed": self.resumed}
        if self.reason:
            fields["reason"] = self.reason
        if self.gap is not None:
            fields["gap"] = {"from": self.gap[0], "to": self.gap[1]}
        return fields


NO_POSITION = "no_position"  # a new board: it starts at the head
EPOCH_CHANGED = "epoch_changed"  # the stream was started again: its position means nothing here
AHEAD_OF_STREAM = "ahead_of_stream"  # a position past the head: not this stream's
TOO_FAR_BEHIND = "too_far_behind"  # more missed events than the socket replays


def resume_plan(*, last_seq: int | None, client_epoch: str | None, head_seq: int, epoch: str,
                replay_max: int) -> ResumePlan:  # fmt: skip
    if last_seq is None:
        return ResumePlan(Resume.LIVE, NO_POSITION)
    if client_epoch and client_epoch != epoch:
        return ResumePlan(Resume.RESET, EPOCH_CHANGED)
    if last_seq > head_seq:
        return ResumePlan(Resume.RESET, AHEAD_OF_STREAM)
    if head_seq - last_seq > replay_max:
        return ResumePlan(Resume.RESET, TOO_FAR_BEHIND, (last_seq + 1, head_seq))
    return ResumePlan(Resume.REPLAY)


def on_frame(*, last_seq: int, seq: int) -> Frame:
    if seq <= last_seq:
        return Frame.DUPLICATE
    return Frame.NEXT if seq == last_seq + 1 else Frame.GAP


def catch_up(*, last_seq: int, upto_seq: int, replay_max: int) -> CatchUp:
    return CatchUp.RESET if upto_seq - last_seq > replay_max else CatchUp.REPLAY
