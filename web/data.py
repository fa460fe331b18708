"""Read-side queries for the API and the pages (plain SQLAlchemy, synchronous).

Campaign fields only the engine knows come from ``CampaignProgress`` when an engine is
attached, else from keys the engine leaves in ``campaigns.summary``:
``planned_experiments`` (int), ``current_step`` (str) and ``eta`` (ISO time).
"""

from __future__ import annotations

import datetime as dt
import io
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

from robochem.analysis.result import natural_line_width_hz, standard_line_width_hz
from robochem.protocols.measures import measured
from robochem.storage.db import Database
from robochem.storage.models import (
    Campaign,
    CampaignStatus,
    Event,
    Experiment,
    ExperimentStatus,
    Measurement,
)
from robochem.storage.results import CampaignResults, best_results
from robochem.web import schemas
from robochem.web.lab import CampaignProgress

ACTIVE = (CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.STOPPING,
          CampaignStatus.ABORTING)  # fmt: skip
#: the stored measure columns (the registry of robochem.protocols.measures)
MEASURES = tuple(m.column for m in measured().values() if m.column is not None)


class NotFoundError(LookupError):
    pass


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _counts(session: Any, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    if not campaign_ids:
        return counts
    rows = session.execute(
        select(Experiment.campaign_id, Experiment.status, func.count())
        .where(Experiment.campaign_id.in_(campaign_ids))
        .group_by(Experiment.campaign_id, Experiment.status)
    )
    for campaign_id, status, n in rows:
        counts[campaign_id][status] = n
    return counts


def _best_yields(session: Any, campaign_ids: list[int]) -> dict[int, float]:
    """The best yield of each campaign, under its yield objective's goal (the highest when
    no objective is on the yield): the definition of :mod:`robochem.storage.results`."""
    out = {}
    for cid, results in best_results(session, campaign_ids).items():
        value = results.measures["yield"].value
        if value is not None:
            out[cid] = value
    return out


def best(database: Database, campaign_id: int) -> CampaignResults:
    """The best value of each objective of a campaign, under its goal."""
    with database.session() as session:
        found = best_results(session, [campaign_id]).get(campaign_id)
    if found is None:
        raise NotFoundError(f"no campaign {campaign_id}")
    return found


def _summary(
    campaign: Campaign,
    counts: dict[str, int],
    best: float | None,
    progress: CampaignProgress | None,
) -> dict[str, Any]:
    done = counts.get(ExperimentStatus.DONE, 0)
    planned = (progress.planned_experiments if progress else None) or _int_or_none(
        (campaign.summary or {}).get("planned_experiments")
    )
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "status_reason": campaign.status_reason,
        "created_at": campaign.created_at,
        "started_at": campaign.started_at,
        "ended_at": campaign.ended_at,
        "experiments_total": sum(counts.values()),
        "experiments_done": done,
        "experiments_failed": counts.get(ExperimentStatus.FAILED, 0),
        "planned_experiments": planned,
        "progress": min(1.0, done / planned) if planned else None,
        "best_yield_percent": best,
    }


def status(database: Database) -> tuple[schemas.CampaignCounts, list[schemas.ActiveCampaign]]:
    with database.session() as session:
        by_status = dict(
            session.execute(select(Campaign.status, func.count()).group_by(Campaign.status)).all()
        )
        active = list(session.scalars(select(Campaign).where(Campaign.status.in_(ACTIVE))))
        counts = _counts(session, [c.id for c in active])
        out = [
            schemas.ActiveCampaign(
                id=c.id,
                name=c.name,
                status=c.status,
                experiments_done=counts[c.id].get(ExperimentStatus.DONE, 0),
                planned_experiments=_int_or_none((c.summary or {}).get("planned_experiments")),
            )
            for c in active
        ]
    return schemas.CampaignCounts(total=sum(by_status.values()), by_status=by_status), out


def campaigns(database: Database) -> list[schemas.CampaignSummary]:
    with database.session() as session:
        rows = list(session.scalars(select(Campaign).order_by(Campaign.id.desc())))
        ids = [c.id for c in rows]
        counts, best = _counts(session, ids), _best_yields(session, ids)
        return [
            schemas.CampaignSummary(**_summary(c, counts[c.id], best.get(c.id), None)) for c in rows
        ]


def campaign(
    database: Database, campaign_id: int, progress: CampaignProgress | None = None
) -> schemas.CampaignDetail:
    with database.session() as session:
        row = session.get(Campaign, campaign_id)
        if row is None:
            raise NotFoundError(f"no campaign {campaign_id}")
        counts = _counts(session, [row.id])[row.id]
        best = _best_yields(session, [row.id]).get(row.id)
        base = _summary(row, counts, best, progress)
        experiments = list(row.experiments)
        variables = sorted({k for e in experiments for k in (e.conditions or {})})
        running = [e for e in experiments if e.status == ExperimentStatus.RUNNING]
        current = running[-1] if running else None
        if progress and progress.current_experiment_id:
            current = session.get(Experiment, progress.current_experiment_id) or current
        summary = dict(row.summary or {})
        step = (progress.current_step if progress else None) or summary.get("current_step")
        eta = (progress.eta if progress else None) or _parse_time(summary.get("eta"))
        if eta is None and row.status == CampaignStatus.RUNNING:
            eta = _estimate_eta(experiments, base["planned_experiments"])
        return schemas.CampaignDetail(
            **base,
            protocol_sha256=row.protocol_sha256,
            summary=summary,
            variables=variables,
            current=schemas.CurrentActivity(
                experiment_id=current.id if current else None,
                experiment_index=current.index if current else None,
                step=step if isinstance(step, str) else None,
            ),
            eta=eta,
        )


def _estimate_eta(experiments: list[Experiment], planned: int | None) -> dt.datetime | None:
    """Mean duration of finished experiments times the number still to run."""
    durations = [
        (e.ended_at - e.started_at).total_seconds()
        for e in experiments
        if e.status == ExperimentStatus.DONE and e.started_at and e.ended_at
    ]
    if not planned or not durations:
        return None
    remaining = max(0, planned - len(durations))
    mean_s = sum(durations) / len(durations)
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=remaining * mean_s)


def protocol(database: Database, campaign_id: int) -> tuple[str, str]:
    with database.session() as session:
        row = session.get(Campaign, campaign_id)
        if row is None:
            raise NotFoundError(f"no campaign {campaign_id}")
        return row.name, row.protocol_text


def _latest_measurements(session: Any, experiment_ids: list[int]) -> dict[int, Measurement]:
    latest: dict[int, Measurement] = {}
    if not experiment_ids:
        return latest
    stmt = (
        select(Measurement)
        .where(Measurement.experiment_id.in_(experiment_ids))
        .order_by(Measurement.id)
    )
    for m in session.scalars(stmt):
        latest[m.experiment_id] = m  # later ids win: a re-analysis replaces the first
    return latest


def _shimmed(session: Any, campaign_id: int) -> set[int]:
    """Experiments the engine shimmed the NMR for, successfully, before running them."""
    rows = session.execute(
        select(Event.experiment_id, Event.payload)
        .where(Event.campaign_id == campaign_id, Event.kind == "nmr.shimmed")
    )
    return {exp_id for exp_id, payload in rows if exp_id is not None and (payload or {}).get("ok")}


def _experiment_row(
    e: Experiment, m: Measurement | None, shimmed: set[int] | frozenset[int] = frozenset()
) -> dict[str, Any]:
    return {
        "id": e.id,
        "index": e.index,
        "status": e.status,
        "status_reason": e.status_reason,
        "conditions": dict(e.conditions or {}),
        "repeat_of_id": e.repeat_of_id,
        "started_at": e.started_at,
        "ended_at": e.ended_at,
        "measurement_id": m.id if m else None,
        "yield_percent": m.yield_percent if m else None,
        "conversion_percent": m.conversion_percent if m else None,
        "throughput_mmol_h": m.throughput_mmol_h if m else None,
        "qc_status": m.qc_status if m else None,
        "qc_reasons": list(m.qc_reasons or []) if m else [],
        "nmr_line_width_hz": standard_line_width_hz(m.result or {}) if m else None,
        "nmr_shimmed_before": e.id in shimmed,
    }


def experiments(database: Database, campaign_id: int) -> list[schemas.ExperimentRow]:
    with database.session() as session:
        if session.get(Campaign, campaign_id) is None:
            raise NotFoundError(f"no campaign {campaign_id}")
        rows = list(
            session.scalars(
                select(Experiment)
                .where(Experiment.campaign_id == campaign_id)
                .order_by(Experiment.index)
            )
        )
        latest = _latest_measurements(session, [e.id for e in rows])
        shimmed = _shimmed(session, campaign_id)
        return [
            schemas.ExperimentRow(**_experiment_row(e, latest.get(e.id), shimmed)) for e in rows
        ]


def experiment(database: Database, experiment_id: int) -> schemas.ExperimentDetail:
    with database.session() as session:
        e = session.get(Experiment, experiment_id)
        if e is None:
            raise NotFoundError(f"no experiment {experiment_id}")
        m = _latest_measurements(session, [e.id]).get(e.id)
        result = None
        if m is not None:
            result = {k: v for k, v in (m.result or {}).items() if k != "plot"}
        return schemas.ExperimentDetail(
            **_experiment_row(e, m, _shimmed(session, e.campaign_id)),
            campaign_id=e.campaign_id,
            result=result,
        )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def spectrum(database: Database, experiment_id: int) -> schemas.Spectrum:
    with database.session() as session:
        e = session.get(Experiment, experiment_id)
        if e is None:
            raise NotFoundError(f"no experiment {experiment_id}")
        m = _latest_measurements(session, [e.id]).get(e.id)
        plot = (m.result or {}).get("plot") if m else None
        if m is None or not isinstance(plot, dict):
            raise NotFoundError(f"experiment {experiment_id} has no stored spectrum")
        result = m.result or {}
        integrals = result.get("integrals") or {}
        snr = result.get("snr") or {}
        broadening = _number((result.get("processing") or {}).get("line_broadening_hz")) or 0.0
        regions = []
        for region in plot.get("regions") or []:
            if not isinstance(region, dict):
                continue
            name = str(region.get("name", ""))
            report = integrals.get(name) if isinstance(integrals, dict) else None
            report = report if isinstance(report, dict) else {}
            regions.append(
                schemas.SpectrumRegion(
                    name=name,
                    role=region.get("role"),
                    lo=_number(region.get("lo")),
                    hi=_number(region.get("hi")),
                    integral=_number(report.get("integral")),
                    concentration_M=_number(report.get("concentration_M")),
                    snr=_number(snr.get(name)) if isinstance(snr, dict) else None,
                    line_width_hz=natural_line_width_hz(_number(report.get("fwhm_hz")), broadening),
                )
            )
        return schemas.Spectrum(
            experiment_id=e.id,
            measurement_id=m.id,
            nucleus=result.get("nucleus"),
            ppm=[_number(v) for v in plot.get("ppm") or []],
            intensity=[_number(v) for v in plot.get("intensity") or []],
            regions=regions,
            yield_percent=m.yield_percent,
            conversion_percent=m.conversion_percent,
            qc_status=m.qc_status,
            qc_reasons=list(m.qc_reasons or []),
        )


def events(
    database: Database, campaign_id: int, *, after_id: int = 0, limit: int = 200
) -> list[schemas.EventOut]:
    with database.session() as session:
        if session.get(Campaign, campaign_id) is None:
            raise NotFoundError(f"no campaign {campaign_id}")
        stmt = (
            select(Event)
            .where(Event.campaign_id == campaign_id, Event.id > after_id)
            .order_by(Event.id.desc())
            .limit(limit)
        )
        rows = list(session.scalars(stmt))
        return [
            schemas.EventOut(
                id=r.id,
                time=r.time,
                source=r.source,
                kind=r.kind,
                payload=dict(r.payload or {}),
                campaign_id=r.campaign_id,
                experiment_id=r.experiment_id,
            )
            for r in reversed(rows)
        ]


def latest_event_id(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.max(Event.id))) or 0


# -- export ----------------------------------------------------------------------------


def export_frame(database: Database, campaign_id: int) -> Any:
    """One row per experiment: index, status, each condition, each measure, QC."""
    import pandas as pd

    rows = experiments(database, campaign_id)
    variables = sorted({k for r in rows for k in r.conditions})
    records = []
    for r in rows:
        record: dict[str, Any] = {"experiment": r.index, "experiment_id": r.id, "status": r.status}
        record.update({v: r.conditions.get(v) for v in variables})
        record.update({m: getattr(r, m) for m in MEASURES})
        record["qc_status"] = r.qc_status
        record["qc_reasons"] = "; ".join(str(x) for x in r.qc_reasons)
        # ISO text: Excel cannot hold timezone-aware times, and text round-trips exactly.
        record["started_at"] = r.started_at.isoformat() if r.started_at else None
        record["ended_at"] = r.ended_at.isoformat() if r.ended_at else None
        records.append(record)
    columns = ["experiment", "experiment_id", "status", *variables, *MEASURES,
               "qc_status", "qc_reasons", "started_at", "ended_at"]  # fmt: skip
    return pd.DataFrame.from_records(records, columns=columns)


def export_csv(database: Database, campaign_id: int) -> str:
    return export_frame(database, campaign_id).to_csv(index=False)


def export_xlsx(database: Database, campaign_id: int) -> bytes:
    import pandas as pd

    frame = export_frame(database, campaign_id)
    detail = campaign(database, campaign_id)
    about = pd.DataFrame(
        [
            ("campaign", detail.name),
            ("campaign_id", detail.id),
            ("status", detail.status),
            ("protocol_sha256", detail.protocol_sha256),
            ("exported_at", dt.datetime.now(dt.UTC).isoformat()),
        ],
        columns=["field", "value"],
    )
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name="experiments", index=False)
        about.to_excel(writer, sheet_name="campaign", index=False)
    return buffer.getvalue()
