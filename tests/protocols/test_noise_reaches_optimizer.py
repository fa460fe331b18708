"""The NMR analysis's yield standard deviation reaches the optimiser (issue 23, item 3): the
engine tells ``{"yield": ..., "yield_sd": ...}``, and a campaign rebuilt from the database
after a restart is told the same spreads."""

from __future__ import annotations

import dataclasses

from engine_kit import Env
from protocol_helpers import BASE, edit
from sqlalchemy import select

from robochem.analysis.result import AnalysisResult
from robochem.optimizer import Optimizer
from robochem.protocols.load import parse_protocol
from robochem.protocols.measures import MEASURES, objective_values
from robochem.protocols.runtime.engine import EngineState
from robochem.protocols.runtime.records import latest_accepted
from robochem.storage.models import Experiment


def _result(**values: float | None) -> AnalysisResult:
    base = AnalysisResult.rejected([], source={}, software={})
    return dataclasses.replace(base, status="ok", **values)


def test_every_sd_field_names_a_real_analysis_field() -> None:
    fields = {f.name for f in dataclasses.fields(AnalysisResult)}
    with_sd = {name: m.sd_field for name, m in MEASURES.items() if m.sd_field is not None}
    assert with_sd == {"yield": "yield_sd_percent"}
    assert set(with_sd.values()) <= fields


def test_the_yield_comes_with_its_sd_and_other_measures_without() -> None:
    text = edit(
        "yield: {goal: maximize}",
        "yield: {goal: maximize}\n  rate: {measure: throughput, goal: minimize}",
    )
    objectives = parse_protocol(text, "p.yaml").objectives
    result = _result(yield_percent=71.2, yield_sd_percent=0.8, throughput_mmol_h=1.25)
    assert objective_values(objectives, result) == {"yield": 71.2, "yield_sd": 0.8, "rate": 1.25}
    # no spread reported (or a meaningless one): no key, the optimiser learns the noise
    for sd in (None, float("nan"), -1.0):
        quiet = _result(yield_percent=71.2, yield_sd_percent=sd, throughput_mmol_h=1.25)
        assert objective_values(objectives, quiet) == {"yield": 71.2, "rate": 1.25}
    # a rejected spectrum stays a failure, whatever spread it carried
    rejected = dataclasses.replace(result, status="rejected")
    assert objective_values(objectives, rejected) is None


def test_the_optimiser_accepts_what_objective_values_gives() -> None:
    protocol = parse_protocol(BASE, "p.yaml")
    opt = Optimizer.from_spec(protocol.to_optimizer_spec())
    values = objective_values(
        protocol.objectives, _result(yield_percent=71.2, yield_sd_percent=0.8)
    )
    point = opt.ask(1)
    opt.tell(point, [values])
    assert opt.observations[-1]["sd"] == {"yield": 0.8}


async def test_an_engine_campaign_tells_the_optimiser_the_stored_yield_sd(env: Env) -> None:
    cid = env.campaign(budget=2)
    engine = env.engine(cid, exit_on_pause=True)
    assert await engine.run() is EngineState.COMPLETED, engine.reason
    with env.db.session() as s:
        done = s.scalars(
            select(Experiment)
            .where(Experiment.campaign_id == cid, Experiment.status == "done")
            .order_by(Experiment.index)
        ).all()
        stored = []
        for exp in done:
            m = latest_accepted(exp)
            assert m is not None
            stored.append(m.result["yield_sd_percent"])
    assert len(stored) == 2 and all(sd is not None and sd > 0 for sd in stored), stored

    # the live path: what commit_outcome told (and stored as the optimiser's state)
    state = env.campaign_row(cid).optimizer_state
    assert [o.get("sd") for o in state["observations"]] == [{"yield": sd} for sd in stored]
    told = [
        e.payload["objectives"]
        for e in env.bus.history(campaign_id=cid, kinds=("experiment.done",))
    ]
    assert [t["yield_sd"] for t in told] == stored

    # the resume path: rebuilt from the stored rows, the same observations, spreads included
    rebuilt = engine.records.rebuild_optimizer()
    assert rebuilt.observations == Optimizer.from_state(state).observations
