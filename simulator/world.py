"""The virtual lab: one physical world behind the device simulators.

The pump simulators say how fast each stock flows, the photoreactor simulator how bright
the LED is and how warm the coil, the valves where liquid goes. The world turns that into
liquid moving through the flow path (:mod:`.fluidics`), the photochemistry of every plug
while it sits in the irradiated coil (:mod:`.photochem` through a reaction preset), the
back-pressure the HPLC pump reads, and the FID the NMR simulator writes when asked for a
spectrum, synthesised from what actually sits in the flow cell during the acquisition.

The world advances on the shared clock in a background task and whenever a device is
asked about it, so it is consistent at any simulation speed.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robochem.simulator.fluidics import CellContents, FlowPath, Inlet, standard_path
from robochem.simulator.nmr_synth import synthesize_fid
from robochem.simulator.photochem import ReactorConditions
from robochem.simulator.reactions import Preset, model_for, nmr_signals

log = logging.getLogger("robochem.simulator.world")

#: Wall seconds between background updates; simulated step = this x clock speed.
TICK_WALL_S = 0.02
#: Cell contents are remembered this long (simulated s) to average over an acquisition.
HISTORY_S = 4 * 3600.0
#: Start mixes whose light-exposure trajectory is kept (per reactor conditions).
TRAJECTORIES_KEPT = 64


@dataclass
class ScheduledFault:
    """A fault that starts at ``at_s`` simulated seconds after the world started."""

    kind: str  # "lamp_degradation" | "blockage" | "lamp_failure"
    at_s: float
    params: dict[str, Any] = field(default_factory=dict)


FAULT_KINDS = ("lamp_degradation", "blockage", "lamp_failure")


def parse_fault(text: str) -> ScheduledFault:
    """``KIND@SECONDS[:key=value,...]``, e.g. ``blockage@1800:segment=transfer,factor=1e5``."""
    head, _, params_text = text.partition(":")
    kind, at, seconds = head.partition("@")
    if kind not in FAULT_KINDS or not at:
        raise ValueError(
            f"fault {text!r}: expected KIND@SECONDS[:key=value,...] with KIND one of "
            f"{', '.join(FAULT_KINDS)}"
        )
    try:
        at_s = float(seconds)
    except ValueError:
        raise ValueError(f"fault {text!r}: {seconds!r} is not a number of seconds") from None
    params: dict[str, Any] = {}
    for item in filter(None, params_text.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"fault {text!r}: {item!r} is not key=value")
        try:
            params[key] = float(value)
        except ValueError:
            params[key] = value
    return ScheduledFault(kind, at_s, params)


@dataclass(frozen=True)
class WorldLayout:
    """Which simulator plays which part of the flow path."""

    #: pump device name -> stock name (a preset stock), or "solvent"
    pumps: Mapping[str, str]
    #: the pump whose stock is chosen by ``selector_valve`` (position -> stock name)
    selected_pump: str | None = None
    selector_valve: str | None = None
    selector_positions: Mapping[str, str] = field(default_factory=dict)
    collection_valve: str | None = None
    collect_position: str = "2"
    reactor: str = "reactor"
    nmr: str = "nmr"
    pressure_pumps: tuple[str, ...] = ()  # pumps with a sensor: they read the line pressure


class VirtualLab:
    """Couples the device simulators of a running platform through one flow path."""

    def __init__(
        self,
        servers: Mapping[str, Any],
        preset: Preset,
        layout: WorldLayout,
        *,
        seed: int = 0,
        path: FlowPath | None = None,
        faults: list[ScheduledFault] | None = None,
        phase_error: bool = True,
    ) -> None:
        self.servers = dict(servers)
        self.preset = preset
        self.layout = layout
        self.rng = np.random.default_rng(seed)
        self.phase_error = phase_error
        nmr = self.servers[layout.nmr]
        self.clock = nmr.clock
        self.path = path or standard_path(
            reactor_ml=preset.reactor_volume_ml, tube_id_mm=preset.inner_diameter_mm
        )
        self.stocks = {s.name: dict(s.species) for s in preset.stocks}
        self.stocks["solvent"] = {}
        for pump in layout.pumps:
            self.path.add_inlet(Inlet(pump, {}))
        self.path.fill({})
        self.faults = list(faults or [])
        self.started_at = self.clock.now()
        self._last = self.started_at
        self._history_t: deque[float] = deque()
        self._history: deque[CellContents] = deque()
        self._react_cache: dict[tuple[float, float], Callable[..., dict[str, float]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._updating = False
        self.lamp_factor = 1.0
        self._hook_devices()

    # -- wiring ----------------------------------------------------------------------
    def _hook_devices(self) -> None:
        reactor = self.servers[self.layout.reactor]
        reactor.wavelength_nm = round(self.preset.wavelength_nm)
        reactor.photon_flux_full_umol_s = self.preset.full_flux_umol_s
        for name in self.layout.pressure_pumps:
            self.servers[name].pressure_source = lambda _flow: self.pressure_bar(update=True)
        self.servers[self.layout.nmr].spectrum_source = self.spectrum
        # A command that changes where liquid flows (pump rate, start/stop, a valve) first
        # brings the world to its instant, so the interval before it keeps the old state
        # (a tick is 20 ms of wall time, 20 s of simulated time at x1000).
        valves = (self.layout.collection_valve, self.layout.selector_valve)
        for name in (*self.layout.pumps, *valves):
            if name is not None and name in self.servers:
                self._update_before_commands(self.servers[name])

    def _update_before_commands(self, server: Any) -> None:
        handle = server.handle

        def handle_at_now(request: bytes) -> bytes | None:
            self.update()
            return handle(request)

        server.handle = handle_at_now

    # -- reading the devices ---------------------------------------------------------
    def _flow_ml_min(self, name: str) -> float:
        sim = self.servers[name]
        if hasattr(sim, "pumps"):  # Harvard chain: the pump at address 0
            sim.update()
            return max(0.0, sim.pumps[0].flow_ml_min)
        if hasattr(sim, "update"):
            sim.update()
        return max(0.0, float(sim.flow_ml_min))

    def _stock_of(self, pump: str) -> str:
        if pump == self.layout.selected_pump and self.layout.selector_valve:
            position = str(self.servers[self.layout.selector_valve].position)
            return self.layout.selector_positions.get(position, "solvent")
        return self.layout.pumps[pump]

    def reactor_conditions(self) -> ReactorConditions:
        """What the coil experiences now (light read back from the LED, temperature)."""
        reactor = self.servers[self.layout.reactor]
        flux = reactor.photon_flux_umol_s * self.lamp_factor
        return ReactorConditions(
            temperature_c=reactor.temperature_c,
            photon_flux_umol_s=flux,
            wavelength_nm=self.preset.wavelength_nm,
            irradiated_volume_ml=self.preset.reactor_volume_ml,
            inner_diameter_mm=self.preset.inner_diameter_mm,
            led_fwhm_nm=self.preset.led_fwhm_nm,
        )

    def _react_fn(self, cond: ReactorConditions) -> Callable[..., dict[str, float]]:
        # Same function object while conditions are unchanged (to 0.05 degC and 0.01 umol/s),
        # so the flow path keeps deferring exposure instead of flushing every tick.
        key = (round(cond.temperature_c * 20) / 20, round(cond.photon_flux_umol_s, 2))
        fn = self._react_cache.get(key)
        if fn is None:
            rounded = ReactorConditions(
                temperature_c=key[0],
                photon_flux_umol_s=key[1],
                wavelength_nm=cond.wavelength_nm,
                irradiated_volume_ml=cond.irradiated_volume_ml,
                inner_diameter_mm=cond.inner_diameter_mm,
                led_fwhm_nm=cond.led_fwhm_nm,
            )
            preset = self.preset
            # Plugs that entered with the same mix differ only in how long they saw the
            # light (steady state: every plug), so one integration with dense output serves
            # them all. Integrating each plug alone made a world update cost tens of ms,
            # tens of simulated seconds at x1000 by which pump commands drifted apart.
            trajectories: dict[
                tuple[tuple[str, float], ...], tuple[float, Callable[[float], dict[str, float]]]
            ] = {}

            def react(conc: dict[str, float], dt_s: float) -> dict[str, float]:
                catalyst = _catalyst_in(preset, conc)
                if catalyst is None:
                    return conc  # no photocatalyst: nothing absorbs, nothing happens
                if dt_s <= 0.0:
                    return conc
                key = tuple(sorted(conc.items()))
                known = trajectories.get(key)
                if known is None or known[0] < dt_s:
                    if len(trajectories) >= TRAJECTORIES_KEPT:
                        del trajectories[next(iter(trajectories))]
                    horizon = max(1.5 * dt_s, 2.0 * known[0] if known else 0.0)
                    model = model_for(preset, catalyst)
                    known = (horizon, model.trajectory(conc, horizon, rounded))
                    trajectories[key] = known
                return known[1](dt_s)

            self._react_cache = {key: react}
            fn = react
        return fn

    # -- time ------------------------------------------------------------------------
    def update(self) -> None:
        """Advance the world to the shared clock's now."""
        now = self.clock.now()
        if now <= self._last or self._updating:
            return  # a device read inside this update asks again: it gets the same instant
        self._updating = True
        try:
            self._advance(now)
        finally:
            self._updating = False

    def _advance(self, now: float) -> None:
        self._apply_faults(now)
        for pump in self.layout.pumps:
            inlet = self.path.inlets[pump]
            inlet.stock = self.stocks[self._stock_of(pump)]
            inlet.flow_ml_min = self._flow_ml_min(pump)
        if self.layout.collection_valve:
            position = str(self.servers[self.layout.collection_valve].position)
            self.path.collect = position == self.layout.collect_position
        react = self._react_fn(self.reactor_conditions())
        self.path.step(now - self._last, react)
        self._last = now
        for name in self.layout.pressure_pumps:
            self.servers[name].update()  # a blockage trips the pump at its PMAX
        self._remember(now, self.path.contents("nmr_cell"))

    def _remember(self, now: float, contents: CellContents) -> None:
        self._history_t.append(now)
        self._history.append(contents)
        while self._history_t and self._history_t[0] < now - HISTORY_S:
            self._history_t.popleft()
            self._history.popleft()

    def _apply_faults(self, now: float) -> None:
        elapsed = now - self.started_at
        factor = 1.0
        for fault in self.faults:
            if elapsed < fault.at_s:
                continue
            if fault.kind == "lamp_degradation":
                # Output falls by ``percent_per_hour`` of its initial value, never below 0.
                lost = fault.params.get("percent_per_hour", 20.0) * (elapsed - fault.at_s) / 3600
                factor *= max(0.0, 1.0 - lost / 100.0)
            elif fault.kind == "blockage":
                self.path.blockage[fault.params.get("segment", "transfer")] = float(
                    fault.params.get("factor", 1e5)
                )
            elif fault.kind == "lamp_failure":
                self.servers[self.layout.reactor].set_lamp_failure(True)
            else:
                raise ValueError(f"unknown fault kind {fault.kind!r}")
        self.lamp_factor = factor

    async def run(self) -> None:
        while True:
            try:
                self.update()
            except Exception:  # a bug in the world must not take the lab's servers down
                log.exception("virtual lab update failed")
            await asyncio.sleep(TICK_WALL_S)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="virtual-lab")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- what the devices see --------------------------------------------------------
    def pressure_bar(self, *, update: bool = False) -> float:
        """Pressure at the pumps; ``update`` first brings the world to now (device reads)."""
        if update:
            self.update()
        return self.path.pressure_bar()

    def cell_average(self, start: float, end: float) -> tuple[dict[str, float], float]:
        """Mean composition and liquid fraction in the NMR cell over [start, end]."""
        self.update()
        times = list(self._history_t)
        lo = bisect.bisect_left(times, start)
        hi = bisect.bisect_right(times, end)
        samples = list(self._history)[lo:hi] or [self.path.contents("nmr_cell")]
        total: dict[str, float] = {}
        for s in samples:
            for k, c in s.concentrations.items():
                total[k] = total.get(k, 0.0) + c * s.liquid_fraction
        fraction = sum(s.liquid_fraction for s in samples) / len(samples)
        n = len(samples)
        # Signal scales with the liquid present: a bubble in the coil lowers every peak.
        return {k: v / n for k, v in total.items()}, fraction

    def spectrum(self, context: dict[str, Any]) -> np.ndarray:
        """The Spinsolve simulator's ``spectrum_source``: an FID of the cell's contents."""
        scans = int(context.get("scans", 1))
        rep = _repetition_s(context)
        end = float(context.get("time", self.clock.now()))
        conc, _ = self.cell_average(end - scans * rep, end)
        nucleus = context.get("nucleus", "1H")
        signals = nmr_signals(self.preset, conc) if nucleus == self.preset.nucleus else []
        nmr = self.servers[self.layout.nmr]
        return synthesize_fid(
            signals,
            nucleus=nucleus,
            b1_freq_mhz=float(context["b1_freq_mhz"]),
            n_points=int(context["n_points"]),
            bandwidth_hz=float(context["bandwidth_hz"]),
            center_ppm=float(context["center_ppm"]),
            linewidth_hz=float(context.get("line_width_hz", 1.0)),
            noise_sd=nmr.noise_sd / math.sqrt(max(1, scans)),
            phase0_deg=float(self.rng.uniform(-180, 180)) if self.phase_error else 0.0,
            shift_drift_ppm=float(self.rng.normal(0.0, 0.01)) if self.phase_error else 0.0,
            rng=self.rng,
        )


def _repetition_s(context: Mapping[str, Any]) -> float:
    options = context.get("options") or {}
    try:
        return float(options.get("RepetitionTime", 10.0))
    except (TypeError, ValueError):
        return 10.0


def _catalyst_in(preset: Preset, conc: Mapping[str, float]) -> str | None:
    """The preset's catalyst choice present in a plug (the one with most catalyst)."""
    best, best_c = None, 0.0
    for choice, cat in preset.catalysts.items():
        c = conc.get(cat.species, 0.0) + conc.get(cat.spent, 0.0)
        if c > best_c:
            best, best_c = choice, c
    return best
