"""The Lab page's virtual-lab panel: ``GET /api/virtual-lab/state`` relays the simulated
lab's ground truth (the simulators' ``GET /state``), and says so when there is none."""

from __future__ import annotations

from pathlib import Path

from dashboard_kit import World, client_for

from robochem.simulator.runner import SimulatedPlatform


async def test_relays_what_the_simulated_devices_physically_do(
    world: World, tmp_path: Path
) -> None:
    async with SimulatedPlatform(speed=10, data_root=tmp_path / "nmr", reaction=None) as sim:
        world.app.state.virtual_lab_url = sim.state_url()
        pump = sim.servers["pump-solvent"]
        pump.flow_ul_min, pump.running = 1500, True  # as a driver would have left it
        async with client_for(world.app) as client:
            answer = await client.get("/api/virtual-lab/state", headers=world.bearer("viewer"))
            assert answer.status_code == 200
            body = answer.json()
            assert body["simulated"] is True and body["url"] == sim.state_url()
            devices = body["state"]["devices"]
            assert devices["pump-solvent"] == {"kind": "pump", "running": True, "flow_ml_min": 1.5}
            assert devices["pump-substrate"]["running"] is False
            assert devices["reactor"]["light"] == {"on": False, "output_percent": 0.0}
            assert body["state"]["speed"] == 10
            page = await client.get("/lab", headers=world.bearer("viewer"))
            assert 'id="virtual-lab"' in page.text and "/static/virtual_lab.js" in page.text
            anonymous = await client.get("/api/virtual-lab/state")
            assert anonymous.status_code == 401
        url = sim.state_url()
    async with client_for(world.app) as client:  # the simulator is gone: said, not a 5xx
        gone = (await client.get("/api/virtual-lab/state", headers=world.bearer("viewer"))).json()
        assert gone["simulated"] is True and gone["url"] == url and gone["state"] is None
        assert gone["error"]


async def test_a_real_lab_has_no_virtual_lab(world: World) -> None:
    async with client_for(world.app) as client:
        answer = await client.get("/api/virtual-lab/state", headers=world.bearer("viewer"))
    assert answer.status_code == 200
    assert answer.json() == {"simulated": False, "url": None, "state": None, "error": None}
