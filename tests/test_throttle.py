"""utils.throttle: the adaptive in-flight limit (never exceeded, halves, recovers) and MinInterval pacing."""

import threading
import time
from types import SimpleNamespace

import pytest

from utils import throttle
from utils.throttle import AdaptiveLimiter, MinInterval

WAIT = 5.0  # generous timeout for things that must happen; never reached when the code is right


def _succeed(limiter: AdaptiveLimiter, times: int = 1) -> None:
    for _ in range(times):
        with limiter:
            pass


def _fail(limiter: AdaptiveLimiter, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(RuntimeError):
            with limiter:
                raise RuntimeError("API error")


def _start_entering(limiter: AdaptiveLimiter) -> tuple[threading.Thread, threading.Event, threading.Event]:
    """A thread that enters the limiter, signals `entered`, and leaves when `release` is set."""
    entered, release = threading.Event(), threading.Event()

    def hold():
        with limiter:
            entered.set()
            release.wait(WAIT)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread, entered, release


# --- The limit ------------------------------------------------------------------------------------

def test_never_more_than_limit_holders_at_once():
    limiter = AdaptiveLimiter(3)
    lock = threading.Lock()
    holders = 0
    most = 0
    start = threading.Barrier(12)

    def work():
        nonlocal holders, most
        start.wait(WAIT)
        for _ in range(5):
            with limiter:
                with lock:
                    holders += 1
                    most = max(most, holders)
                time.sleep(0.002)
                with lock:
                    holders -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert most == 3
    assert limiter.in_flight == 0


def test_a_caller_over_the_limit_waits_until_a_slot_frees():
    limiter = AdaptiveLimiter(2)
    holders = [_start_entering(limiter) for _ in range(2)]
    for _, entered, _ in holders:
        assert entered.wait(WAIT)
    thread, entered, release = _start_entering(limiter)
    assert not entered.wait(0.1)
    holders[0][2].set()  # one holder leaves
    assert entered.wait(WAIT)
    for _, _, other_release in holders[1:]:
        other_release.set()
    release.set()
    thread.join(WAIT)


@pytest.mark.parametrize("limit, expected", [(0, 1), (-3, 1), (1, 1), (8, 8)])
def test_limit_is_at_least_one(limit, expected):
    limiter = AdaptiveLimiter(limit)
    assert limiter.limit == limiter.max_limit == expected


# --- Slowing down ---------------------------------------------------------------------------------

def test_slow_down_halves_and_never_goes_below_one():
    limiter = AdaptiveLimiter(8)
    seen = []
    for _ in range(5):
        limiter.slow_down()
        seen.append(limiter.limit)
    assert seen == [4, 2, 1, 1, 1]
    assert limiter.slowdowns == 5


def test_limit_recovers_by_one_per_recover_after_successes_up_to_the_maximum():
    limiter = AdaptiveLimiter(4, recover_after=3)
    limiter.slow_down()
    limiter.slow_down()
    assert limiter.limit == 1
    _succeed(limiter, 2)
    assert limiter.limit == 1
    _succeed(limiter)
    assert limiter.limit == 2
    _succeed(limiter, 3)
    assert limiter.limit == 3
    _succeed(limiter, 30)
    assert limiter.limit == 4


def test_slow_down_restarts_the_count_towards_recovery():
    limiter = AdaptiveLimiter(8, recover_after=3)
    limiter.slow_down()
    _succeed(limiter, 2)
    limiter.slow_down()
    _succeed(limiter, 2)
    assert limiter.limit == 2
    _succeed(limiter)
    assert limiter.limit == 3


def test_exceptions_inside_the_block_are_not_successes():
    limiter = AdaptiveLimiter(4, recover_after=2)
    limiter.slow_down()
    _fail(limiter, 5)
    assert limiter.limit == 2
    assert limiter.in_flight == 0  # a failed call still frees its slot
    _succeed(limiter, 2)
    assert limiter.limit == 3


def test_the_call_that_asked_to_slow_down_is_not_a_success():
    # Step 5 catches the rate-limit error inside the block, so the block ends without an exception.
    limiter = AdaptiveLimiter(4, recover_after=1)
    with limiter:
        limiter.slow_down()
    assert limiter.limit == 2


def test_one_burst_of_rate_limiting_halves_the_limit_once():
    limiter = AdaptiveLimiter(8)
    ready = threading.Barrier(8)
    go = threading.Event()

    def rate_limited_call():
        with limiter:
            ready.wait(WAIT)  # all eight calls are in flight together
            go.wait(WAIT)
            limiter.slow_down()

    threads = [threading.Thread(target=rate_limited_call) for _ in range(8)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(WAIT)
    assert limiter.limit == 4
    assert limiter.slowdowns == 1
    # The retries start under the new limit: pushed back again, it halves again.
    with limiter:
        limiter.slow_down()
    assert limiter.limit == 2


def test_calls_started_before_a_slow_down_do_not_count_towards_recovery():
    limiter = AdaptiveLimiter(4, recover_after=1)
    thread, entered, release = _start_entering(limiter)
    assert entered.wait(WAIT)
    limiter.slow_down()
    release.set()
    thread.join(WAIT)
    assert limiter.limit == 2
    _succeed(limiter)
    assert limiter.limit == 3


def test_waiting_callers_wake_when_the_limit_rises():
    limiter = AdaptiveLimiter(2, recover_after=1)
    limiter.slow_down()
    assert limiter.limit == 1
    first, first_entered, first_release = _start_entering(limiter)
    assert first_entered.wait(WAIT)
    together = threading.Barrier(2)
    passed = []

    def wait_then_meet():
        with limiter:
            together.wait(WAIT)  # needs both waiters inside at once: only possible with limit 2
            passed.append(True)

    waiters = [threading.Thread(target=wait_then_meet) for _ in range(2)]
    for thread in waiters:
        thread.start()
    time.sleep(0.05)
    assert limiter.in_flight == 1  # both wait behind the limit of 1
    first_release.set()  # a success: the limit rises to 2 and both waiters must get in
    first.join(WAIT)
    for thread in waiters:
        thread.join(WAIT)
    assert passed == [True, True]
    assert limiter.limit == 2


# --- MinInterval -----------------------------------------------------------------------------------

@pytest.fixture
def fake_time(monkeypatch):
    state = SimpleNamespace(now=100.0, sleeps=[])

    def sleep(seconds):
        state.sleeps.append(round(seconds, 6))
        state.now += seconds

    monkeypatch.setattr(throttle, "time", SimpleNamespace(monotonic=lambda: state.now, sleep=sleep))
    return state


def test_min_interval_spaces_calls(fake_time):
    pacer = MinInterval(0.2)
    pacer.wait()
    pacer.wait()
    pacer.wait()
    assert fake_time.sleeps == [0.2, 0.2]
    fake_time.now += 5.0  # idle: the next call goes at once
    pacer.wait()
    assert fake_time.sleeps == [0.2, 0.2]


def test_min_interval_across_threads_claims_distinct_slots():
    pacer = MinInterval(0.02)
    returned = []
    lock = threading.Lock()

    def call():
        pacer.wait()
        with lock:
            returned.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    returned.sort()
    assert returned[-1] - returned[0] >= 4 * 0.02 - 0.005
