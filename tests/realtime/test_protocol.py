"""The feed's ordering and replay rules, without a socket (the socket tests prove the consumer
follows them)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.protocol import CatchUp, Frame, Resume, catch_up, on_frame, resume_plan

pytestmark = pytest.mark.timeout(30)


def plan(last_seq: int | None, client_epoch: str | None = "e1", head_seq: int = 10, epoch: str = "e1") -> Resume:
    return resume_plan(last_seq=last_seq, client_epoch=client_epoch, head_seq=head_seq, epoch=epoch,
                       replay_max=5).kind  # fmt: skip


def test_a_board_without_a_position_starts_live_at_the_head():
    assert plan(None) is Resume.LIVE
    assert plan(None, client_epoch="another") is Resume.LIVE


def test_a_board_within_the_replay_window_gets_the_missed_stretch():
    assert plan(10) is Resume.REPLAY  # up to date: an empty replay
    assert plan(5) is Resume.REPLAY  # five behind: exactly the window
    assert plan(7, client_epoch=None) is Resume.REPLAY  # no epoch given: taken as this one
    assert plan(7, client_epoch="") is Resume.REPLAY


def test_a_board_that_cannot_be_continued_is_reset():
    assert plan(4) is Resume.RESET  # six behind: past the window
    assert plan(11) is Resume.RESET  # ahead of the head: another stream
    assert plan(7, client_epoch="e0") is Resume.RESET  # another epoch


def test_each_frame_is_skipped_sent_or_preceded_by_its_gap():
    assert on_frame(last_seq=4, seq=3) is Frame.DUPLICATE
    assert on_frame(last_seq=4, seq=4) is Frame.DUPLICATE
    assert on_frame(last_seq=4, seq=5) is Frame.NEXT
    assert on_frame(last_seq=4, seq=6) is Frame.GAP


def test_a_gap_is_replayed_up_to_the_window_and_reset_past_it():
    assert catch_up(last_seq=4, upto_seq=9, replay_max=5) is CatchUp.REPLAY
    assert catch_up(last_seq=4, upto_seq=10, replay_max=5) is CatchUp.RESET


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=80), st.integers(min_value=0, max_value=5))
def test_any_order_of_broadcasts_gives_every_seq_once_in_order(arrivals: list[int], start: int):
    """Broadcasts lost, repeated and reordered: following the rules (a gap filled from the
    stream, which holds every seq) the board receives each seq once, ascending, with none
    missing up to the highest it has been offered."""
    last, received = start, []
    for seq in arrivals:
        step = on_frame(last_seq=last, seq=seq)
        if step is Frame.DUPLICATE:
            continue
        if step is Frame.GAP and catch_up(last_seq=last, upto_seq=seq - 1, replay_max=1000) is CatchUp.REPLAY:
            received.extend(range(last + 1, seq))
        received.append(seq)
        last = seq
    top = max([start, *arrivals])
    assert received == list(range(start + 1, top + 1))


def test_the_plan_says_why_a_resume_is_not_complete_and_the_gap():
    def said(last_seq, client_epoch="e1"):
        return resume_plan(last_seq=last_seq, client_epoch=client_epoch, head_seq=10, epoch="e1",
                           replay_max=5).hello_fields()  # fmt: skip

    assert said(None) == {"resumed": False, "reason": "no_position"}
    assert said(5) == {"resumed": True} and said(10) == {"resumed": True}
    assert said(4) == {"resumed": False, "reason": "too_far_behind", "gap": {"from": 5, "to": 10}}
    assert said(11) == {"resumed": False, "reason": "ahead_of_stream"}
    assert said(7, client_epoch="e0") == {"resumed": False, "reason": "epoch_changed"}
