"""The circuit breaker's states, on a clock the test moves."""

from __future__ import annotations

from thinkstop.proxy.guard.scopes import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_opens_it_for_the_cool_down_then_one_trial_closes_it() -> None:
    clock = Clock()
    breaker = Breaker(5.0, clock)
    assert breaker.allows() and breaker.trial_in() == 0.0
    assert breaker.failed() is True  # closed -> open: the caller logs it
    assert not breaker.allows() and breaker.trial_in() == 5.0  # open
    clock.now += 2.0
    assert breaker.trial_in() == 3.0
    assert breaker.start_trial() is False  # still cooling down
    clock.now += 3.0
    assert breaker.start_trial() is True and breaker.state == "trial"
    assert not breaker.allows()  # requests still skip the store while the trial runs
    assert breaker.start_trial() is False  # one trial at a time
    assert breaker.succeeded() is True and breaker.allows()
    assert breaker.succeeded() is False  # already closed: nothing to report


def test_a_failed_trial_opens_it_for_another_cool_down() -> None:
    clock = Clock()
    breaker = Breaker(5.0, clock)
    breaker.failed()
    clock.now += 5.0
    assert breaker.start_trial()
    clock.now += 1.0
    assert breaker.failed() is False  # it was not closed: no second "opened" report
    assert breaker.state == "open" and breaker.trial_in() == 5.0


def test_late_failures_and_answers_from_before_do_not_move_an_open_breaker() -> None:
    clock = Clock()
    breaker = Breaker(5.0, clock)
    breaker.failed()
    clock.now += 4.0
    assert breaker.failed() is False  # a call in flight when it opened: no restart
    assert breaker.trial_in() == 1.0
    assert breaker.succeeded() is False and breaker.state == "open"


def test_a_forced_trial_skips_the_cool_down_but_needs_an_open_breaker() -> None:
    breaker = Breaker(60.0, Clock())
    assert breaker.start_trial(force=True) is False  # closed: nothing to try
    breaker.failed()
    assert breaker.start_trial(force=True) is True and breaker.state == "trial"
