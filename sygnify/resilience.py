"""Retries, circuit breakers and timeouts shared by every connector and remote backend.

Clocks, sleeps and random sources are injectable so that tests never wait::

    >>> from sygnify.errors import ConnectionFailedError
    >>> slept: list[float] = []
    >>> policy = RetryPolicy(max_attempts=3, initial_delay=0.1, jitter=0.0, sleep=slept.append)
    >>> attempts = iter([ConnectionFailedError("reset"), ConnectionFailedError("reset"), "ok"])
    >>> def flaky() -> str:
    ...     outcome = next(attempts)
    ...     if isinstance(outcome, Exception):
    ...         raise outcome
    ...     return outcome
    >>> policy.call(flaky), slept
    ('ok', [0.1, 0.2])
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import itertools
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import tenacity

from sygnify.errors import (
    CircuitOpenError,
    ConfigurationError,
    OperationTimeoutError,
    SygnifyError,
    ThrottledError,
    TransientError,
)

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "Deadline",
    "Resilience",
    "RetryPolicy",
    "call_with_timeout",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
C = TypeVar("C")


@dataclass(frozen=True)
class RetryPolicy:
    """Retry transient failures with exponential backoff and jitter (tenacity underneath).

    Attempt ``n`` (1-based) that fails waits ``min(max_delay, initial_delay * multiplier**(n-1))``
    plus a random extra of up to ``jitter`` times that delay; a :class:`ThrottledError` that
    carries ``retry_after`` waits at least that long. Only exceptions in ``retry_on``
    (default: :class:`TransientError`) are retried; anything else propagates at once.
    ``on_retry(attempt, exc, delay)`` is called before each sleep (for metrics and logs).
    """

    max_attempts: int = 4
    initial_delay: float = 0.2
    max_delay: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.25
    retry_on: tuple[type[BaseException], ...] = (TransientError,)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)
    on_retry: Callable[[int, BaseException, float], None] | None = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_delay < 0 or self.max_delay < 0 or self.jitter < 0:
            raise ConfigurationError("retry delays and jitter must be >= 0")

    def delay_for(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        delay = base + (self.rng.uniform(0, self.jitter * base) if self.jitter else 0.0)
        if isinstance(exc, ThrottledError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return delay

    def total_delay(self) -> float:
        """The longest the policy sleeps in all (its backoff between ``max_attempts`` attempts).

        What a persistent outage costs on top of the attempts' own time (their timeouts);
        ``Retry-After`` answers may stretch it.

        >>> RetryPolicy(max_attempts=4, initial_delay=0.5, multiplier=2.0, jitter=0.0).total_delay()
        3.5
        """
        return sum(
            min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1)) * (1 + self.jitter)
            for attempt in range(1, self.max_attempts)
        )

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        delay = self.delay_for(retry_state.attempt_number, exc)
        # tenacity computes the wait before checking stop: the last attempt is no retry.
        will_retry = retry_state.attempt_number < self.max_attempts
        if self.on_retry is not None and exc is not None and will_retry:
            self.on_retry(retry_state.attempt_number, exc, delay)
        return delay

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)``, retrying transient failures; re-raise the last one."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, self.retry_on) and getattr(exc, "retryable", True)
            ),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(fn, *args, **kwargs)

    def wrap(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorator form of :meth:`call`."""

        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.call(fn, *args, **kwargs)

        wrapper.__name__ = getattr(fn, "__name__", "wrapped")
        wrapper.__doc__ = fn.__doc__
        return wrapper


class BreakerState(str, enum.Enum):
    """The three states of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TransientError) and exc.retryable


class CircuitBreaker:
    """Stop calling a failing service for a while, then probe it with trial calls.

    ``failure_threshold`` consecutive failures open the breaker; after ``reset_timeout``
    seconds (on ``clock``) it turns half-open and lets ``half_open_max_calls`` trial calls
    through: a success closes it, a failure opens it again. Only exceptions for which
    ``is_failure`` is true count (default: transient errors, so a user's bad query does not
    open the breaker). Thread-safe.

    Outcomes count per top-level operation: while :meth:`operation` is active on a thread,
    calls made there (a listing or a HEAD inside a failing data read) are part of it and
    record nothing, so their successes cannot hide the outer failure (:class:`Resilience`).

        >>> now = [0.0]
        >>> breaker = CircuitBreaker("svc", failure_threshold=2, reset_timeout=5, clock=lambda: now[0])
        >>> for _ in range(2):
        ...     breaker.record_failure()
        >>> breaker.state.value
        'open'
        >>> now[0] = 5.0
        >>> breaker.state.value
        'half_open'
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        is_failure: Callable[[BaseException], bool] = _is_transient,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1 or half_open_max_calls < 1 or reset_timeout < 0:
            raise ConfigurationError(
                "failure_threshold and half_open_max_calls must be >= 1, reset_timeout >= 0"
            )
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self._is_failure = is_failure
        self._clock = clock
        self._listeners: list[Callable[[BreakerState, BreakerState], None]] = []
        if on_state_change is not None:
            self._listeners.append(on_state_change)
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials_in_flight = 0
        self._scope = threading.local()

    @contextlib.contextmanager
    def operation(self) -> Iterator[None]:
        """Mark the calls made on this thread until exit as one operation (see the class docstring)."""
        self._scope.depth = getattr(self._scope, "depth", 0) + 1
        try:
            yield
        finally:
            self._scope.depth -= 1

    @property
    def in_operation(self) -> bool:
        """Whether this thread is inside :meth:`operation` (a nested call)."""
        return bool(getattr(self._scope, "depth", 0))

    def add_listener(self, listener: Callable[[BreakerState, BreakerState], None]) -> None:
        """Call ``listener(old_state, new_state)`` on every state change."""
        self._listeners.append(listener)

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker turns half-open once its timeout passed)."""
        with self._lock:
            self._refresh()
            return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def _set_state(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new:
            for listener in self._listeners:
                listener(old, new)

    def _refresh(self) -> None:
        opened_long_enough = self._clock() - self._opened_at >= self.reset_timeout
        if self._state is BreakerState.OPEN and opened_long_enough:
            self._trials_in_flight = 0
            self._set_state(BreakerState.HALF_OPEN)

    def _open_error(self) -> CircuitOpenError:
        retry_at = self._opened_at + self.reset_timeout
        return CircuitOpenError(
            f"circuit breaker {self.name!r} is open after {self._failures} consecutive "
            f"failures; calls are refused until clock time {retry_at:.3f}",
            resource=self.name,
            retry_at=retry_at,
        )

    def before_call(self) -> None:
        """Raise :class:`CircuitOpenError` unless a call may go through now."""
        with self._lock:
            self._refresh()
            if self._state is BreakerState.OPEN or (
                self._state is BreakerState.HALF_OPEN and self._trials_in_flight >= self.half_open_max_calls
            ):
                raise self._open_error()
            if self._state is BreakerState.HALF_OPEN:
                self._trials_in_flight += 1

    def check(self) -> None:
        """Raise :class:`CircuitOpenError` if the breaker is open (takes no half-open trial)."""
        refused = self.refusal()
        if refused is not None:
            raise refused

    def refusal(self, *, after: float = 0.0) -> CircuitOpenError | None:
        """The :class:`CircuitOpenError` a call ``after`` seconds from now would get, if nothing
        changes meanwhile; ``None`` if it may go through then (takes no half-open trial).

        :class:`Resilience` asks this before sleeping a retry's backoff, so that it does not
        wait for an attempt the breaker will refuse anyway::

            >>> now = [0.0]
            >>> breaker = CircuitBreaker("svc", failure_threshold=1, reset_timeout=5, clock=lambda: now[0])
            >>> breaker.record_failure()
            >>> breaker.refusal(after=1.0) is not None, breaker.refusal(after=5.0) is None
            (True, True)
        """
        with self._lock:
            self._refresh()
            if (
                self._state is BreakerState.OPEN
                and self._clock() + after < self._opened_at + self.reset_timeout
            ):
                return self._open_error()
            return None

    def is_failure(self, exc: BaseException) -> bool:
        """Whether ``exc`` counts as a failure of the service (``is_failure``)."""
        return self._is_failure(exc)

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._trials_in_flight = 0
            self._set_state(BreakerState.CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
                self._trials_in_flight = 0
                self._set_state(BreakerState.OPEN)

    @contextlib.contextmanager
    def guarding(self) -> Iterator[None]:
        """The breaker around a block (work no single call wraps, such as a frame that a
        library collects): refused when open, its outcome recorded.

        >>> from sygnify.errors import ConnectionFailedError
        >>> breaker = CircuitBreaker("lake", failure_threshold=1)
        >>> try:
        ...     with breaker.guarding():
        ...         raise ConnectionFailedError("down")
        ... except ConnectionFailedError:
        ...     pass
        >>> breaker.state.value
        'open'
        """
        self.before_call()
        try:
            yield
        except BaseException as exc:
            if self._is_failure(exc):
                self.record_failure()
            else:
                self._release_trial()
            raise
        self.record_success()

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn`` through the breaker, recording its outcome."""
        self.before_call()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            if self._is_failure(exc):
                self.record_failure()
            else:
                self._release_trial()
            raise
        self.record_success()
        return result

    def _release_trial(self) -> None:
        with self._lock:
            if self._state is BreakerState.HALF_OPEN and self._trials_in_flight:
                self._trials_in_flight -= 1


@dataclass
class Resilience:
    """A retry policy around a circuit breaker: what connectors and remote models wrap each call in.

    Each attempt goes through the breaker. A failure after which the breaker would refuse
    the next attempt (it is open, and stays open for longer than the backoff) ends the
    retries at once with the breaker's :class:`CircuitOpenError`, chained to that failure
    (``__cause__``): no backoff is slept, and no retry reported, for an attempt that would
    be refused; the last attempt's failure still propagates as itself.

    A call made inside another one on the same thread (and the same breaker) is part of
    that outer operation: it makes one attempt (refused at once by an open breaker) and
    records nothing; the outer call retries and records, so attempts do not multiply and a
    nested success cannot reset the count of a failing outer operation::

        >>> from sygnify.errors import ConnectionFailedError
        >>> breaker = CircuitBreaker("svc", failure_threshold=2)
        >>> policy = RetryPolicy(max_attempts=3, initial_delay=0, sleep=lambda s: None)
        >>> resilience = Resilience(policy, breaker)
        >>> def read() -> None:
        ...     resilience.call(lambda: "listing ok")  # nested: no success recorded
        ...     raise ConnectionFailedError("GET failed")
        >>> try:
        ...     resilience.call(read)
        ... except Exception as exc:
        ...     print(type(exc).__name__, breaker.state.value)
        CircuitOpenError open
    """

    retry: RetryPolicy
    breaker: CircuitBreaker

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` with retries through the breaker (see the class docstring).

        An outage ends without sleeping the backoff the breaker would refuse::

            >>> from sygnify.errors import ConnectionFailedError
            >>> slept: list[float] = []
            >>> policy = RetryPolicy(max_attempts=4, initial_delay=0.5, jitter=0, sleep=slept.append)
            >>> resilience = Resilience(policy, CircuitBreaker("svc", failure_threshold=2))
            >>> def down() -> None:
            ...     raise ConnectionFailedError("reset")
            >>> try:
            ...     resilience.call(down)
            ... except CircuitOpenError as exc:
            ...     print("refused after sleeping", slept, "from", type(exc.__cause__).__name__)
            refused after sleeping [0.5] from ConnectionFailedError
        """
        if self.breaker.in_operation:
            self.breaker.check()
            return fn(*args, **kwargs)
        with self.breaker.operation():
            for attempt in itertools.count(1):
                try:
                    return self.breaker.call(fn, *args, **kwargs)
                except self.retry.retry_on as exc:
                    delay = self.backoff(attempt, exc)
                    if delay is None:
                        raise
                self.retry.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - itertools.count never ends

    async def acall(
        self, fn: Callable[[], Awaitable[R]], *, sleep: Callable[[float], Awaitable[None]] | None = None
    ) -> R:
        """Await ``fn()`` with the same retries, breaker and fail-fast rule as :meth:`call`.

        ``sleep`` awaits a backoff; by default :func:`asyncio.sleep`, or the policy's own
        ``sleep`` when one was injected (tests), called as is.

            >>> import asyncio
            >>> from sygnify.errors import ConnectionFailedError
            >>> slept: list[float] = []
            >>> policy = RetryPolicy(max_attempts=4, initial_delay=0.5, jitter=0, sleep=slept.append)
            >>> resilience = Resilience(policy, CircuitBreaker("svc", failure_threshold=2))
            >>> async def down() -> None:
            ...     raise ConnectionFailedError("reset")
            >>> try:
            ...     asyncio.run(resilience.acall(down))
            ... except CircuitOpenError:
            ...     print("refused after sleeping", slept)
            refused after sleeping [0.5]
        """
        wait = sleep if sleep is not None else self._async_sleep
        for attempt in itertools.count(1):
            try:
                with self.breaker.guarding():
                    return await fn()
            except self.retry.retry_on as exc:
                delay = self.backoff(attempt, exc)
                if delay is None:
                    raise
            await wait(delay)
        raise AssertionError("unreachable")  # pragma: no cover - itertools.count never ends

    async def _async_sleep(self, delay: float) -> None:
        if self.retry.sleep is time.sleep:
            await asyncio.sleep(delay)
        else:  # an injected (test) sleep
            self.retry.sleep(delay)

    def backoff(self, attempt: int, failure: BaseException) -> float | None:
        """Seconds to wait after failed attempt number ``attempt`` (a retryable ``failure``).

        ``None`` when that was the last attempt (the caller re-raises ``failure``). If the
        breaker would still refuse an attempt made after that wait, this raises its
        :class:`CircuitOpenError` from ``failure`` instead: the one place of the fail-fast
        rule, for :meth:`call`, :meth:`acall` and :meth:`resume`. ``on_retry`` is called only
        for a retry that will happen.
        """
        policy = self.retry
        if attempt >= policy.max_attempts or not getattr(failure, "retryable", True):
            return None
        delay = policy.delay_for(attempt, failure)
        refused = self.breaker.refusal(after=delay)
        if refused is not None:
            raise refused from failure
        if policy.on_retry is not None:
            policy.on_retry(attempt, failure, delay)
        return delay

    def resume(
        self,
        open_from: Callable[[C | None], Iterator[tuple[T, C]]],
        *,
        translate: Callable[[Exception], BaseException] | None = None,
    ) -> Iterator[T]:
        """Yield a stream's items, reopening it after the last one yielded when it fails.

        ``open_from(checkpoint)`` opens the stream (``None``: from the start) and yields
        ``(item, checkpoint)`` pairs, the checkpoint saying where the stream stands after
        ``item``. A retryable failure (:class:`TransientError` by default, after
        ``translate``) waits as the policy says and reopens from the last checkpoint, so
        nothing yielded is repeated; ``max_attempts`` failures in a row without progress, or
        an open breaker (at once, as in :meth:`call`: no backoff is slept for a reopening the
        breaker would refuse), end it. Each failure counts on the breaker; the breaker sees the
        stream succeed when it ends::

            >>> from sygnify.errors import ConnectionFailedError
            >>> failed = []
            >>> def numbers(start: int | None) -> Iterator[tuple[int, int]]:
            ...     for n in range(start or 0, 4):
            ...         if n == 2 and not failed:
            ...             failed.append(n)
            ...             raise ConnectionFailedError("reset")
            ...         yield n, n + 1
            >>> policy = RetryPolicy(initial_delay=0, sleep=lambda s: None)
            >>> list(Resilience(policy, CircuitBreaker("svc")).resume(numbers))
            [0, 1, 2, 3]
        """
        checkpoint: C | None = None
        failures = 0
        stream: Iterator[tuple[T, C]] | None = None
        done = False
        try:
            while True:
                try:
                    with self.breaker.operation():
                        if stream is None:
                            self.breaker.check()
                            stream = open_from(checkpoint)
                        item, checkpoint = next(stream)
                except StopIteration:
                    break
                except Exception as raw:
                    stream = None
                    exc = raw if translate is None or isinstance(raw, SygnifyError) else translate(raw)
                    if self.breaker.is_failure(exc):
                        self.breaker.record_failure()
                    failures += 1
                    delay = self.backoff(failures, exc) if isinstance(exc, self.retry.retry_on) else None
                    if delay is None:
                        if exc is raw:
                            raise
                        raise exc from raw
                    self.retry.sleep(delay)
                    continue
                failures = 0
                yield item
            done = True
        finally:
            if stream is not None and hasattr(stream, "close"):
                stream.close()
        if done:
            self.breaker.record_success()


class Deadline:
    """A point in time after which work should stop (clock injectable).

    >>> now = [0.0]
    >>> deadline = Deadline(2.0, clock=lambda: now[0])
    >>> now[0] = 1.5
    >>> deadline.remaining()
    0.5
    """

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    @property
    def expired(self) -> bool:
        return self._clock() >= self._end

    def check(self, operation: str) -> None:
        """Raise :class:`OperationTimeoutError` if the deadline has passed."""
        if self.expired:
            raise OperationTimeoutError(
                f"{operation} did not finish within {self.seconds:g} s", resource=operation
            )


def call_with_timeout(fn: Callable[[], R], timeout: float, *, operation: str = "operation") -> R:
    """Run ``fn()`` in a worker thread and give up waiting after ``timeout`` seconds.

    Python cannot kill a thread: on timeout the work is abandoned, not stopped, so prefer
    an SDK's own timeout where it has one and use this for calls that have none.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sygnify-timeout")
    future = pool.submit(fn)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise OperationTimeoutError(
            f"{operation} did not finish within {timeout:g} s", resource=operation
        ) from None
    finally:
        pool.shutdown(wait=False)
