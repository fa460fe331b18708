"""`optimizer.warm_start` in a protocol: earlier campaigns' results reach the new campaign's
optimiser as related tasks, by campaign id or protocol name; a missing one stops the start."""

from __future__ import annotations

from engine_kit import Env, engine_protocol

from robochem.protocols.runtime.engine import EngineState, create_campaign


def _warm(campaigns: str) -> str:
    text = engine_protocol(budget=2)
    anchor = "optimizer:\n"
    assert anchor in text
    return text.replace(anchor, f"optimizer:\n  warm_start: {{campaigns: {campaigns}}}\n", 1)


async def test_an_earlier_campaign_informs_the_next_as_a_related_task(env: Env) -> None:
    first = env.campaign(budget=2)
    assert await env.engine(first).run() is EngineState.COMPLETED
    earlier = [e.conditions for e in env.experiments(first)]
    for reference in (f"[{first}]", "[hat-alkylation]"):
        second = create_campaign(env.db, _warm(reference), platform=env.platform)
        engine = env.engine(second)
        optimizer = engine.records.rebuild_optimizer()
        priors = [o for o in optimizer.observations if o["source"] == "prior"]
        assert [p["point"] for p in priors] == earlier
        assert {p["task"] for p in priors} == {f"campaign {first} (hat-alkylation)"}
        assert all(p["result"]["yield"] > 0 for p in priors)
        assert optimizer.best() is None  # none of them is this campaign's result
        assert optimizer.n_experiments == 0


async def test_a_missing_earlier_campaign_fails_the_start_with_its_reason(env: Env) -> None:
    cid = create_campaign(env.db, _warm("[4711]"), platform=env.platform)
    engine = env.engine(cid)
    assert await engine.run() is EngineState.FAILED
    assert "optimizer.warm_start: no campaign 4711 in the database" in engine.reason
    assert env.experiments(cid) == []

