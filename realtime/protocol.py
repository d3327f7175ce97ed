"""The staff feed's ordering and replay rules, apart from any socket.

A restaurant's events are numbered 1, 2, 3... within an epoch. A board connects with the last
seq it has (and the epoch it was counted in) and must end up with every later event exactly
once, in order. The consumer moves frames; these functions decide what it sends:

- on connect, ``resume``: nothing to replay (a new board), a replay of the missed stretch from
  the database, or a ``reset`` when the board's position is not in this stream (another epoch,
  ahead of the head) or the stretch is longer than the replay window;
- for each broadcast frame, ``on_frame``: skip it (already sent), send it (the next seq), or
  first fill the gap before it (a lost or reordered broadcast);
- for a gap, ``catch_up``: replay it from the database, or ``reset`` when it is longer than
  the replay window.
"""

from __future__ import annotations

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


def resume(*, last_seq: int | None, client_epoch: str | None, head_seq: int, epoch: str, replay_max: int) -> Resume:
    if last_seq is None:
        return Resume.LIVE
    elsewhere = bool(client_epoch) and client_epoch != epoch
    if elsewhere or last_seq > head_seq or head_seq - last_seq > replay_max:
        return Resume.RESET
    return Resume.REPLAY


def on_frame(*, last_seq: int, seq: int) -> Frame:
    if seq <= last_seq:
        return Frame.DUPLICATE
    return Frame.NEXT if seq == last_seq + 1 else Frame.GAP


def catch_up(*, last_seq: int, upto_seq: int, replay_max: int) -> CatchUp:
    return CatchUp.RESET if upto_seq - last_seq > replay_max else CatchUp.REPLAY
