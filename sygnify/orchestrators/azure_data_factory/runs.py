"""What the ``azure_data_factory`` connector reports about pipeline runs, activities and triggers.

>>> run = PipelineRun(run_id="r1", pipeline="daily_load", status="InProgress")
>>> run.finished, run.succeeded
(False, False)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sygnify.errors import JobFailedError

__all__ = [
    "TERMINAL",
    "ActivityRun",
    "PipelineRun",
    "PipelineRunFailedError",
    "TriggerInfo",
    "activity_from_sdk",
    "run_from_sdk",
]

#: Run statuses after which a run does not change any more.
TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled"})


@dataclass(frozen=True)
class PipelineRun:
    """A pipeline run's state."""

    run_id: str
    pipeline: str | None
    status: str
    message: str = ""
    run_start: dt.datetime | None = None
    run_end: dt.datetime | None = None
    duration_ms: int | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"


@dataclass(frozen=True)
class ActivityRun:
    """One activity of a pipeline run, with its input, output and error (as ADF returns them)."""

    name: str
    activity_type: str | None
    activity_run_id: str | None
    status: str | None
    run_start: dt.datetime | None
    run_end: dt.datetime | None
    input: Any
    output: Any
    error: Any


@dataclass(frozen=True)
class TriggerInfo:
    """A trigger's name, type and runtime state (``Started``/``Stopped``/``Disabled``)."""

    name: str
    trigger_type: str | None
    runtime_state: str | None


class PipelineRunFailedError(JobFailedError):
    """A pipeline run ended ``Failed`` or ``Cancelled``; ``run`` holds its final state."""

    def __init__(self, message: str, *, run: PipelineRun) -> None:
        super().__init__(message, resource=run.run_id)
        self.run = run


def run_from_sdk(run: Any, run_id: str) -> PipelineRun:
    """A run as the SDK returns it, as a :class:`PipelineRun`."""
    return PipelineRun(
        run_id=run.run_id or run_id,
        pipeline=run.pipeline_name,
        status=run.status or "Unknown",
        message=run.message or "",
        run_start=run.run_start,
        run_end=run.run_end,
        duration_ms=run.duration_in_ms,
        parameters=dict(run.parameters or {}),
    )


def activity_from_sdk(activity: Any) -> ActivityRun:
    """An activity run as the SDK returns it, as an :class:`ActivityRun`."""
    return ActivityRun(
        name=activity.activity_name or "",
        activity_type=activity.activity_type,
        activity_run_id=activity.activity_run_id,
        status=activity.status,
        run_start=activity.activity_run_start,
        run_end=activity.activity_run_end,
        input=activity.input,
        output=activity.output,
        error=activity.error,
    )
