"""After a crash (kill -9) during a scale-up, resuming keeps what reached the flask up to the
last NMR check and repeats the segment for the rest (no devices: the stored state only)."""

from __future__ import annotations

import asyncio

from test_scaleup_cli import HAT, OPTIMUM, SIMULATED

from robochem.events import EventBus
from robochem.protocols.load import load_platform
from robochem.protocols.runtime.engine import Engine, create_campaign
from robochem.protocols.runtime.lab import Lab
from robochem.protocols.runtime.scaleup import ScaleUpRunner
from robochem.protocols.scaleup import Chosen, scale_up_protocol_text
from robochem.storage.db import Database
from robochem.storage.models import Campaign, CampaignStatus, Experiment


async def test_resume_after_a_crash_keeps_the_collected_product(sqlite_url: str) -> None:
    platform = load_platform(SIMULATED)
    db = Database(sqlite_url)
    try:
        chosen = Chosen(1, "hat", HAT.read_text(), 0, OPTIMUM, 75.0, 1.33, {})
        cid = create_campaign(db, scale_up_protocol_text(chosen, 2.0, platform), platform=platform)
        engine = Engine(db, EventBus(db), Lab(platform, {}), cid)
        await asyncio.to_thread(ScaleUpRunner(engine)._init)
        # the state a killed engine leaves: segment 0 running, totals up to its last check
        with db.session() as s:
            campaign = s.get(Campaign, cid)
            assert campaign is not None
            campaign.status = "running"
            campaign.summary = {
                **campaign.summary,
                "scale_up_current": {
                    "segment": 0, "collected_ml": 10.0, "product_mmol": 0.6, "collect_s": 1800.0
                },
            }  # fmt: skip
            exp = s.query(Experiment).filter_by(campaign_id=cid).one()
            exp.status = "running"
        resumed = Engine(db, EventBus(db), Lab(platform, {}), cid)
        recovered = await asyncio.to_thread(resumed.records.recover, CampaignStatus.RUNNING)
        assert recovered == ({"repeated": [{"interrupted": 0, "repeat": 1}]}, [])
        await asyncio.to_thread(ScaleUpRunner(resumed)._init)
        with db.session() as s:
            campaign = s.get(Campaign, cid)
            assert campaign is not None
            report = campaign.summary["scale_up"]
            exps = s.query(Experiment).filter_by(campaign_id=cid).order_by(Experiment.index).all()
            assert "scale_up_current" not in campaign.summary
        assert report["product_mmol"] == 0.6 and report["collected_ml"] == 10.0
        assert report["segments"][0]["ended"] == "interrupted"
        assert [(e.index, e.status) for e in exps] == [(0, "interrupted"), (1, "queued")]
    finally:
        db.dispose()
