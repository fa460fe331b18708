"""A campaign's best results: the one definition the CLI and the dashboard share.

The best value of an objective is the best, under the objective's goal (maximise or
minimise), of the values the optimiser was told: the latest measurement of each experiment
that ended ``done``, unless quality control rejected it. Ties go to the earlier
experiment. Each objective of a campaign with several is ranked on its own. A measure no
objective names is ranked under its natural goal (the highest yield is the best yield).

The objectives come from the stored protocol text, read through the protocol language
(:class:`robochem.protocols.model.Objective`: the same spellings, defaults and goals as
validation). A stored text whose objectives cannot be read gives no objective bests and a
``problem`` saying why: never a silent empty result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from robochem.protocols.errors import ProtocolError
from robochem.protocols.measures import MEASURES, Goal, better, measured
from robochem.protocols.model import Objective, objective_items
from robochem.protocols.source import yaml_data
from robochem.storage.models import Campaign, Experiment, ExperimentStatus, Measurement

__all__ = ["Best", "CampaignResults", "StoredObjectivesError", "best_results", "read_objectives"]

_OBJECTIVES = TypeAdapter(dict[str, Objective])


class StoredObjectivesError(ValueError):
    """The objectives of a stored protocol text cannot be read."""


@dataclass(frozen=True)
class Best:
    """The best value of one objective (or measure) in a campaign."""

    objective: str
    measure: str
    goal: Goal
    #: None: no usable measurement yet (or the measure is not stored)
    value: float | None = None
    experiment_id: int | None = None
    experiment_index: int | None = None


@dataclass(frozen=True)
class CampaignResults:
    campaign_id: int
    #: experiments that ended ``done``
    experiments_done: int
    #: objective name -> its best, in the protocol's order
    objectives: dict[str, Best] = field(default_factory=dict)
    #: stored measure -> its best, under the goal of the first objective on it, else the
    #: measure's natural goal
    measures: dict[str, Best] = field(default_factory=dict)
    #: why the stored objectives could not be read (None when they could)
    problem: str | None = None


def read_objectives(protocol_text: str, file: str = "<stored protocol>") -> dict[str, Objective]:
    """The objectives of a stored protocol text; :class:`StoredObjectivesError` when the
    text has none or they do not validate."""
    try:
        data = yaml_data(protocol_text, file)
    except ProtocolError as exc:
        raise StoredObjectivesError(f"{file}: {exc}") from None
    raw = data.get("objectives") if isinstance(data, dict) else None
    if not isinstance(raw, dict) or not raw:
        raise StoredObjectivesError(f"{file}: the protocol has no objectives section")
    try:
        return _OBJECTIVES.validate_python(objective_items(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("objectives", *first["loc"]))
        raise StoredObjectivesError(f"{file}: {where}: {first['msg']}") from None


@dataclass
class _Usable:
    """What the optimiser was told for one experiment."""

    experiment_id: int
    index: int
    measurement: Measurement


def _usable(session: Session, campaign_ids: list[int]) -> dict[int, list[_Usable]]:
    """Campaign -> its done experiments' latest measurements, QC-rejected ones left out,
    in experiment order."""
    rows = session.execute(
        select(Experiment.campaign_id, Experiment.id, Experiment.index, Measurement)
        .join(Measurement, Measurement.experiment_id == Experiment.id)
        .where(
            Experiment.campaign_id.in_(campaign_ids),
            Experiment.status == ExperimentStatus.DONE,
        )
        .order_by(Measurement.id)
    )
    latest: dict[int, tuple[int, _Usable]] = {}
    for campaign_id, experiment_id, index, m in rows:
        latest[experiment_id] = (campaign_id, _Usable(experiment_id, index, m))  # later wins
    out: dict[int, list[_Usable]] = {cid: [] for cid in campaign_ids}
    for campaign_id, usable in sorted(latest.values(), key=lambda item: item[1].index):
        if usable.measurement.qc_status != "rejected":
            out[campaign_id].append(usable)
    return out


def _rank(name: str, measure: str, goal: Goal, usable: Iterable[_Usable]) -> Best:
    column = MEASURES[measure].column
    best = Best(name, measure, goal)
    if column is None:
        return best
    for u in usable:
        value = getattr(u.measurement, column)
        if value is not None and (best.value is None or better(goal, value, best.value)):
            best = Best(name, measure, goal, float(value), u.experiment_id, u.index)
    return best


def _done_counts(session: Session, campaign_ids: list[int]) -> dict[int, int]:
    rows = session.execute(
        select(Experiment.campaign_id, func.count())
        .where(
            Experiment.campaign_id.in_(campaign_ids),
            Experiment.status == ExperimentStatus.DONE,
        )
        .group_by(Experiment.campaign_id)
    )
    return {cid: n for cid, n in rows}


def best_results(session: Session, campaign_ids: Iterable[int]) -> dict[int, CampaignResults]:
    """Campaign id -> its best results (campaigns that do not exist are left out)."""
    ids = list(dict.fromkeys(campaign_ids))
    if not ids:
        return {}
    texts: dict[int, str] = {
        cid: text
        for cid, text in session.execute(
            select(Campaign.id, Campaign.protocol_text).where(Campaign.id.in_(ids))
        )
    }
    usable = _usable(session, list(texts))
    done = _done_counts(session, list(texts))
    out: dict[int, CampaignResults] = {}
    for campaign_id in (i for i in ids if i in texts):
        rows = usable[campaign_id]
        problem = None
        try:
            objectives = read_objectives(texts[campaign_id], f"campaign {campaign_id}")
        except StoredObjectivesError as exc:
            objectives, problem = {}, str(exc)
        bests = {
            name: _rank(name, obj.measure, obj.canonical_goal, rows)
            for name, obj in objectives.items()
        }
        measures = {}
        for measure in measured().values():
            goal = next(
                (b.goal for b in bests.values() if b.measure == measure.name), measure.natural_goal
            )
            measures[measure.name] = _rank(measure.name, measure.name, goal, rows)
        out[campaign_id] = CampaignResults(
            campaign_id, done.get(campaign_id, 0), bests, measures, problem
        )
    return out
