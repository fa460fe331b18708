"""Virtual lab benchmark: scripted steady-state experiments through the real drivers.

Each experiment sets the pumps (flow rates from the conditions), the catalyst selector,
the reactor temperature and the LED, waits for steady state (three volumes of the line
up to the NMR cell), stops the flow, acquires a 1H/19F spectrum and analyses it. The
yield from the spectrum is compared with the kinetic model's noise-free prediction for
the conditions the pumps actually delivered. The NMR is shimmed as the engine would,
by the simulated platform's ``fluidics.nmr.shim`` policy (``--no-shim``: never).

    .venv/bin/python -m benchmarks.virtual_lab [--experiments 20] [--speed 300] [--no-shim]

prints one row per experiment, the ratio of simulated to wall time (figure to reach:
>= 100 for a 20-experiment campaign on 2 cores) and the time of one 10-minute step of the
hat-alkylation kinetic model (a few ms; at most 50 ms, or the lab falls behind its clock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robochem.analysis import AnalysisConfig, AnalysisResult, analyze_folder
from robochem.analysis.result import standard_line_width_hz
from robochem.clock import Clock, set_clock
from robochem.drivers import open_device
from robochem.protocols.platform import NmrShim
from robochem.protocols.runtime.shim import ShimSchedule
from robochem.simulator.photochem import ReactorConditions
from robochem.simulator.reactions import PRESETS, Preset, get_preset, model_for, predict
from robochem.simulator.runner import SimulatedPlatform

#: Volumes of the flow path from the mixer to the NMR cell (reference platform).
LINE_TO_CELL_ML = 0.05 + 0.5 + 0.1


@dataclass
class Outcome:
    conditions: dict[str, Any]
    measured_yield: float | None
    predicted_yield: float
    status: str
    reasons: list[str]
    simulated_s: float
    wall_s: float
    line_width_hz: float | None = None  # the standard's natural line width in the spectrum
    shimmed: bool = False  # the NMR was shimmed before this experiment
    result: AnalysisResult | None = None


def flow_plan(preset: Preset, conditions: Mapping[str, Any]) -> dict[str, float]:
    """Pump rates (mL/min) that make the conditions: substrate, reagent, catalyst, solvent."""
    s = {**preset.fixed, **conditions}
    q = preset.reactor_volume_ml / float(s["residence_time"])
    c_a = float(s["concentration"])
    substrate, reagent, *catalysts = preset.stocks
    choice = str(s["photocatalyst"])
    cat_species = preset.catalysts[choice].species
    cat_stock = next(st for st in catalysts if cat_species in st.species)
    flows = {
        "pump-substrate": c_a * q / substrate.species[preset.substrate],
        "pump-reagent": c_a * float(s["equivalents"]) * q / reagent.species[preset.reagent],
        "pump-catalyst": c_a
        * float(s["catalyst_loading"])
        / 100
        * q
        / cat_stock.species[cat_species],
    }
    flows["pump-solvent"] = q - sum(flows.values())
    if flows["pump-solvent"] < -1e-9:
        raise ValueError(f"infeasible: stocks exceed the total flow {q:.4g} mL/min")
    flows["pump-solvent"] = max(0.0, flows["pump-solvent"])
    return flows


def delivered_conditions(
    preset: Preset, conditions: Mapping[str, Any], flows: Mapping[str, float]
) -> dict[str, Any]:
    """The conditions the pumps actually made (they round flow rates to their resolution)."""
    s = {**preset.fixed, **conditions}
    q = sum(flows.values())
    substrate, reagent, *catalysts = preset.stocks
    cat_species = preset.catalysts[str(s["photocatalyst"])].species
    cat_stock = next(st for st in catalysts if cat_species in st.species)
    c_a = flows["pump-substrate"] * substrate.species[preset.substrate] / q
    out = dict(conditions)
    out["residence_time"] = preset.reactor_volume_ml / q
    if "concentration" in out:
        out["concentration"] = c_a
    if "equivalents" in out:
        out["equivalents"] = flows["pump-reagent"] * reagent.species[preset.reagent] / q / c_a
    out["catalyst_loading"] = (
        100 * flows["pump-catalyst"] * cat_stock.species[cat_species] / q / c_a
    )
    return out


def analysis_config(preset: Preset, c_a: float) -> AnalysisConfig:
    block = preset.analysis_block()
    block["internal_standard"]["concentration"] = f"{c_a * preset.standard_ratio} M"
    block["limiting_reagent"]["concentration"] = f"{c_a} M"
    return AnalysisConfig.model_validate(block)


@contextlib.asynccontextmanager
async def connected(platform: SimulatedPlatform) -> AsyncIterator[dict[str, Any]]:
    devices: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        for name, entry in platform.platform()["devices"].items():
            options = dict(entry.get("options", {}))
            if entry["driver"] == "chemyx-fusion":
                options.setdefault("syringe_volume_ml", 10.0)
            devices[name] = await stack.enter_async_context(
                open_device(entry["driver"], entry["url"], name=name, **options)
            )
        yield devices


async def run_experiment(
    devices: Mapping[str, Any],
    platform: SimulatedPlatform,
    preset: Preset,
    conditions: Mapping[str, Any],
    *,
    volumes: float = 3.0,
) -> Outcome:
    clock = platform.clock
    sim_start, wall_start = clock.now(), time.perf_counter()
    s = {**preset.fixed, **conditions}
    flows = flow_plan(preset, conditions)
    reactor = devices["reactor"]
    await reactor.temperature.set_setpoint(float(s["temperature"]))
    await reactor.temperature.run()
    choice = str(s["photocatalyst"])
    position = list(preset.catalysts).index(choice) + 1
    await devices["valve-catalyst"].set_position(position)
    await devices["valve-collect"].set_position(1)
    set_flows = {}
    for name, rate in flows.items():
        pump = devices[name]
        if rate <= 0:
            await pump.stop()
            set_flows[name] = 0.0
            continue
        set_flows[name] = await pump.set_flow_rate(rate)
        await pump.start()
    light = float(s["light"])
    if light > 0:
        await reactor.light.set_intensity(light)
        await reactor.light.light_on()
    else:
        await reactor.light.light_off()
    q = sum(set_flows.values())
    await clock.sleep(volumes * (preset.reactor_volume_ml + LINE_TO_CELL_ML) / q * 60)
    lamp = await reactor.light.lamp_status()
    if lamp.faults:
        raise RuntimeError(f"lamp fault during the experiment: {', '.join(lamp.faults)}")
    # Stopped flow for the measurement, light off so nothing changes meanwhile.
    for name in flows:
        await devices[name].stop()
    await reactor.light.light_off()
    protocol, options = (
        ("1D EXTENDED+", {"Number": 4, "RepetitionTime": 10, "AcquisitionTime": 3.2})
        if preset.nucleus == "1H"
        else ("1D FLUORINE HDEC", {"Number": 4, "RepetitionTime": 10, "AcquisitionTime": 1.64})
    )
    acquisition = await devices["nmr"].acquire(protocol, options, sample="bench")
    actual = delivered_conditions(preset, conditions, set_flows)
    c_a = float({**preset.fixed, **actual}["concentration"])
    result = await asyncio.to_thread(
        analyze_folder, acquisition.data_folder, analysis_config(preset, c_a)
    )
    expected = predict(preset, {k: actual[k] for k in conditions})["yield"]
    return Outcome(
        dict(conditions),
        result.yield_percent,
        expected,
        result.status,
        list(result.reasons),
        clock.now() - sim_start,
        time.perf_counter() - wall_start,
        standard_line_width_hz(result),
        result=result,
    )


def random_conditions(preset: Preset, rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for var in preset.variables:
        if var.categorical:
            out[var.name] = rng.choice(var.choices)
        elif var.name == "residence_time":
            out[var.name] = rng.uniform(max(var.low, 2.0), var.high)  # type: ignore[arg-type]
        else:
            out[var.name] = rng.uniform(var.low, var.high)  # type: ignore[arg-type]
    return out


async def campaign(
    reaction: str, experiments: int, speed: float, seed: int, *, shim: bool = True
) -> list[Outcome]:
    preset = get_preset(reaction)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        platform = SimulatedPlatform(speed=speed, data_root=Path(tmp), reaction=reaction, seed=seed)
        set_clock(platform.clock)
        policy = platform.platform()["fluidics"]["nmr"].get("shim")
        schedule = ShimSchedule(NmrShim.model_validate(policy)) if shim and policy else None
        async with platform, connected(platform) as devices:
            outcomes = []
            for _ in range(experiments):
                conditions = random_conditions(preset, rng)
                reason = schedule.due(platform.clock.now()) if schedule else None
                if schedule is not None and reason is not None:
                    await devices["nmr"].shim(schedule.policy.method,
                                              sample_reference_ppm=schedule.policy.sample_reference)
                    schedule.done(platform.clock.now())
                try:
                    outcome = await run_experiment(devices, platform, preset, conditions)
                except ValueError:  # infeasible flow plan: draw again
                    continue
                outcome.shimmed = reason is not None
                if schedule is not None and outcome.result is not None:
                    warning = schedule.observe(outcome.result)
                    if warning is not None:
                        print(f"# {warning}")
                outcomes.append(outcome)
            return outcomes


def kinetics_step_ms(repeats: int = 20) -> float:
    """Mean wall time of one 600 s ``advance`` of the hat-alkylation model."""
    model = model_for(PRESETS["hat-alkylation"])
    cond = ReactorConditions(temperature_c=25.0, photon_flux_umol_s=40.0, wavelength_nm=365.0)
    start = {"BMN": 0.1, "THF": 0.5, "TBADT": 0.002}
    model.advance(start, 600.0, cond)  # warm caches
    t0 = time.perf_counter()
    for _ in range(repeats):
        model.advance(start, 600.0, cond)
    return (time.perf_counter() - t0) / repeats * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reaction", default="hat-alkylation")
    parser.add_argument("--experiments", type=int, default=20)
    parser.add_argument("--speed", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-shim", action="store_true",
                        help="never shim the NMR (its lines broaden by 0.1 Hz an hour)")
    args = parser.parse_args(argv)
    wall0 = time.perf_counter()
    clock = Clock(speed=args.speed)
    sim0 = clock.now()
    outcomes = asyncio.run(
        campaign(args.reaction, args.experiments, args.speed, args.seed, shim=not args.no_shim)
    )
    wall = time.perf_counter() - wall0
    simulated = clock.now() - sim0
    print(f"{'#':>3} {'measured %':>10} {'model %':>8} {'error':>6} {'status':>8} {'sim min':>8}"
          f" {'line Hz':>7}")
    errors = []
    for i, o in enumerate(outcomes):
        err = None if o.measured_yield is None else o.measured_yield - o.predicted_yield
        if err is not None:
            errors.append(abs(err))
        measured = "-" if o.measured_yield is None else f"{o.measured_yield:10.2f}"
        print(
            f"{i:>3} {measured:>10} {o.predicted_yield:8.2f} "
            f"{'-' if err is None else f'{err:+6.2f}':>6} {o.status:>8} {o.simulated_s / 60:8.1f}"
            f" {'-' if o.line_width_hz is None else f'{o.line_width_hz:7.2f}':>7}"
            + ("  (shimmed before)" if o.shimmed else "")
        )
    print()
    print(f"experiments            {len(outcomes)}")
    print(f"simulated time         {simulated / 3600:.2f} h")
    print(f"wall time              {wall:.1f} s")
    print(f"simulated / wall       {simulated / wall:.0f}  (figure to reach: >= 100)")
    print(f"kinetics, 600 s step   {kinetics_step_ms():.1f} ms  (figure to reach: <= 50)")
    if errors:
        print(f"|yield error| mean/max {sum(errors) / len(errors):.2f} / {max(errors):.2f} %")
    return 0 if math.isfinite(wall) else 1


if __name__ == "__main__":
    raise SystemExit(main())
