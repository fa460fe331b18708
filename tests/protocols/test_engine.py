"""The campaign engine against the in-process simulated lab (drivers over sockets, x1000).

The test protocol keeps to a corner of the HAT preset where the simulated spectra pass QC
(short residence times give low yields whose spectra the analysis rejects) and runs 1-3
experiments, so each test takes a few wall seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Any

import pytest
from engine_kit import (
    PUMPS,
    ROOT,
    Env,
    engine_protocol,
    state_event,
    step_event,
    wait_event,
)
from sqlalchemy import select

from robochem.analysis import AnalysisResult
from robochem.events import EventBus
from robochem.optimizer import Optimizer
from robochem.protocols.load import parse_platform, parse_protocol
from robochem.protocols.platform import Platform
from robochem.protocols.runtime import engine as engine_module
from robochem.protocols.runtime.engine import (
    TRANSITIONS,
    Engine,
    EngineState,
    IllegalTransition,
    Policy,
    create_campaign,
)
from robochem.protocols.runtime.lab import Lab
from robochem.protocols.steps import (
    Acquire,
    Analyze,
    SetFlow,
    SetLight,
    Wait,
    plan_experiment,
    timing_model,
)
from robochem.storage.db import Database
from robochem.storage.models import Campaign, CampaignStatus, Experiment, Measurement

# -- no devices -------------------------------------------------------------------------------


def test_transition_table_is_closed_and_terminal_states_are_final() -> None:
    for state, targets in TRANSITIONS.items():
        assert targets <= set(EngineState), state
    for final in (EngineState.COMPLETED, EngineState.ABORTED, EngineState.FAILED):
        assert TRANSITIONS[final] == frozenset()
    assert EngineState.PAUSED not in TRANSITIONS[EngineState.IDLE]


class _NoDevices(Lab):
    def __init__(self, platform: Platform) -> None:
        super().__init__(platform, {})


async def test_illegal_transitions_are_refused(sqlite_url: str) -> None:
    platform = parse_platform((ROOT / "protocols/platforms/simulated.yaml").read_text())
    db = Database(sqlite_url)
    bus = EventBus(db)
    cid = create_campaign(db, engine_protocol(), platform=platform)
    engine = Engine(db, bus, _NoDevices(platform), cid)
    with pytest.raises(IllegalTransition, match="idle to running"):
        await engine.resume()
    with pytest.raises(IllegalTransition):
        await engine.request_pause()
    with pytest.raises(IllegalTransition):
        await engine.stop()
    await engine.abort("changed my mind")
    assert engine.state is EngineState.ABORTING
    with pytest.raises(IllegalTransition, match="aborting to running"):
        await engine.resume()
    with db.session() as s:
        assert s.get(Campaign, cid).status == CampaignStatus.ABORTING  # committed first


def test_plan_and_timing_model() -> None:
    platform = parse_platform((ROOT / "protocols/platforms/simulated.yaml").read_text())
    protocol = parse_protocol(engine_protocol(), platform=platform)
    point = {
        "residence_time": 420.0,
        "light": 90.0,
        "catalyst_loading": 0.045,
        "concentration": 0.11,
        "temperature": 26.0,
    }
    plan = plan_experiment(protocol, platform, point)
    kinds = [s.kind for s in plan.steps]
    assert kinds[0] == "SetValve"  # collection to waste before anything flows
    assert kinds.index("SetLight") < kinds.index("Wait") < kinds.index("Acquire")
    # the light is on before any stock flows, so all of the mix sees it from the coil's inlet
    assert kinds.index("WaitTemperature") < kinds.index("SetLight") < kinds.index("StartPump")
    assert isinstance(plan.steps[kinds.index("Acquire") + 1], Analyze)
    # stopped flow and light off while the spectrum is taken
    before_acquire = kinds[: kinds.index("Acquire")]
    assert before_acquire[-1] == "LightOff" and before_acquire.count("StopPump") >= 4
    wait = next(s for s in plan.steps if isinstance(s, Wait))
    assert wait.seconds == pytest.approx(plan.recipe.wait_s)
    assert next(s for s in plan.steps if isinstance(s, SetLight)).percent == 90.0
    assert plan.flow_ml_min == pytest.approx(60 * 3.9 / 420)
    timing = timing_model(plan.steps, use_ml=plan.use_ml)
    assert (
        timing.duration_s
        > wait.seconds + next(s for s in plan.steps if isinstance(s, Acquire)).estimate_s
    )
    assert set(timing.use_ml) == {"substrate", "donor", "catalyst", "MeCN"}


def test_slug_stocks_start_and_stop_as_one_group() -> None:
    """A slug holds its stocks in the recipe's ratios only if their pumps start and stop
    together; the engine sends a run of pump steps at once (pump_group), so the plan must
    keep each phase's pump steps contiguous, and the assembly wait must end in one."""
    from robochem.protocols.steps import StartPump, StopPump, pump_group

    platform = parse_platform((ROOT / "protocols/platforms/simulated.yaml").read_text())
    text = (ROOT / "protocols/examples/cf3-trifluoromethylation.yaml").read_text()
    protocol = parse_protocol(text, platform=platform)
    point = {
        "residence_time": 150.0,
        "light": 90.0,
        "equivalents": 2.5,
        "catalyst_loading": 0.004,
        "temperature": 30.0,
    }
    steps = plan_experiment(protocol, platform, point).steps
    first = next(i for i, s in enumerate(steps) if isinstance(s, StartPump))
    end = pump_group(steps, first)
    starts = [s.pump for s in steps[first:end] if isinstance(s, StartPump)]
    assert sorted(starts) == sorted(PUMPS)  # every stock and the solvent in one group
    # the rates went out before the light, so the timed group holds only the starts
    assert not any(isinstance(s, SetFlow) for s in steps[first:end])
    assert {s.pump for s in steps[:first] if isinstance(s, SetFlow)} == set(PUMPS)
    assert isinstance(steps[first - 1], SetLight)
    waits = [i for i, s in enumerate(steps) if isinstance(s, Wait)]
    assemble, push = waits[0], waits[1]
    # the assembly wait ends in one group: stocks stop, the solvent carries at Q
    after = steps[assemble + 1 : pump_group(steps, assemble + 1)]
    assert {s.pump for s in after if isinstance(s, StopPump)} == set(PUMPS) - {"pump-solvent"}
    assert any(isinstance(s, SetFlow) and s.pump == "pump-solvent" for s in after)
    assert pump_group(steps, assemble + 1) == push
    # the push wait ends in one group stopping every pump
    stops = steps[push + 1 : pump_group(steps, push + 1)]
    assert {s.pump for s in stops if isinstance(s, StopPump)} == set(PUMPS)


# -- against the simulated lab ----------------------------------------------------------------


async def test_campaign_runs_end_to_end(env: Env) -> None:
    cid = env.campaign(budget=2)
    engine = env.engine(cid, exit_on_pause=True)
    assert await engine.run() is EngineState.COMPLETED, engine.reason
    env.assert_safe()
    exps = env.experiments(cid)
    told = [
        e
        for e in exps
        if e.status == "done" and e.id not in {x.repeat_of_id for x in exps}
    ]
    assert len(told) == 2
    assert [e.index for e in exps] == list(range(len(exps)))
    with env.db.session() as s:
        measurements = list(s.scalars(select(Measurement)))
    assert measurements and all(m.raw_path and m.raw_sha256 for m in measurements)
    paths = [m.raw_path for m in measurements]
    assert all(await asyncio.to_thread(lambda: [os.path.isdir(p) for p in paths]))
    row = env.campaign_row(cid)
    assert row.status == CampaignStatus.COMPLETED and row.ended_at is not None
    assert row.optimizer_state and len(row.optimizer_state["observations"]) == 2
    inventory = row.summary["inventory"]
    assert inventory["substrate"] < 150.0 - 0.1  # priming and two experiments used
    kinds = {e.kind for e in env.bus.history(campaign_id=cid, limit=10000)}
    assert {"campaign.state", "experiment.running", "measurement", "step", "safe_state"} <= kinds


async def test_pause_at_checkpoint_then_resume(env: Env) -> None:
    cid = env.campaign(budget=2)
    engine = env.engine(cid)
    task = asyncio.create_task(engine.run())
    await wait_event(env.bus, step_event("Wait", 0), task)
    await engine.request_pause()
    assert engine.state is EngineState.PAUSING
    await wait_event(env.bus, state_event(EngineState.PAUSED), task)
    # The running experiment finished first: a deferred pause loses nothing.
    exps = env.experiments(cid)
    assert len(exps) == 1 and exps[0].status == "done", exps[0].status_reason
    assert env.campaign_row(cid).status == CampaignStatus.PAUSED
    env.assert_safe()
    await engine.resume()
    assert await asyncio.wait_for(task, 120) is EngineState.COMPLETED
    assert len(env.experiments(cid)) == 2


async def test_abort_mid_wait_reaches_safe_state(env: Env) -> None:
    cid = env.campaign(budget=2)
    engine = env.engine(cid)
    task = asyncio.create_task(engine.run())
    await wait_event(env.bus, step_event("Wait", 0), task)
    await env.sim.clock.sleep(20)
    assert env.sim.servers["reactor"].led_enabled  # the experiment is under way
    await engine.abort("operator")
    assert await asyncio.wait_for(task, 30) is EngineState.ABORTED
    env.assert_safe()
    (exp,) = env.experiments(cid)
    assert exp.status == "interrupted" and "aborted" in exp.status_reason
    row = env.campaign_row(cid)
    assert row.status == CampaignStatus.ABORTED
    events = env.bus.history(campaign_id=cid, kinds=("safe_state",))
    assert events and not events[-1].payload["failed"]


async def _fault_then_resume(
    env: Env,
    inject: Callable[[], None],
    clear: Callable[[], None],
    expect: str,
    heal: str | None = None,
) -> None:
    cid = env.campaign(budget=1, initial=1)
    engine = env.engine(cid)
    task = asyncio.create_task(engine.run())
    await wait_event(env.bus, step_event("Wait", 0), task)
    inject()
    event = await wait_event(env.bus, lambda e: e.kind == "interlock.tripped", task)
    assert event.payload["kind"] == expect, event.payload
    await wait_event(env.bus, state_event(EngineState.PAUSED), task)
    assert engine.state is EngineState.PAUSED and expect in (engine.reason or "")
    row = env.campaign_row(cid)
    assert row.status == CampaignStatus.PAUSED and expect in row.status_reason
    clear()
    if heal:
        # The faulty device may have missed the stop: the failure was recorded, and the
        # operator makes it safe before resuming.
        report = env.bus.history(campaign_id=cid, kinds=("safe_state",))[-1].payload
        assert any(name.startswith(heal) for name in report["failed"]), report
        assert (await env.lab.safe_state()).ok
    env.assert_safe()
    await engine.resume()
    assert await asyncio.wait_for(task, 120) is EngineState.COMPLETED
    first, repeat, *more = env.experiments(cid)
    assert first.status == "interrupted" and repeat.repeat_of_id == first.id
    assert repeat.conditions == first.conditions
    # a repeat whose spectrum failed QC is repeated once more, by policy
    assert all(e.repeat_of_id == repeat.id and e.conditions == first.conditions for e in more)
    assert len(more) <= 1
    (observation,) = env.campaign_row(cid).optimizer_state["observations"]
    assert observation["point"] == first.conditions


async def test_lamp_failure_pauses_then_resume_repeats(env: Env) -> None:
    reactor = env.sim.servers["reactor"]
    await _fault_then_resume(
        env, lambda: reactor.set_lamp_failure(True), lambda: reactor.set_lamp_failure(False), "lamp"
    )


async def test_overpressure_pauses_then_resume_repeats(env: Env) -> None:
    blockage = env.sim.world.path.blockage
    await _fault_then_resume(
        env,
        lambda: blockage.__setitem__("transfer", 1e6),
        lambda: blockage.pop("transfer", None),
        "overpressure",
    )


async def test_dropped_replies_pause_then_resume_repeats(env: Env) -> None:
    faults = env.sim.servers["pump-substrate"].faults
    await _fault_then_resume(
        env,
        lambda: faults.inject("no_reply", count=None),
        faults.clear,
        "communication",
        heal="pump-substrate",
    )


async def test_rejected_spectrum_is_remeasured_then_repeated_then_pauses(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rejected(path: Any, config: Any, flow_rate_ml_min: Any = None) -> AnalysisResult:
        return AnalysisResult.rejected(
            ["internal standard not found"], source={"path": str(path)}, software={}
        )

    monkeypatch.setattr(engine_module, "analyze_folder", rejected)
    cid = env.campaign(budget=1, initial=1)
    engine = env.engine(cid, policy=Policy(), exit_on_pause=True)
    assert await engine.run() is EngineState.PAUSED
    assert "rejected" in (engine.reason or "")
    first, repeat = env.experiments(cid)
    assert first.status == repeat.status == "failed"
    assert repeat.repeat_of_id == first.id
    kinds = [e.kind for e in env.bus.history(campaign_id=cid, limit=10000)]
    assert kinds.count("retry.remeasure") == 2 and kinds.count("measurement") == 4
    env.assert_safe()
    # the failure was told once (the superseded first attempt was not)
    assert engine.optimizer is not None and engine.optimizer.n_experiments == 1


async def test_low_stock_pauses_with_the_stock_named_then_refill_resumes(env: Env) -> None:
    cid = env.campaign(budget=1, initial=1)
    engine = env.engine(cid, exit_on_pause=True)
    engine.refill("donor", 0.05)
    assert await engine.run() is EngineState.PAUSED
    assert "donor: 0.05 mL left" in (engine.reason or "")
    assert env.experiments(cid)[0].status == "queued"  # nothing was pumped
    low = env.bus.history(campaign_id=cid, kinds=("inventory.low",))
    assert low and "donor" in low[0].payload["message"]
    engine = env.engine(cid)
    engine.refill("donor", 50.0)
    assert await engine.run() is EngineState.COMPLETED
    (exp,) = env.experiments(cid)
    assert exp.status == "done", exp.status_reason


async def test_resume_after_crash_repeats_the_running_experiment(env: Env) -> None:
    text = engine_protocol(budget=2)
    cid = create_campaign(env.db, text, platform=env.platform)
    protocol = parse_protocol(text, platform=env.platform)
    # What a killed engine leaves behind: one experiment running, its ask committed.
    opt = Optimizer.from_spec(protocol.to_optimizer_spec())
    (point,) = opt.ask(1)
    with env.db.session() as s:
        s.add(Experiment(campaign_id=cid, index=0, conditions=point, status="running"))
        row = s.get(Campaign, cid)
        row.status = CampaignStatus.RUNNING
        row.optimizer_state = opt.state()
    engine = env.engine(cid)
    assert await engine.run() is EngineState.COMPLETED
    exps = env.experiments(cid)
    assert [e.index for e in exps] == [0, 1, 2]
    assert exps[0].status == "interrupted" and "crash" in exps[0].status_reason
    assert exps[1].repeat_of_id == exps[0].id and exps[1].conditions == point
    assert exps[2].repeat_of_id is None and exps[2].conditions != point
    observations = env.campaign_row(cid).optimizer_state["observations"]
    assert [o["point"] for o in observations] == [exps[1].conditions, exps[2].conditions]
    resumed = env.bus.history(campaign_id=cid, kinds=("campaign.resumed",))
    assert resumed[0].payload["repeated"] == [{"interrupted": 0, "repeat": 1}]
    # A finished campaign is never run again.
    with pytest.raises(RuntimeError, match="completed"):
        await env.engine(cid).run()
    env.assert_safe()


async def test_safe_state_tries_every_device_even_when_one_fails(env: Env) -> None:
    env.sim.servers["pump-substrate"].faults.inject("drop", count=None)
    for pump in ("pump-solvent", "pump-reagent"):
        await env.lab.pump(pump).set_flow_rate(0.5)
        await env.lab.pump(pump).start()
    report = await env.lab.safe_state(temperature=True)
    assert "pump-substrate: stop" in report.failed
    assert {"pump-solvent: stop", "pump-reagent: stop", "valve-collect: waste (1)"} <= set(
        report.done
    )
    env.sim.servers["pump-substrate"].faults.clear()
    with contextlib.suppress(Exception):
        await env.lab.pump("pump-substrate").stop()
    env.assert_safe()


async def test_immediate_pause_interrupts_and_resume_repeats(env: Env) -> None:
    cid = env.campaign(budget=1, initial=1)
    engine = env.engine(cid)
    task = asyncio.create_task(engine.run())
    await wait_event(env.bus, step_event("Wait", 0), task)
    await engine.request_pause(immediate=True, reason="operator: now")
    await wait_event(env.bus, state_event(EngineState.PAUSED), task)
    env.assert_safe()
    first, repeat = env.experiments(cid)
    assert first.status == "interrupted" and "operator: now" in first.status_reason
    assert repeat.status == "queued" and repeat.repeat_of_id == first.id
    await engine.resume()
    assert await asyncio.wait_for(task, 120) is EngineState.COMPLETED
    repeated = env.experiments(cid)[1]
    assert repeated.status == "done", repeated.status_reason


async def test_pump_stall_pauses_then_resume_repeats(env: Env) -> None:
    pump = env.sim.servers["pump-catalyst"]
    stopped = 0  # the Fusion's status code; an operator clears the jam before resuming
    await _fault_then_resume(env, pump.stall, lambda: setattr(pump, "state", stopped), "pump_stall")


async def test_nmr_error_is_measured_again_then_trips(env: Env) -> None:
    nmr = env.sim.servers["nmr"]
    nmr.inject_acquisition_fault("acquisition_error", count=1)
    cid = env.campaign(budget=1, initial=1)
    engine = env.engine(cid, exit_on_pause=True)
    assert await engine.run() is EngineState.COMPLETED, engine.reason
    errors = env.bus.history(campaign_id=cid, kinds=("nmr.error",))
    assert len(errors) == 1 and errors[0].payload["attempt"] == 1
    # an NMR that keeps failing trips the interlock: safe state, paused, repeated on resume
    nmr.inject_acquisition_fault("acquisition_error", count=None)
    cid = env.campaign(budget=1, initial=1)
    engine = env.engine(cid, exit_on_pause=True)
    assert await engine.run() is EngineState.PAUSED
    assert "nmr" in (engine.reason or "")
    first, repeat = env.experiments(cid)
    assert first.status == "interrupted" and repeat.status == "queued"
    env.assert_safe()


async def test_nmr_is_shimmed_first_and_again_once_its_lines_broaden(env: Env) -> None:
    # The simulated platform shims before the first experiment and when the standard's
    # line is wider than 2 Hz. A magnet drifting this fast broadens the line past 2 Hz
    # within one experiment, so a re-shim follows, does not keep the next line narrow,
    # and the engine warns (and would not shim for line width again: test_shim.py).
    nmr = env.sim.servers["nmr"]
    nmr.shim_drift_hz_per_hour = 8.0
    cid = env.campaign(budget=2, initial=2)
    engine = env.engine(cid, exit_on_pause=True)
    assert await engine.run() is EngineState.COMPLETED, engine.reason
    shims = env.bus.history(campaign_id=cid, kinds=("nmr.shim",))
    assert [e.payload["index"] for e in shims] == [0, 1]
    assert shims[0].payload["reason"] == "before the first experiment"
    assert shims[1].payload["reason"].startswith("the internal standard's line is")
    width = float(shims[1].payload["reason"].split(" is ")[1].split(" Hz")[0])
    assert width > 2.0
    shimmed = env.bus.history(campaign_id=cid, kinds=("nmr.shimmed",))
    assert [e.payload["line_width_hz"] for e in shimmed] == [pytest.approx(0.9, abs=0.01)] * 2
    (warning,) = env.bus.history(campaign_id=cid, kinds=("nmr.shim_warning",))
    assert "no more re-shims for line width" in warning.payload["message"]
    assert sum(b"<QuickShimRequest" in raw for raw in nmr.received) == 2


async def test_a_shim_that_leaves_the_nmr_not_ready_pauses_then_is_tried_again(
    env: Env,
) -> None:
    nmr = env.sim.servers["nmr"]
    nmr.stable_lock = False
    cid = env.campaign(budget=1, initial=1)
    engine = env.engine(cid)
    task = asyncio.create_task(engine.run())
    await wait_event(env.bus, state_event(EngineState.PAUSED), task)
    assert "not ready" in (engine.reason or "") and "StableLock false" in (engine.reason or "")
    first, repeat = env.experiments(cid)
    assert first.status == "interrupted" and repeat.status == "queued"
    assert not env.bus.history(campaign_id=cid, kinds=("measurement",))
    env.assert_safe()
    nmr.stable_lock = True  # the operator sees to the lock, then resumes
    await engine.resume()
    assert await asyncio.wait_for(task, 120) is EngineState.COMPLETED
    shims = env.bus.history(campaign_id=cid, kinds=("nmr.shimmed",))
    assert [e.payload["ok"] for e in shims] == [False, True]
    assert env.experiments(cid)[1].status == "done"


async def test_dropped_connection_pauses_then_resume_repeats(env: Env) -> None:
    faults = env.sim.servers["pump-solvent"].faults
    await _fault_then_resume(
        env,
        lambda: faults.inject("drop", count=None),
        faults.clear,
        "communication",
        heal="pump-solvent",
    )
