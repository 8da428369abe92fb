"""The per-user command rate: a pure sliding window with an injected clock."""

from __future__ import annotations

from bot.commands.gate import WINDOW, CommandRate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_is_refused_after_the_limit_and_warned_once():
    clock = Clock()
    rate = CommandRate(3, clock)
    assert [rate.admit(1) for _ in range(3)] == [(True, False)] * 3
    assert rate.admit(1) == (False, True)  # the first refusal says so
    assert rate.admit(1) == (False, False)  # then silence
    assert rate.admit(2) == (True, False)  # someone else is not affected


def test_the_window_slides():
    clock = Clock()
    rate = CommandRate(2, clock)
    rate.admit(1)
    clock.now += 30
    rate.admit(1)
    assert rate.admit(1) == (False, True)
    clock.now += WINDOW - 29  # the first command left the window
    assert rate.admit(1) == (True, False)
    assert rate.admit(1) == (False, True)  # a new flood is warned about again


def test_idle_users_are_forgotten_when_many_are_tracked(monkeypatch):
    import bot.commands.gate as gate

    monkeypatch.setattr(gate, "MAX_TRACKED", 5)
    clock = Clock()
    rate = CommandRate(1, clock)
    for user in range(10):
        rate.admit(user)
    clock.now += WINDOW
    rate.admit(99)
    rate.admit(99)  # refused: triggers the clean-up
    assert set(rate._times) == {99}
