"""``robochem serve`` (a real platform) and ``robochem demo`` (the simulated lab).

Both run the devices, the campaign engine and the dashboard in one process and one event
loop, because the event bus that feeds the live pages is in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("robochem.web.serve")

DEMO_USER = "demo"
DEMO_EXAMPLE = "hat-alkylation"


async def run_dashboard(
    platform: Any,
    *,
    host: str,
    port: int,
    start_example: str | None = None,
    login_user: str | None = None,
    announce: Any = print,
) -> None:
    """Connect ``platform``'s devices, serve the dashboard until Ctrl-C, leave all safe."""
    from robochem.clock import get_clock
    from robochem.events import EventBus
    from robochem.protocols.runtime.engine import create_campaign
    from robochem.protocols.runtime.lab import connect_lab
    from robochem.storage import open_database
    from robochem.web.app import create_app, issue_login_link, make_server
    from robochem.web.auth import ensure_user
    from robochem.web.runtime import EXAMPLES, CampaignService, LabService

    database = open_database()
    bus = EventBus(database, clock=get_clock())
    lab = await connect_lab(platform)
    lab_service = LabService(lab)
    campaigns = CampaignService(database, bus, lab)
    lab_service.campaigns = campaigns
    try:
        app = create_app(database, bus, lab=lab_service, campaigns=campaigns)
        lab_service.start()
        base = f"http://{host}:{port}"
        if login_user is not None:
            with database.session() as session:
                ensure_user(session, login_user, "operator")
            announce(f"open {base}{issue_login_link(app, login_user)}  (one-time login link)")
        else:
            announce(f"dashboard at {base}  (users: robochem user add NAME --role operator)")
        if start_example is not None:
            text = (EXAMPLES / f"{start_example}.yaml").read_text()
            campaign_id = create_campaign(
                database, text, file=f"{start_example}.yaml", platform=lab.platform
            )
            await campaigns.start(campaign_id)
            announce(
                f"campaign {campaign_id} ({start_example}) started: {base}/campaigns/{campaign_id}"
            )
        server = make_server(app, host=host, port=port)
        await server.serve()
    finally:
        await campaigns.close()
        await lab_service.stop()
        report = await lab.safe_state(temperature=True)
        if not report.ok:
            log.error("safe state incomplete at shutdown: %s", report.to_dict())
        await lab.close()
        database.dispose()


async def demo(*, host: str, port: int, speed: float, reaction: str, seed: int) -> None:
    from robochem.clock import set_clock
    from robochem.protocols.load import parse_platform
    from robochem.simulator.runner import SimulatedPlatform
    from robochem.web.runtime import EXAMPLES

    example = reaction if (EXAMPLES / f"{reaction}.yaml").is_file() else None
    with tempfile.TemporaryDirectory(prefix="robochem-demo-") as tmp:
        sim = SimulatedPlatform(
            speed=speed, data_root=Path(tmp) / "nmr", reaction=reaction, seed=seed
        )
        set_clock(sim.clock)
        async with sim:
            platform = parse_platform(yaml.safe_dump(sim.platform()), "<simulated lab>")
            print(f"simulated lab running at x{speed:g} ({reaction}); Ctrl-C stops everything")
            await run_dashboard(
                platform,
                host=host,
                port=port,
                start_example=example,
                login_user=DEMO_USER,
            )


async def serve(platform_file: Path, *, host: str, port: int) -> None:
    from robochem.clock import Clock, set_clock
    from robochem.protocols.load import load_platform

    platform = load_platform(platform_file)
    if platform.clock:  # written by `robochem sim`: share its simulated time
        set_clock(Clock(speed=platform.clock["speed"], epoch=platform.clock["epoch"]))
    await run_dashboard(platform, host=host, port=port)


def run(coro: Any) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(coro)
