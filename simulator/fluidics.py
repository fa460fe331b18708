"""Liquid moving through the platform: a flow path of volumes carrying plugs.

The path is a chain of segments (mixer -> reactor coil -> transfer line -> NMR flow cell
-> outlet tubing -> waste or collection) with known volumes. Every step, the pumps push a
new plug into the mixer whose composition is the flow-weighted mix of their stocks; all
plugs move downstream by the pumped volume (plug flow: incompressible, no dispersion),
so residence time *emerges* from the pump rates rather than being set. A gas inlet makes
gas plugs, which is how gas-segmented slugs are built.

Plugs in the irradiated reactor are handed to a reaction callback for the time they spend
there. That call is deferred: exposure accumulates on the plug and is integrated in one go
when the plug leaves the reactor, when its contents are read, or when the reaction
callback changes (new light or temperature). Piecewise-constant conditions make this
exact, and it costs one integration per plug instead of one per plug per step.

Pressure follows Hagen-Poiseuille over each segment (flow x viscosity x length /
d^4) plus the back-pressure regulator; a blockage multiplies one segment's resistance.

Amounts are in mol, volumes in mL, concentrations in mol/L, flow in mL/min, time in s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

#: React a plug: (concentrations mol/L, seconds in the light) -> new concentrations.
ReactFn = Callable[[dict[str, float], float], dict[str, float]]


@dataclass(frozen=True)
class Segment:
    name: str
    volume_ml: float
    inner_diameter_mm: float = 0.8
    irradiated: bool = False

    @property
    def length_m(self) -> float:
        area_m2 = math.pi * (self.inner_diameter_mm * 1e-3 / 2) ** 2
        return self.volume_ml * 1e-6 / area_m2


@dataclass
class Plug:
    volume_ml: float
    concentrations: dict[str, float]  # mol/L; empty for gas
    tail_ml: float  # volume coordinate of the upstream edge (0 = mixer inlet)
    entered_at_s: float
    gas: bool = False
    reactor_time_s: float = 0.0
    tag: str | None = None  # e.g. the experiment a slug belongs to
    #: Light exposure not yet applied to ``concentrations`` (see FlowPath.flush_reactions).
    pending_s: float = 0.0

    @property
    def head_ml(self) -> float:
        return self.tail_ml + self.volume_ml

    def moles(self) -> dict[str, float]:
        return {k: c * self.volume_ml / 1000.0 for k, c in self.concentrations.items()}


@dataclass
class Inlet:
    """A pump feeding a stock (or gas) into the mixer."""

    name: str
    stock: dict[str, float]  # mol/L
    flow_ml_min: float = 0.0
    gas: bool = False


@dataclass
class CellContents:
    concentrations: dict[str, float]  # mean over the liquid in the cell, mol/L
    liquid_fraction: float  # 1 = full of liquid; a bubble lowers it
    tags: tuple[str, ...] = ()


@dataclass
class FlowPath:
    segments: list[Segment]
    viscosity_mpa_s: float = 0.34  # acetonitrile at 25 degC
    bpr_bar: float = 0.0  # back-pressure regulator at the outlet
    max_plug_fraction: float = 1 / 50  # plug size limit relative to the reactor volume
    inlets: dict[str, Inlet] = field(default_factory=dict)
    plugs: list[Plug] = field(default_factory=list)  # upstream (newest) last
    collect: bool = False  # outlet valve: False = waste, True = collection
    blockage: dict[str, float] = field(default_factory=dict)  # segment -> resistance factor
    time_s: float = 0.0
    moles_in: dict[str, float] = field(default_factory=dict)
    moles_to_waste: dict[str, float] = field(default_factory=dict)
    moles_collected: dict[str, float] = field(default_factory=dict)
    volume_collected_ml: float = 0.0
    exited: list[Plug] = field(default_factory=list)  # kept for inspection (bounded)

    def __post_init__(self) -> None:
        names = [s.name for s in self.segments]
        if len(set(names)) != len(names):
            raise ValueError(f"segment names must be unique: {names}")
        self._bounds: dict[str, tuple[float, float]] = {}
        start = 0.0
        for seg in self.segments:
            if seg.volume_ml <= 0:
                raise ValueError(f"segment {seg.name}: volume must be > 0 mL")
            self._bounds[seg.name] = (start, start + seg.volume_ml)
            start += seg.volume_ml
        self.total_volume_ml = start
        self._react_fn: ReactFn | None = None
        reactor = [s for s in self.segments if s.irradiated]
        self._reactor_volume = sum(s.volume_ml for s in reactor) or self.total_volume_ml
        self._reactor_end = max((self._bounds[s.name][1] for s in reactor), default=0.0)
        self.max_plug_ml = self._reactor_volume * self.max_plug_fraction

    # -- set-up -------------------------------------------------------------------
    def bounds(self, segment: str) -> tuple[float, float]:
        return self._bounds[segment]

    def add_inlet(self, inlet: Inlet) -> None:
        self.inlets[inlet.name] = inlet

    def set_flow(self, inlet: str, ml_min: float) -> None:
        if ml_min < 0:
            raise ValueError(f"{inlet}: flow must be >= 0 mL/min, got {ml_min}")
        self.inlets[inlet].flow_ml_min = ml_min

    def fill(self, concentrations: Mapping[str, float]) -> None:
        """Prime the whole line with one liquid (e.g. solvent at start-up)."""
        self.plugs = []
        position = 0.0
        while position < self.total_volume_ml - 1e-12:
            volume = min(self.max_plug_ml, self.total_volume_ml - position)
            self.plugs.insert(0, Plug(volume, dict(concentrations), position, self.time_s))
            position += volume

    # -- state ----------------------------------------------------------------------
    @property
    def total_flow_ml_min(self) -> float:
        return sum(i.flow_ml_min for i in self.inlets.values())

    def pressure_bar(self) -> float:
        """Pressure at the pumps: viscous loss along the path plus the BPR setting."""
        q_m3_s = self.total_flow_ml_min * 1e-6 / 60.0
        if q_m3_s <= 0:
            return 0.0
        mu = self.viscosity_mpa_s * 1e-3
        loss_pa = 0.0
        for seg in self.segments:
            d = seg.inner_diameter_mm * 1e-3
            resistance = 128 * mu * seg.length_m / (math.pi * d**4)
            loss_pa += resistance * self.blockage.get(seg.name, 1.0) * q_m3_s
        return self.bpr_bar + loss_pa / 1e5

    def contents(self, segment: str) -> CellContents:
        """Volume-weighted composition of the liquid inside ``segment``."""
        lo, hi = self._bounds[segment]
        self._flush(lambda plug: plug.head_ml > lo and plug.tail_ml < hi)
        liquid = 0.0
        amount: dict[str, float] = {}
        tags: list[str] = []
        for plug in self.plugs:
            overlap = min(hi, plug.head_ml) - max(lo, plug.tail_ml)
            if overlap <= 0:
                continue
            if plug.tag and plug.tag not in tags:
                tags.append(plug.tag)
            if plug.gas:
                continue
            liquid += overlap
            for k, c in plug.concentrations.items():
                amount[k] = amount.get(k, 0.0) + c * overlap
        conc = {k: a / liquid for k, a in amount.items()} if liquid > 0 else {}
        return CellContents(conc, liquid / (hi - lo), tuple(tags))

    def moles_in_line(self) -> dict[str, float]:
        self.flush_reactions()
        total: dict[str, float] = {}
        for plug in self.plugs:
            for k, n in plug.moles().items():
                total[k] = total.get(k, 0.0) + n
        return total

    # -- time ------------------------------------------------------------------------
    def step(self, dt_s: float, react: ReactFn | None = None, tag: str | None = None) -> None:
        """Advance by ``dt_s``: inject, move, react, and let plugs leave at the outlet."""
        if dt_s <= 0:
            return
        if react is not self._react_fn:
            self.flush_reactions()  # exposure so far was under the previous conditions
            self._react_fn = react
        flow = self.total_flow_ml_min
        pushed = flow * dt_s / 60.0
        if pushed > 0:
            # Sub-step so no plug jumps more than one plug length (keeps reaction time exact).
            n = max(1, math.ceil(pushed / self.max_plug_ml))
            for _ in range(n):
                self._substep(dt_s / n, pushed / n, react, tag)
        elif react is not None:
            self._react(dt_s, react)  # stopped flow: liquid in the reactor still sees light
            self.time_s += dt_s
        else:
            self.time_s += dt_s

    def _substep(self, dt_s: float, pushed_ml: float, react: ReactFn | None, tag: str | None):
        for plug in self.plugs:
            plug.tail_ml += pushed_ml
        self._inject(pushed_ml, tag)  # fills the [0, pushed) the move just freed
        if react is not None:
            self._react(dt_s, react)
        # Plugs wholly past the reactor have seen all the light they will see.
        end = self._reactor_end
        self._flush(lambda plug: plug.tail_ml >= end)
        self._exit()
        self.time_s += dt_s

    def _inject(self, volume_ml: float, tag: str | None) -> None:
        groups = [
            [i for i in self.inlets.values() if not i.gas and i.flow_ml_min > 0],
            [i for i in self.inlets.values() if i.gas and i.flow_ml_min > 0],
        ]
        total = sum(i.flow_ml_min for group in groups for i in group)
        if total <= 0:
            return
        top = volume_ml  # new plugs are laid from the inlet side of the moved line
        for group in groups:
            flow = sum(i.flow_ml_min for i in group)
            if flow <= 0:
                continue
            volume = volume_ml * flow / total
            is_gas = group[0].gas
            conc: dict[str, float] = {}
            for inlet in group:
                for k, c in inlet.stock.items():
                    conc[k] = conc.get(k, 0.0) + c * inlet.flow_ml_min / flow
            for k, c in conc.items():
                self.moles_in[k] = self.moles_in.get(k, 0.0) + c * volume / 1000.0
            top -= volume
            self._append(top, volume, {} if is_gas else conc, is_gas, tag)

    def _append(
        self, tail: float, volume: float, conc: dict[str, float], gas: bool, tag: str | None
    ) -> None:
        newest = self.plugs[-1] if self.plugs else None
        if (
            newest is not None
            and newest.gas == gas
            and newest.tag == tag
            and abs(newest.tail_ml - (tail + volume)) <= 1e-12
            and newest.volume_ml + volume <= self.max_plug_ml
            and newest.reactor_time_s == 0.0
            and _same(newest.concentrations, conc)
        ):
            newest.tail_ml = tail  # grow the newest plug upstream
            newest.volume_ml += volume
            return
        self.plugs.append(Plug(volume, conc, tail, self.time_s, gas, tag=tag))

    def _react(self, dt_s: float, react: ReactFn) -> None:
        for seg in self.segments:
            if not seg.irradiated:
                continue
            lo, hi = self._bounds[seg.name]
            for plug in self.plugs:
                overlap = min(hi, plug.head_ml) - max(lo, plug.tail_ml)
                if overlap <= 0 or plug.gas:
                    continue
                exposure = dt_s * overlap / plug.volume_ml
                plug.reactor_time_s += exposure
                plug.pending_s += exposure

    def flush_reactions(self) -> None:
        """Apply every plug's pending light exposure now."""
        self._flush(lambda plug: True)

    def _flush(self, which: Callable[[Plug], bool]) -> None:
        react = self._react_fn
        for plug in self.plugs:
            if plug.pending_s > 0 and which(plug):
                if react is not None:
                    plug.concentrations = react(plug.concentrations, plug.pending_s)
                plug.pending_s = 0.0

    def _exit(self) -> None:
        end = self.total_volume_ml
        while self.plugs and self.plugs[0].tail_ml >= end - 1e-12:
            plug = self.plugs.pop(0)
            self._account_exit(plug)
        # A plug straddling the outlet: split off the part that has left.
        if self.plugs and self.plugs[0].head_ml > end + 1e-12:
            plug = self.plugs[0]
            gone = plug.head_ml - end
            part = Plug(
                gone,
                dict(plug.concentrations),
                end,
                plug.entered_at_s,
                plug.gas,
                plug.reactor_time_s,
                plug.tag,
                plug.pending_s,
            )
            plug.volume_ml -= gone
            self._account_exit(part)

    def _account_exit(self, plug: Plug) -> None:
        if plug.pending_s > 0 and self._react_fn is not None:
            plug.concentrations = self._react_fn(plug.concentrations, plug.pending_s)
            plug.pending_s = 0.0
        target = self.moles_collected if self.collect else self.moles_to_waste
        for k, n in plug.moles().items():
            target[k] = target.get(k, 0.0) + n
        if self.collect and not plug.gas:
            self.volume_collected_ml += plug.volume_ml
        self.exited.append(plug)
        del self.exited[:-2000]


def _same(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    if a.keys() != b.keys():
        return False
    return all(abs(a[k] - b[k]) <= 1e-12 + 1e-9 * abs(b[k]) for k in a)


def standard_path(
    *,
    reactor_ml: float = 3.9,
    mixer_ml: float = 0.05,
    transfer_ml: float = 0.5,
    nmr_cell_ml: float = 0.1,
    outlet_ml: float = 0.3,
    tube_id_mm: float = 0.8,
    bpr_bar: float = 5.0,
) -> FlowPath:
    """The reference platform's flow path (volumes in mL)."""
    return FlowPath(
        [
            Segment("mixer", mixer_ml, tube_id_mm),
            Segment("reactor", reactor_ml, tube_id_mm, irradiated=True),
            Segment("transfer", transfer_ml, tube_id_mm),
            Segment("nmr_cell", nmr_cell_ml, 2.0),
            Segment("outlet", outlet_ml, tube_id_mm),
        ],
        bpr_bar=bpr_bar,
    )
