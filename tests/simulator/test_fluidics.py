import math

import pytest

from robochem.simulator.fluidics import FlowPath, Inlet, Segment, standard_path


def path_with_inlets(**kwargs) -> FlowPath:
    path = standard_path(**kwargs)
    path.add_inlet(Inlet("substrate", {"A": 0.2, "IS": 0.05}))
    path.add_inlet(Inlet("solvent", {}))
    path.fill({})
    return path


def identity(conc: dict[str, float], dt: float) -> dict[str, float]:
    return conc


def run(path: FlowPath, seconds: float, dt: float = 1.0, react=identity) -> None:
    for _ in range(round(seconds / dt)):
        path.step(dt, react)


def test_what_goes_in_comes_out_or_stays_in_the_line() -> None:
    path = path_with_inlets()
    path.set_flow("substrate", 0.3)
    path.set_flow("solvent", 0.2)
    run(path, 1500)
    path.set_flow("substrate", 0.05)
    path.collect = True
    run(path, 900)
    inside = path.moles_in_line()
    for species in ("A", "IS"):
        out = path.moles_to_waste.get(species, 0) + path.moles_collected.get(species, 0)
        assert path.moles_in[species] == pytest.approx(inside.get(species, 0) + out, rel=1e-9)
    assert sum(p.volume_ml for p in path.plugs) == pytest.approx(path.total_volume_ml, rel=1e-9)


@pytest.mark.parametrize("flow", [0.39, 1.3, 3.9])
def test_residence_time_is_reactor_volume_over_total_flow(flow: float) -> None:
    path = path_with_inlets()
    path.set_flow("substrate", flow / 2)
    path.set_flow("solvent", flow / 2)
    tau = 3.9 / flow * 60
    run(path, 3 * tau, dt=tau / 200)
    done = [p for p in path.plugs + path.exited if p.tail_ml > path.bounds("reactor")[1]]
    fresh = [p for p in done if p.entered_at_s > 0]
    assert fresh
    for plug in fresh:
        assert plug.reactor_time_s == pytest.approx(tau, rel=0.02)


def test_residence_time_follows_a_change_of_pump_rate() -> None:
    path = path_with_inlets()
    path.set_flow("substrate", 1.0)
    run(path, 300)
    path.set_flow("substrate", 0.5)
    t_change = path.time_s
    run(path, 1200)
    after = [p for p in path.exited + path.plugs if p.entered_at_s > t_change]
    passed = [p for p in after if p.tail_ml > path.bounds("reactor")[1]]
    assert passed
    assert all(p.reactor_time_s == pytest.approx(3.9 / 0.5 * 60, rel=0.02) for p in passed)


def test_first_order_kinetics_in_plug_flow_match_the_analytic_outlet() -> None:
    k = 1 / 300  # 1/s

    def first_order(conc: dict[str, float], dt: float) -> dict[str, float]:
        a = conc.get("A", 0.0)
        converted = a * (1 - math.exp(-k * dt))
        return {**conc, "A": a - converted, "P": conc.get("P", 0.0) + converted}

    path = path_with_inlets()
    path.set_flow("substrate", 0.78)
    tau = 3.9 / 0.78 * 60
    run(path, 3 * tau, dt=2.0, react=first_order)
    cell = path.contents("nmr_cell").concentrations
    assert cell["A"] == pytest.approx(0.2 * math.exp(-k * tau), rel=0.01)
    assert cell["A"] + cell["P"] == pytest.approx(0.2, rel=1e-9)
    assert cell["IS"] == pytest.approx(0.05, rel=1e-9)


def test_stopped_flow_keeps_the_cell_and_still_irradiates_the_reactor() -> None:
    seen = []

    def record(conc: dict[str, float], dt: float) -> dict[str, float]:
        seen.append(dt)
        return conc

    path = path_with_inlets()
    path.set_flow("substrate", 1.0)
    run(path, 400, react=record)
    before = path.contents("nmr_cell")
    exposure_before = sum(p.reactor_time_s for p in path.plugs)
    path.set_flow("substrate", 0.0)
    path.flush_reactions()
    seen.clear()
    run(path, 60, react=record)
    assert path.contents("nmr_cell") == before
    path.flush_reactions()
    in_reactor = path.contents("reactor")
    assert in_reactor.liquid_fraction == pytest.approx(1.0)
    # Every plug in the coil got the minute of light, weighted by how much of it is inside.
    lo, hi = path.bounds("reactor")
    inside = sum(
        (min(hi, p.head_ml) - max(lo, p.tail_ml)) / p.volume_ml
        for p in path.plugs
        if p.head_ml > lo and p.tail_ml < hi
    )
    gained = sum(p.reactor_time_s for p in path.plugs) - exposure_before
    assert inside > 40
    assert gained == pytest.approx(60 * inside, rel=1e-9)
    assert sum(seen) == pytest.approx(gained)


def test_exposure_is_integrated_once_per_plug_not_once_per_step() -> None:
    def count(conc: dict[str, float], dt: float) -> dict[str, float]:
        # each integration marks the plug's contents once more
        return {**conc, "integrations": conc.get("integrations", 0.0) + 1}

    path = path_with_inlets()
    path.set_flow("substrate", 0.39)
    run(path, 1200, dt=1.0, react=count)
    exposed = [p for p in (*path.exited, *path.plugs) if p.reactor_time_s > 0]
    assert max(p.reactor_time_s for p in exposed) > 10  # many steps in the light
    for plug in exposed:
        # integrated exactly once when it left the reactor; not yet while still in it
        expected = 0.0 if plug.pending_s > 0 else 1.0
        assert plug.concentrations.get("integrations", 0.0) == pytest.approx(expected)
    assert any(p.pending_s == 0 for p in exposed) and any(p.pending_s > 0 for p in exposed)


def test_gas_segmented_slug_reaches_the_cell_and_a_bubble_shows_as_missing_liquid() -> None:
    path = standard_path()
    path.add_inlet(Inlet("carrier", {}))
    path.add_inlet(Inlet("slug", {"A": 0.1, "IS": 0.05}))
    path.add_inlet(Inlet("gas", {}, gas=True))
    path.fill({})
    for inlet, seconds in (("gas", 10), ("slug", 40), ("gas", 10)):
        path.set_flow(inlet, 1.0)
        run(path, seconds, dt=0.5)
        path.set_flow(inlet, 0.0)
    path.set_flow("carrier", 1.0)
    fractions = []
    found_slug = False
    for _ in range(600):
        path.step(0.5, identity)
        contents = path.contents("nmr_cell")
        fractions.append(contents.liquid_fraction)
        if contents.liquid_fraction == pytest.approx(1.0) and contents.concentrations.get("A"):
            found_slug = True
            assert contents.concentrations["A"] == pytest.approx(0.1, rel=1e-6)
    assert found_slug
    assert min(fractions) < 0.5  # a gas segment sat in the cell at some point


def test_pressure_follows_flow_and_viscosity_and_a_blockage_trips_the_limit() -> None:
    path = path_with_inlets(bpr_bar=0.0)
    path.set_flow("substrate", 1.0)
    p1 = path.pressure_bar()
    path.set_flow("substrate", 2.0)
    assert path.pressure_bar() == pytest.approx(2 * p1)
    path.viscosity_mpa_s *= 3
    assert path.pressure_bar() == pytest.approx(6 * p1)
    path.blockage["transfer"] = 1e5
    assert path.pressure_bar() > 400
    path.set_flow("substrate", 0.0)
    assert path.pressure_bar() == 0.0


def test_collection_gathers_the_pumped_volume() -> None:
    path = path_with_inlets()
    path.set_flow("substrate", 1.0)
    run(path, 600)
    path.collect = True
    run(path, 300)
    assert path.volume_collected_ml == pytest.approx(5.0, rel=1e-6)
    assert path.moles_collected["A"] == pytest.approx(0.2 * 5.0 / 1000, rel=1e-6)


def test_bad_paths_and_flows_are_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        FlowPath([Segment("a", 1), Segment("a", 1)])
    with pytest.raises(ValueError, match="volume"):
        FlowPath([Segment("a", 0)])
    path = path_with_inlets()
    with pytest.raises(ValueError, match="substrate"):
        path.set_flow("substrate", -1)
