from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sygnify import CloudDataConnector
from sygnify.errors import (
    CircuitOpenError,
    ConfigurationError,
    ConnectionFailedError,
    OperationTimeoutError,
    QueryError,
    ThrottledError,
)
from sygnify.resilience import (
    BreakerState,
    CircuitBreaker,
    Deadline,
    Resilience,
    RetryPolicy,
    call_with_timeout,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """Fails with the given exceptions, then returns 'ok'; counts calls."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def test_retry_recovers_from_transient_errors_with_exponential_backoff() -> None:
    slept: list[float] = []
    policy = RetryPolicy(max_attempts=4, initial_delay=0.5, multiplier=2, jitter=0, sleep=slept.append)
    flaky = Flaky(ConnectionFailedError("reset"), ConnectionFailedError("reset"), ConnectionFailedError("x"))
    assert policy.call(flaky) == "ok"
    assert flaky.calls == 4
    assert slept == [0.5, 1.0, 2.0]


def test_retry_gives_up_after_max_attempts_and_reraises_the_last_error() -> None:
    slept: list[float] = []
    policy = RetryPolicy(max_attempts=3, initial_delay=0.1, jitter=0, sleep=slept.append)
    flaky = Flaky(*(ConnectionFailedError(f"fail {i}") for i in range(5)))
    with pytest.raises(ConnectionFailedError, match="fail 2"):
        policy.call(flaky)
    assert flaky.calls == 3
    assert len(slept) == 2


def test_non_transient_errors_are_not_retried() -> None:
    slept: list[float] = []
    policy = RetryPolicy(max_attempts=5, sleep=slept.append)
    flaky = Flaky(QueryError("syntax error"))
    with pytest.raises(QueryError):
        policy.call(flaky)
    assert flaky.calls == 1
    assert slept == []


def test_backoff_is_capped_and_jitter_stays_within_bounds() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=4.0, multiplier=3, jitter=0.5, rng=random.Random(1))
    delays = [policy.delay_for(attempt) for attempt in range(1, 7)]
    bases = [1.0, 3.0, 4.0, 4.0, 4.0, 4.0]
    for delay, base in zip(delays, bases):
        assert base <= delay <= base * 1.5
    assert len(set(delays)) > 1  # jitter actually varies


def test_throttling_waits_at_least_retry_after() -> None:
    slept: list[float] = []
    policy = RetryPolicy(initial_delay=0.1, jitter=0, sleep=slept.append)
    flaky = Flaky(ThrottledError("slow down", retry_after=7.0))
    assert policy.call(flaky) == "ok"
    assert slept == [7.0]


def test_on_retry_hook_sees_each_retry() -> None:
    seen: list[tuple[int, str, float]] = []
    policy = RetryPolicy(
        initial_delay=1, jitter=0, sleep=lambda _: None, on_retry=lambda n, e, d: seen.append((n, str(e), d))
    )
    policy.call(Flaky(ConnectionFailedError("a"), ConnectionFailedError("b")))
    assert seen == [(1, "a", 1.0), (2, "b", 2.0)]


def test_on_retry_is_not_called_for_the_final_failed_attempt() -> None:
    attempts: list[int] = []
    policy = RetryPolicy(max_attempts=2, sleep=lambda _: None, on_retry=lambda n, e, d: attempts.append(n))
    with pytest.raises(ConnectionFailedError):
        policy.call(Flaky(*(ConnectionFailedError("down") for _ in range(5))))
    assert attempts == [1]


def test_wrap_decorator_retries() -> None:
    flaky = Flaky(ConnectionFailedError("x"))
    wrapped = RetryPolicy(sleep=lambda _: None).wrap(flaky)
    assert wrapped() == "ok"
    assert flaky.calls == 2


def test_invalid_retry_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigurationError):
        CircuitBreaker("x", failure_threshold=0)


def test_breaker_opens_after_threshold_and_refuses_calls() -> None:
    clock = FakeClock()
    transitions: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        "svc",
        failure_threshold=3,
        reset_timeout=10,
        clock=clock,
        on_state_change=lambda old, new: transitions.append((old.value, new.value)),
    )
    failing = Flaky(*(ConnectionFailedError("down") for _ in range(10)))
    for _ in range(3):
        with pytest.raises(ConnectionFailedError):
            breaker.call(failing)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(failing)
    assert refused.value.retry_at == 10
    assert failing.calls == 3  # the refused call never reached the service
    assert transitions == [("closed", "open")]


def test_breaker_half_opens_after_timeout_and_closes_on_success() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("svc", failure_threshold=1, reset_timeout=5, clock=clock)
    with pytest.raises(ConnectionFailedError):
        breaker.call(Flaky(ConnectionFailedError("down")))
    clock.now = 4.9
    assert breaker.state is BreakerState.OPEN
    clock.now = 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.call(Flaky()) == "ok"
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


def test_breaker_reopens_when_the_trial_call_fails() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("svc", failure_threshold=2, reset_timeout=5, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    clock.now = 6
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(ConnectionFailedError):
        breaker.call(Flaky(ConnectionFailedError("still down")))
    assert breaker.state is BreakerState.OPEN
    clock.now = 10.9
    assert breaker.state is BreakerState.OPEN  # a fresh timeout from the failed trial
    clock.now = 11
    assert breaker.state is BreakerState.HALF_OPEN


def test_half_open_admits_only_the_allowed_number_of_trials() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("svc", failure_threshold=1, reset_timeout=1, half_open_max_calls=1, clock=clock)
    breaker.record_failure()
    clock.now = 1
    breaker.before_call()  # the one trial call is in flight
    with pytest.raises(CircuitOpenError):
        breaker.before_call()


def test_user_errors_do_not_open_the_breaker() -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1)
    for _ in range(3):
        with pytest.raises(QueryError):
            breaker.call(Flaky(QueryError("bad sql")))
    assert breaker.state is BreakerState.CLOSED


def test_resilience_stops_retrying_once_the_breaker_opens() -> None:
    slept: list[float] = []
    resilience = Resilience(
        retry=RetryPolicy(max_attempts=10, jitter=0, initial_delay=0.01, sleep=slept.append),
        breaker=CircuitBreaker("svc", failure_threshold=3, reset_timeout=60, clock=FakeClock()),
    )
    failing = Flaky(*(ConnectionFailedError("down") for _ in range(20)))
    with pytest.raises(CircuitOpenError) as refused:
        resilience.call(failing)
    assert failing.calls == 3
    assert resilience.breaker.state is BreakerState.OPEN
    # Fail fast, on purpose (docs/errors-and-resilience.md): the third failure opened the breaker
    # for 60 s, so the call ends at once, chained to that failure, without a fourth backoff
    # sleep the breaker would answer with a refusal anyway (the old rule slept it first).
    assert slept == [0.01, 0.02]
    assert isinstance(refused.value.__cause__, ConnectionFailedError)


def test_no_retry_is_reported_for_an_attempt_the_breaker_would_refuse() -> None:
    retries: list[int] = []
    resilience = Resilience(
        retry=RetryPolicy(
            max_attempts=5, jitter=0, sleep=lambda _: None, on_retry=lambda n, e, d: retries.append(n)
        ),
        breaker=CircuitBreaker("svc", failure_threshold=2, reset_timeout=60, clock=FakeClock()),
    )
    with pytest.raises(CircuitOpenError):
        resilience.call(Flaky(*(ConnectionFailedError("down") for _ in range(5))))
    assert retries == [1]  # the second failure opened it: that retry never happens, so it is not reported


def test_a_breaker_that_half_opens_within_the_backoff_is_retried_after_it() -> None:
    clock = FakeClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    resilience = Resilience(
        retry=RetryPolicy(max_attempts=3, initial_delay=2.0, jitter=0, sleep=sleep),
        breaker=CircuitBreaker("svc", failure_threshold=1, reset_timeout=1.0, clock=clock),
    )
    # open after the first failure, but only for 1 s: the 2 s backoff outlasts it, so the next
    # attempt is the half-open trial (not refused) and the call recovers
    flaky = Flaky(ConnectionFailedError("blip"))
    assert resilience.call(flaky) == "ok"
    assert slept == [2.0]
    assert resilience.breaker.state is BreakerState.CLOSED


def test_the_last_attempt_failure_propagates_as_itself_even_when_it_opens_the_breaker() -> None:
    resilience = Resilience(
        retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=0, sleep=lambda _: None),
        breaker=CircuitBreaker("svc", failure_threshold=2, reset_timeout=60, clock=FakeClock()),
    )
    with pytest.raises(ConnectionFailedError, match="second"):
        resilience.call(Flaky(ConnectionFailedError("first"), ConnectionFailedError("second")))
    assert resilience.breaker.state is BreakerState.OPEN


def test_acall_follows_the_same_fail_fast_rule() -> None:
    slept: list[float] = []
    resilience = Resilience(
        retry=RetryPolicy(max_attempts=10, jitter=0, initial_delay=0.01, sleep=slept.append),
        breaker=CircuitBreaker("svc", failure_threshold=3, reset_timeout=60, clock=FakeClock()),
    )
    failing = Flaky(*(ConnectionFailedError("down") for _ in range(20)))

    async def attempt() -> str:
        return failing()

    with pytest.raises(CircuitOpenError) as refused:
        asyncio.run(resilience.acall(attempt))
    assert (failing.calls, slept) == (3, [0.01, 0.02])
    assert isinstance(refused.value.__cause__, ConnectionFailedError)


def test_a_resumed_stream_ends_without_sleeping_when_the_breaker_opens() -> None:
    slept: list[float] = []
    resilience = Resilience(
        retry=RetryPolicy(max_attempts=10, jitter=0, initial_delay=5.0, sleep=slept.append),
        breaker=CircuitBreaker("svc", failure_threshold=2, reset_timeout=60, clock=FakeClock()),
    )
    opened: list[int | None] = []

    def broken(checkpoint: int | None) -> Iterator[tuple[int, int]]:
        opened.append(checkpoint)
        yield 1, 1
        raise ConnectionFailedError("reset")

    with pytest.raises(CircuitOpenError) as refused:
        list(resilience.resume(broken))
    assert opened == [None, 1]  # reopened once after the first failure; the second opened the breaker
    assert slept == [5.0]
    assert isinstance(refused.value.__cause__, ConnectionFailedError)


def test_a_connector_call_with_an_open_breaker_does_not_sleep_its_backoff(tmp_path: Path) -> None:
    # A real connection's policy sleeps with time.sleep (not injectable through its config), so
    # the bound is on wall time: a 30 s backoff that must not be slept, checked against 5 s.
    with CloudDataConnector(environ={}) as connector:
        lake = connector.connect(
            "local",
            name="down",
            root=tmp_path,
            retry={"max_attempts": 3, "initial_delay": 30, "max_delay": 30, "jitter": 0},
            breaker={"failure_threshold": 1, "reset_timeout": 600},
        )
        calls: list[int] = []

        def always_down() -> None:
            calls.append(1)
            raise ConnectionFailedError("down")

        start = time.monotonic()
        with pytest.raises(CircuitOpenError) as refused:
            lake._call("probe", always_down)
        assert isinstance(refused.value.__cause__, ConnectionFailedError)
        with pytest.raises(CircuitOpenError):  # open: refused before any attempt
            lake._call("probe", always_down)
        elapsed = time.monotonic() - start
    assert calls == [1]
    assert elapsed < 5.0, f"{elapsed:.1f} s: the 30 s backoff was slept before the refusal"


def test_deadline_uses_the_injected_clock() -> None:
    clock = FakeClock()
    deadline = Deadline(3, clock=clock)
    deadline.check("load")
    clock.now = 3
    assert deadline.expired
    assert deadline.remaining() == 0
    with pytest.raises(OperationTimeoutError, match="load did not finish within 3 s"):
        deadline.check("load")


def test_call_with_timeout_returns_or_raises_timeout() -> None:
    assert call_with_timeout(lambda: 42, 5) == 42
    release = threading.Event()
    try:
        with pytest.raises(OperationTimeoutError):
            call_with_timeout(lambda: release.wait(30), 0.05, operation="hang")
    finally:
        release.set()
