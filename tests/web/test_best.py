"""One definition of a campaign's best result (issue 30), shared by the CLI and the web.

Before, ``robochem campaigns list`` re-parsed the stored YAML by hand (any exception gave
``{}``) and the dashboard took the highest yield whatever the goal. Both now read
:mod:`robochem.storage.results`: each objective's best under its own goal, among the done
experiments' latest measurements that QC did not reject.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from dashboard_kit import World
from typer.testing import CliRunner

from robochem.storage.models import Campaign, CampaignStatus, Experiment, Measurement

EXAMPLE = Path(__file__).resolve().parents[2] / "protocols" / "examples" / "hat-alkylation.yaml"
OBJECTIVES = (
    "  yield: {goal: maximize, threshold: 20 %}\n"
    "  throughput: {goal: maximize, threshold: 0.1 mmol/h}\n"
)


def _protocol(objectives: str) -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.count(OBJECTIVES) == 1
    return text.replace(OBJECTIVES, objectives)


#: (status, yield %, throughput mmol/h, QC) per experiment, in index order
ROWS = [
    ("done", 40.0, 1.0, "ok"),
    ("done", 20.0, 0.4, "ok"),  # the lowest usable yield and throughput
    ("done", 60.0, 2.0, "warning"),  # the highest usable yield and throughput
    ("done", 5.0, 0.1, "rejected"),  # QC rejected: never the best
    ("failed", 1.0, 0.05, "ok"),  # not done: the optimiser was told a failure
    ("running", 2.0, 0.06, "ok"),  # not done yet
]


def _seed(world: World, objectives: str) -> int:
    with world.database.session() as s:
        campaign = Campaign(
            name="best",
            protocol_text=_protocol(objectives),
            protocol_sha256="b" * 64,
            status=CampaignStatus.RUNNING,
            summary={"planned_experiments": 10},
        )
        s.add(campaign)
        s.flush()
        for index, (status, y, q, qc) in enumerate(ROWS):
            e = Experiment(campaign_id=campaign.id, index=index, conditions={}, status=status)
            s.add(e)
            s.flush()
            s.add(
                Measurement(experiment_id=e.id, yield_percent=y, throughput_mmol_h=q, qc_status=qc)
            )
        return campaign.id


def _cli_rows(world: World) -> dict[int, dict[str, object]]:
    from robochem.cli import app

    url = world.database.engine.url.render_as_string(hide_password=False)
    out = CliRunner().invoke(app, ["campaigns", "list", "--json", "--db", url])
    assert out.exit_code == 0, out.output
    return {row["id"]: row for row in json.loads(out.stdout)}


async def test_a_minimise_goal_is_honoured_by_the_web_and_the_cli(
    world: World, client: httpx.AsyncClient
) -> None:
    cid = _seed(world, "  yield: {goal: minimise}\n")
    v = world.bearer("viewer")

    (summary,) = (await client.get("/api/campaigns", headers=v)).json()
    assert summary["best_yield_percent"] == 20.0  # not the highest, 60
    detail = (await client.get(f"/api/campaigns/{cid}", headers=v)).json()
    assert detail["best_yield_percent"] == 20.0

    response = await client.get(f"/api/campaigns/{cid}/best", headers=v)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "campaign_id": cid,
        "experiments_done": 4,
        "objectives": [
            {"objective": "yield", "measure": "yield", "goal": "minimize", "value": 20.0,
             "experiment_id": response.json()["objectives"][0]["experiment_id"],
             "experiment_index": 1},
        ],
        "problem": None,
    }  # fmt: skip

    row = _cli_rows(world)[cid]
    assert row["best"] == {"yield": 20.0}
    assert row["best_experiment"] == {"yield": 1}
    assert row["experiments_done"] == 4 and row["best_problem"] is None


async def test_each_of_several_objectives_is_ranked_under_its_own_goal(
    world: World, client: httpx.AsyncClient
) -> None:
    cid = _seed(world, "  yield: {goal: maximize}\n  rate: {measure: throughput, goal: minimize}\n")
    v = world.bearer("viewer")
    body = (await client.get(f"/api/campaigns/{cid}/best", headers=v)).json()
    ranked = [
        (o["objective"], o["goal"], o["value"], o["experiment_index"]) for o in body["objectives"]
    ]
    assert ranked == [
        ("yield", "maximize", 60.0, 2),
        ("rate", "minimize", 0.4, 1),
    ]  # fmt: skip
    (summary,) = (await client.get("/api/campaigns", headers=v)).json()
    assert summary["best_yield_percent"] == 60.0
    assert _cli_rows(world)[cid]["best"] == {"yield": 60.0, "rate": 0.4}


async def test_unreadable_stored_objectives_are_said_not_hidden(
    world: World, client: httpx.AsyncClient
) -> None:
    """The CLI turned any exception into an empty ``best``; a stored text whose objectives
    do not validate is now reported as such (and the best yield still honours nothing
    but the measure's natural goal)."""
    cid = _seed(world, "  yield: {goal: sideways}\n")
    v = world.bearer("viewer")
    body = (await client.get(f"/api/campaigns/{cid}/best", headers=v)).json()
    assert body["objectives"] == []
    assert body["problem"].startswith(f"campaign {cid}: objectives.yield.goal: ")
    row = _cli_rows(world)[cid]
    assert row["best"] == {} and row["best_problem"] == body["problem"]
    (summary,) = (await client.get("/api/campaigns", headers=v)).json()
    assert summary["best_yield_percent"] == 60.0


async def test_best_of_an_unknown_campaign_is_404(world: World, client: httpx.AsyncClient) -> None:
    response = await client.get("/api/campaigns/999/best", headers=world.bearer("viewer"))
    assert response.status_code == 404
    assert response.json()["detail"] == "no campaign 999"
