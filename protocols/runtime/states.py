"""The engine's vocabulary: its states and their transitions, interlock trips, the recovery
policy, how an attempt at an experiment ended, and the live progress.

Kept apart from the engine so that a runner (the scale-up runner, the pipelined schedule)
can use these names without importing the engine that imports it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from robochem.analysis import AnalysisResult
from robochem.storage.models import CampaignStatus

__all__ = [
    "DB_STATUS",
    "TERMINAL",
    "TRANSITIONS",
    "EngineState",
    "IllegalTransition",
    "InterlockTrip",
    "Outcome",
    "Policy",
    "Progress",
]


class EngineState(enum.StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    STOPPING = "stopping"
    ABORTING = "aborting"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"


S = EngineState
#: Allowed transitions; anything else raises :class:`IllegalTransition`.
TRANSITIONS: dict[EngineState, frozenset[EngineState]] = {
    S.IDLE: frozenset({S.RUNNING, S.ABORTING, S.FAILED}),
    S.RUNNING: frozenset({S.PAUSING, S.PAUSED, S.STOPPING, S.ABORTING, S.COMPLETED, S.FAILED}),
    S.PAUSING: frozenset({S.RUNNING, S.PAUSED, S.STOPPING, S.ABORTING, S.COMPLETED, S.FAILED}),
    S.PAUSED: frozenset({S.RUNNING, S.STOPPING, S.ABORTING, S.FAILED}),
    S.STOPPING: frozenset({S.COMPLETED, S.ABORTING, S.FAILED}),
    S.ABORTING: frozenset({S.ABORTED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.ABORTED: frozenset(),
    S.FAILED: frozenset(),
}
TERMINAL = frozenset({S.COMPLETED, S.ABORTED, S.FAILED})

#: Engine state -> campaign status stored in the database (pausing is still running).
DB_STATUS: dict[EngineState, CampaignStatus] = {
    S.IDLE: CampaignStatus.CREATED,
    S.RUNNING: CampaignStatus.RUNNING,
    S.PAUSING: CampaignStatus.RUNNING,
    S.PAUSED: CampaignStatus.PAUSED,
    S.STOPPING: CampaignStatus.STOPPING,
    S.ABORTING: CampaignStatus.ABORTING,
    S.COMPLETED: CampaignStatus.COMPLETED,
    S.ABORTED: CampaignStatus.ABORTED,
    S.FAILED: CampaignStatus.FAILED,
}
assert set(DB_STATUS) == set(EngineState)


class IllegalTransition(RuntimeError):
    def __init__(self, current: EngineState, target: EngineState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (final state)"
        super().__init__(f"cannot go from {current} to {target}; allowed: {allowed}")
        self.current = current
        self.target = target


class InterlockTrip(Exception):
    """A watched quantity left its allowed range, or a device reported a fault."""

    def __init__(self, kind: str, message: str, *, device: str | None = None) -> None:
        self.kind = kind
        self.device = device
        self.message = message
        super().__init__(f"{kind}: {message}")


@dataclass(frozen=True)
class Policy:
    """Recovery policy and interlock settings."""

    #: extra acquisitions after a rejected spectrum or an NMR error (sample still in the cell)
    remeasure: int = 1
    #: repeats of an experiment whose spectrum stays rejected
    repeat: int = 1
    #: when re-measuring and repeating did not help: "pause" the campaign for the operator,
    #: or "fail" the experiment (told to the optimiser as a failure, event recorded) and go on
    on_rejected: str = "pause"
    #: simulated seconds between interlock polls (never more often than ``min_poll_wall_s``)
    poll_s: float = 1.0
    min_poll_wall_s: float = 0.02

    def __post_init__(self) -> None:
        if self.on_rejected not in ("pause", "fail"):
            raise ValueError(f"on_rejected must be 'pause' or 'fail', got {self.on_rejected!r}")
        if self.remeasure < 0 or self.repeat < 0:
            raise ValueError("remeasure and repeat must be >= 0")


@dataclass
class Outcome:
    """How one attempt at an experiment (or a scale-up segment) ended."""

    kind: str  # done | rejected | interrupted | failed
    reason: str = ""
    result: AnalysisResult | None = None
    trip: InterlockTrip | None = None


@dataclass
class Progress:
    """Live progress, for the CLI and the dashboard (``CampaignProgress``)."""

    experiment_id: int | None = None
    experiment_index: int | None = None
    step: str | None = None
    done: int = 0
    planned: int = 0
    reason: str | None = None
