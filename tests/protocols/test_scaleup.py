"""Scale-up end to end: a campaign near the HAT optimum, then `robochem scale-up`'s protocol
run by the engine against the in-process simulated lab (drivers over sockets, x1000).

Acceptance (issue 9): the run collects the requested amount within 5 % (by the NMR-based
report and by the virtual lab's own count of product in the flask), a lamp degrading during
collection is detected within 2 NMR checks, and every run ends in safe state with its report
stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import engine_kit
import pytest
from engine_kit import ROOT, simulated_env
from sqlalchemy import select

from robochem.protocols.load import parse_protocol
from robochem.protocols.runtime.engine import EngineState, create_campaign
from robochem.protocols.runtime.scaleup import choose_experiment
from robochem.protocols.scaleup import scale_up_protocol_text
from robochem.simulator.reactions import get_preset
from robochem.simulator.world import ScheduledFault
from robochem.storage.models import Campaign, Experiment, Measurement


def near_optimum_protocol() -> str:
    """hat-alkylation narrowed to the neighbourhood of its documented yield optimum
    (11.19 min, 70.5 %, 1.73 mol%, 0.0848 M, 26.7 degC): the 'optimised' campaign."""
    text = (ROOT / "protocols" / "examples" / "hat-alkylation.yaml").read_text()
    swaps = {
        "{type: residence_time, low: 1 min, high: 20 min, log: true}": (
            "{type: residence_time, low: 11 min, high: 11.4 min}"
        ),
        "{type: light, low: 0 %, high: 100 %}": "{type: light, low: 68 %, high: 72 %}",
        "low: 0.5 mol%, high: 5 mol%": "low: 1.7 mol%, high: 1.75 mol%",
        "low: 0.05 M, high: 0.3 M": "low: 0.084 M, high: 0.086 M",
        "temperature: {type: temperature, low: 10 degC, high: 60 degC}": (
            "temperature: {type: temperature, low: 26 degC, high: 27 degC}"
        ),
        "budget: 30": "budget: 1",
        "initial_experiments: 8": "initial_experiments: 1",
    }
    for old, new in swaps.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


class Env(engine_kit.Env):
    """The engine tests' lab, with a scale-up's helpers."""

    async def optimised_campaign(self) -> int:
        cid = create_campaign(self.db, near_optimum_protocol(), platform=self.platform)
        assert await self.engine(cid, exit_on_pause=True).run() is EngineState.COMPLETED
        return cid

    def scale_up(self, source: int, amount: str, **kwargs: Any) -> tuple[int, str]:
        from robochem.protocols.units import parse_quantity

        chosen = choose_experiment(self.db, source, "yield")
        text = scale_up_protocol_text(
            chosen, parse_quantity(amount, "amount"), self.platform, **kwargs
        )
        return create_campaign(self.db, text, platform=self.platform), text

    def product_in_flask_mmol(self) -> float:
        product = get_preset("hat-alkylation").product
        return 1000.0 * self.sim.world.path.moles_collected.get(product, 0.0)  # mol -> mmol

    def summary(self, cid: int) -> dict[str, Any]:
        with self.db.session() as s:
            row = s.get(Campaign, cid)
            assert row is not None
            return dict(row.summary)


@pytest.fixture
async def env(
    tmp_path: Path, sqlite_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[Env]:
    marker = request.node.get_closest_marker("sim_speed")
    speed = marker.args[0] if marker else 1000
    async with simulated_env(Env, tmp_path, sqlite_url, speed=speed, seed=5) as env:
        yield env


def checks(env: Env, cid: int) -> list[dict[str, Any]]:
    return [e.payload for e in env.bus.history(campaign_id=cid, kinds=("scaleup.check",))]


async def test_scale_up_collects_the_requested_amount(env: Env) -> None:
    source = await env.optimised_campaign()
    cid, text = env.scale_up(source, "1 mmol")
    protocol = parse_protocol(text, "scale-up.yaml", env.platform)
    assert protocol.scale_up is not None and protocol.scale_up.source_campaign == source
    before = env.product_in_flask_mmol()
    state = await asyncio.wait_for(env.engine(cid).run(), 280)
    assert state is EngineState.COMPLETED
    env.assert_safe()
    report = env.summary(cid)["scale_up"]
    assert report["status"] == "completed", report
    # the engine's report (from the NMR yields) and the product really in the flask
    assert report["product_mmol"] == pytest.approx(1.0, rel=0.05)
    in_flask = env.product_in_flask_mmol() - before
    assert in_flask == pytest.approx(1.0, rel=0.05), (in_flask, report)
    assert report["collected_ml"] == pytest.approx(env.sim.world.path.volume_collected_ml, rel=0.03)
    phases = [
        e.payload["phase"] for e in env.bus.history(campaign_id=cid, kinds=("scaleup.phase",))
    ]
    assert phases[:3] == ["startup", "steady", "collecting"] and phases[-1] == "flushed"
    # the simulated platform shims at the start: before the start-up, not with liquid flowing
    kinds = [e.kind for e in env.bus.history(
        campaign_id=cid, kinds=("nmr.shim", "nmr.shimmed", "scaleup.phase"))]
    assert kinds[:3] == ["nmr.shim", "nmr.shimmed", "scaleup.phase"], kinds
    measured = checks(env, cid)
    startup = [c for c in measured if c["phase"] == "startup"]
    assert len(startup) >= 3 and all(c["yield"] is not None for c in startup)
    assert any(c["phase"] == "collecting" for c in measured)
    (final,) = env.bus.history(campaign_id=cid, kinds=("scaleup.report",))
    assert final.payload["productivity_mmol_h"] > 0
    assert final.payload["space_time_yield_mmol_l_h"] == pytest.approx(
        final.payload["productivity_mmol_h"] / 0.0039
    )
    with env.db.session() as s:
        stored = list(
            s.scalars(select(Measurement).join(Experiment).where(Experiment.campaign_id == cid))
        )
    assert len(stored) >= len(measured)  # every NMR check stored with its spectrum
    print(
        f"\nrequested 1 mmol: report {report['product_mmol']:.4f} mmol, flask "
        f"{in_flask:.4f} mmol, {report['collected_ml']:.2f} mL in "
        f"{report['collection_s'] / 60:.1f} min, {len(measured)} NMR checks"
    )


# x300: the pause variant holds the flask to 5 % of 1 mmol across a drift segment, and at
# x1000 a loaded machine's wall-clock stalls stretch the checks by minutes of simulated time
# (a clean-clone CI run: 0.934 mmol)
@pytest.mark.sim_speed(300)
@pytest.mark.parametrize("policy", ["stop", "pause"])
async def test_lamp_degradation_is_detected_within_two_checks(env: Env, policy: str) -> None:
    source = await env.optimised_campaign()
    cid, _ = env.scale_up(source, "1 mmol", on_drift=policy)
    engine = env.engine(cid)
    world = env.sim.world
    onset: dict[str, float] = {}

    def degrade(event: Any) -> None:
        # 6 min into the collection the lamp starts to fail: -4 % of its output per minute
        if event.kind == "scaleup.phase" and event.payload["phase"] == "collecting":
            at = env.sim.clock.now() + 360.0
            onset["t"] = at
            world.faults.append(
                ScheduledFault(
                    "lamp_degradation", at - world.started_at, {"percent_per_hour": 240.0}
                )
            )

    before = env.product_in_flask_mmol()
    with env.bus.subscribe(lambda e: e.kind == "scaleup.phase") as sub:
        task = asyncio.create_task(engine.run())
        while "t" not in onset:
            degrade(await asyncio.wait_for(sub.get(), 120))
    if policy == "stop":
        assert await asyncio.wait_for(task, 280) is EngineState.COMPLETED
        assert "yield drift" in (engine.reason or "")
    else:
        await asyncio.wait_for(_paused(env, cid, task), 280)
        assert "yield drift" in (engine.reason or "")
    env.assert_safe()
    after = [c for c in checks(env, cid) if c["t_s"] > onset["t"]]
    (event,) = env.bus.history(campaign_id=cid, kinds=("scaleup.drift",))
    detecting = len([c for c in after if c["t_s"] <= event.payload["t_s"]])
    assert 1 <= detecting <= 2, after
    report = env.summary(cid)["scale_up"]
    assert report["segments"][0]["ended"] == "drift"
    first = report["product_mmol"]
    assert first < 1.0
    if policy == "stop":
        assert report["status"] == "stopped (drift)"
        (final,) = env.bus.history(campaign_id=cid, kinds=("scaleup.report",))
        assert final.payload["product_mmol"] == first
    else:
        # the lamp is replaced; resume starts up again and collects what is missing
        world.faults.clear()
        await engine.resume()
        assert await asyncio.wait_for(task, 280) is EngineState.COMPLETED
        env.assert_safe()
        report = env.summary(cid)["scale_up"]
        assert report["status"] == "completed"
        assert (engine.reason or "").startswith("scale-up completed: ")
        assert [s["ended"] for s in report["segments"]] == ["drift", "target"]
        assert report["product_mmol"] == pytest.approx(1.0, rel=0.05)
        in_flask = env.product_in_flask_mmol() - before
        assert in_flask == pytest.approx(1.0, rel=0.05), (in_flask, report)
    print(
        f"\nlamp degradation ({policy}): detected at NMR check {detecting} after the onset; "
        f"{first:.3f} mmol collected before the drift; in the end {report['product_mmol']:.3f}"
        f" mmol (report), {env.product_in_flask_mmol() - before:.3f} mmol in the flask"
    )


async def _paused(env: Env, cid: int, task: asyncio.Task[Any]) -> bool:
    while not task.done():
        events = env.bus.history(campaign_id=cid, kinds=("campaign.state",))
        if events and events[-1].payload["to"] == EngineState.PAUSED:
            return True
        await asyncio.sleep(0.1)
    raise AssertionError(f"the run ended ({task.result()}) instead of pausing")


async def test_syringe_refill_pauses_the_run_then_resume_completes(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A 2 mL catalyst syringe lasts about 75 min at the optimum: the run collects until the
    syringe is nearly empty, pauses for the refill, and resumes with a new start-up."""
    from robochem.protocols.scaleup import Chosen

    # x300, not x1000: the flask is held to 5 % of the target, and at x1000 a wall-clock
    # stall of a third of a second on a loaded machine is 5 minutes of collection (a
    # clean-clone CI run ended with 1.267 mmol).
    async with simulated_env(
        Env, tmp_path, sqlite_url, speed=300, seed=7,
        device_options={"pump-catalyst": {"syringe_volume_ml": 2.0}},
    ) as env:  # fmt: skip
        platform, db = env.platform, env.db
        optimum = {
            "residence_time": 671.2, "light": 70.48, "catalyst_loading": 0.017264,
            "concentration": 0.0848, "temperature": 26.73,
        }  # fmt: skip
        chosen = Chosen(1, "hat", near_optimum_protocol(), 0, optimum, 75.0, 1.33, {})
        text = scale_up_protocol_text(chosen, 1.2, platform)
        text = text.replace("max_time: 110 min", "max_time: 60 min")
        text = text.replace("check_every: 12 min", "check_every: 6 min")
        cid = create_campaign(db, text, platform=platform)
        engine = env.engine(cid)
        task = asyncio.create_task(engine.run())
        await asyncio.wait_for(_paused(env, cid, task), 280)
        assert "refill the syringes of pump-catalyst (catalyst)" in (engine.reason or "")
        env.assert_safe()
        report = env.summary(cid)["scale_up"]
        assert report["segments"][0]["ended"] == "refill" and report["product_mmol"] < 1.2
        await engine.resume()
        assert await asyncio.wait_for(task, 280) is EngineState.COMPLETED
        env.assert_safe()
        report = env.summary(cid)["scale_up"]
        assert [s["ended"] for s in report["segments"]] == ["refill", "target"]
        assert report["product_mmol"] == pytest.approx(1.2, rel=0.05)
        # the syringe never ran dry (without catalyst the flask would hold less product)
        assert env.product_in_flask_mmol() == pytest.approx(1.2, rel=0.05)


async def test_interlock_during_the_start_up_pauses_then_resume_completes(env: Env) -> None:
    from robochem.protocols.scaleup import Chosen

    optimum = {
        "residence_time": 671.2, "light": 70.48, "catalyst_loading": 0.017264,
        "concentration": 0.0848, "temperature": 26.73,
    }  # fmt: skip
    chosen = Chosen(1, "hat", near_optimum_protocol(), 0, optimum, 75.0, 1.33, {})
    text = scale_up_protocol_text(chosen, 0.2, env.platform)
    cid = create_campaign(env.db, text, platform=env.platform)
    engine = env.engine(cid)
    reactor = env.sim.servers["reactor"]
    with env.bus.subscribe(lambda e: e.kind == "scaleup.check") as sub:
        task = asyncio.create_task(engine.run())
        await asyncio.wait_for(sub.get(), 60)  # the first start-up check
        reactor.set_lamp_failure(True)
        await asyncio.wait_for(_paused(env, cid, task), 60)
    assert (engine.reason or "").startswith("interlock lamp"), engine.reason
    (trip,) = env.bus.history(campaign_id=cid, kinds=("interlock.tripped",))
    assert trip.payload["kind"] == "lamp"
    reactor.set_lamp_failure(False)
    assert (await env.lab.safe_state()).ok  # the operator makes the lamp safe again
    env.assert_safe()
    await engine.resume()
    assert await asyncio.wait_for(task, 280) is EngineState.COMPLETED
    env.assert_safe()
    report = env.summary(cid)["scale_up"]
    assert [s["ended"] for s in report["segments"]] == ["interrupted", "target"]
    assert report["product_mmol"] == pytest.approx(0.2, rel=0.05)


async def test_abort_during_collection_counts_what_reached_the_flask(env: Env) -> None:
    """An abort between two NMR checks: what flowed into the flask after the last check is
    counted (at that check's yield) up to the moment the pumps stopped."""
    source = await env.optimised_campaign()
    cid, _ = env.scale_up(source, "1 mmol")
    engine = env.engine(cid)
    before = env.product_in_flask_mmol()

    def collecting_check(event: Any) -> bool:
        return event.kind == "scaleup.check" and event.payload.get("phase") == "collecting"

    with env.bus.subscribe(collecting_check) as sub:
        task = asyncio.create_task(engine.run())
        await asyncio.wait_for(sub.get(), 200)
    # about half-way to the next check (checks come every residence time, ~11 min here)
    await env.sim.clock.sleep(300.0)
    await engine.abort("operator abort")
    assert await asyncio.wait_for(task, 120) is EngineState.ABORTED
    env.assert_safe()
    report = env.summary(cid)["scale_up"]
    assert report["status"] == "aborted"
    (segment,) = report["segments"]
    assert segment["after_last_check_s"] > 120.0
    in_flask = env.product_in_flask_mmol() - before
    volume = env.sim.world.path.volume_collected_ml
    # At x1000 the pumps' stop commands take tens to hundreds of simulated seconds (each
    # a wall-clock round trip): the report states that spread, and must be right within it.
    flow = report["flow_ml_min"] * segment["end_uncertainty_s"] / 60.0
    rate = segment["product_mmol"] / segment["collect_s"] * segment["end_uncertainty_s"]
    assert abs(report["collected_ml"] - volume) <= 0.03 * volume + flow, (volume, segment)
    assert abs(report["product_mmol"] - in_flask) <= 0.05 * in_flask + rate, (in_flask, segment)
    assert 0.0 < report["product_mmol"] < 1.0
    print(
        f"\nabort during collection: report {report['product_mmol']:.3f} mmol "
        f"({segment['after_last_check_s']:.0f} s after the last check, end +- "
        f"{segment['end_uncertainty_s']:.0f} s), flask {in_flask:.3f} mmol"
    )
