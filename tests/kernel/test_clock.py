"""The stream clock: monotone, deaf to a stray far-future line, follows a real move."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from recstream.clock import StreamClock

DAY = 86_400.0


def test_a_stray_far_future_line_does_not_move_the_clock():
    clock = StreamClock(confirm=5)
    clock.observe(1_700_000_000.0)
    assert clock.observe(7_000_000_000.0) == 1_700_000_000.0  # year 2191
    for i in range(1, 20):
        clock.observe(1_700_000_000.0 + i)
    assert clock.now == 1_700_000_019.0


def test_a_stream_that_really_moves_on_is_followed_after_confirmation():
    clock = StreamClock(confirm=5)
    clock.observe(1_600_000_000.0)  # a replay of 2020 data...
    later = [1_700_000_000.0 + i for i in (3, 1, 2, 4, 5)]  # ...then live traffic
    for t in later[:-1]:
        assert clock.observe(t) == 1_600_000_000.0
    assert clock.observe(later[-1]) == 1_700_000_001.0  # the earliest of the confirming run
    assert clock.observe(1_700_000_010.0) == 1_700_000_010.0


def test_confirmations_must_be_consecutive():
    clock = StreamClock(confirm=3)
    clock.observe(1000.0)
    for _ in range(10):  # rare bogus lines between normal ones never add up
        clock.observe(1000.0 + 10 * DAY)
        clock.observe(1000.0)
    assert clock.now == 1000.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 4e9), max_size=200))
def test_never_goes_back_and_never_jumps_unconfirmed(times):
    clock = StreamClock(confirm=1000)
    previous = 0.0
    for t in times:
        now = clock.observe(t)
        assert now >= previous
        assert previous == 0.0 or now - previous <= DAY
        previous = now
