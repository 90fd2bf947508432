"""Waiting for a Data Factory pipeline run to finish: polling with backoff under a deadline.

The run lookup, ``sleep`` and ``clock`` are passed in, so waiting is testable without a
service or real time::

    >>> states = iter(["Queued", "InProgress", "Succeeded"])
    >>> naps: list[float] = []
    >>> run = wait_for_run(
    ...     lambda run_id: PipelineRun(run_id, "daily_load", next(states)), "r1",
    ...     timeout=60, poll_interval=1, poll_backoff=2, max_poll_interval=10,
    ...     sleep=naps.append, clock=lambda: 0.0,
    ... )
    >>> run.status, naps
    ('Succeeded', [1, 2])
"""

from __future__ import annotations

from collections.abc import Callable

from sygnify.errors import ConfigurationError, OperationTimeoutError
from sygnify.orchestrators.azure_data_factory.runs import PipelineRun, PipelineRunFailedError
from sygnify.resilience import Deadline

__all__ = ["wait_for_run"]


def wait_for_run(
    get_run: Callable[[str], PipelineRun],
    run_id: str,
    *,
    timeout: float,
    poll_interval: float,
    poll_backoff: float,
    max_poll_interval: float,
    raise_on_failure: bool = True,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> PipelineRun:
    """Poll ``get_run(run_id)`` until the run finishes; waits grow by ``poll_backoff`` up to
    ``max_poll_interval``.

    Raises :class:`~sygnify.errors.OperationTimeoutError` after ``timeout`` seconds (the run
    keeps going) and, unless ``raise_on_failure`` is false, :class:`PipelineRunFailedError`
    for a failed or cancelled run.
    """
    limit, interval = timeout, poll_interval
    if limit <= 0 or interval <= 0:
        raise ConfigurationError("timeout and poll_interval must be > 0", resource=run_id)
    deadline = Deadline(limit, clock=clock)
    while True:
        state = get_run(run_id)
        if state.finished:
            break
        if deadline.expired:
            raise OperationTimeoutError(
                f"pipeline run {run_id} ({state.pipeline}) is still {state.status} after {limit:g} s; "
                "it keeps running: cancel(run_id) to stop it, or wait longer",
                resource=run_id,
            )
        sleep(min(interval, max(deadline.remaining(), 0.0)))
        interval = min(interval * poll_backoff, max_poll_interval)
    if raise_on_failure and not state.succeeded:
        raise PipelineRunFailedError(
            f"pipeline run {run_id} ({state.pipeline}) ended {state.status}: "
            f"{state.message or 'no message'}; "
            "see activity_runs(run_id), or rerun(run_id) to start again from the failed activity",
            run=state,
        )
    return state
