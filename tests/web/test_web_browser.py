"""End to end in Debian's chromium through Playwright: log in with a one-time link, watch
a device update live after a manual command, read a campaign's plots and spectrum, press
the emergency stop. Screenshots go to docs/screenshots/ when ROBOCHEM_SCREENSHOTS is set."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from dashboard_kit import World, make_world, seed_campaign

from robochem.storage.models import Campaign
from robochem.web.app import issue_login_link

CHROMIUM = Path("/usr/bin/chromium")
# The README's screenshots are refreshed on request only, so a test run leaves the tree clean:
#   ROBOCHEM_SCREENSHOTS=1 scripts/test tests/web/test_web_browser.py
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("ROBOCHEM_SCREENSHOTS")
    else Path(tempfile.mkdtemp(prefix="robochem-screenshots-"))
)
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),  # in CI a missing browser fails
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium); "
        "Playwright's own browser download does not work here",
    ),
]


class Server:
    """uvicorn on a free localhost port in a thread, with its own event loop."""

    def __init__(self, world: World) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(world.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.server.serve())

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, coro) -> object:  # run a coroutine on the server's loop
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)


@pytest.fixture
def served(sqlite_url: str) -> Iterator[tuple[World, Server, dict]]:
    world = make_world(sqlite_url)
    ids = seed_campaign(world.database)
    with Server(world) as server:
        yield world, server, ids
    world.database.dispose()


def test_dashboard_in_chromium(served: tuple[World, Server, dict]) -> None:
    from playwright.sync_api import expect, sync_playwright

    world, server, ids = served
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("response", lambda r: r.status >= 400 and errors.append(f"{r.status} {r.url}"))

            page.goto(f"{server.url}/login")
            expect(page.locator("h1")).to_have_text("Log in")
            page.screenshot(path=SHOTS / "login.png")

            # One-time link -> session -> the Lab page.
            page.goto(server.url + issue_login_link(world.app, "operator"))
            expect(page).to_have_url(f"{server.url}/lab")
            pump = page.locator('[data-device="pump-a"]')
            expect(pump).to_contain_text("connected")
            expect(page.locator("#live")).to_have_class("live on")

            # A manual command; the reading comes back over the event stream.
            pump.locator('input[name="ml_min"]').fill("2.5")
            pump.locator('form[data-control="flow"] button').click()
            expect(pump.locator('dd[data-reading="flow_ml_min"]')).to_have_text("2.5")
            reactor = page.locator('[data-device="reactor"]')
            reactor.locator('input[name="percent"]').fill("75")
            reactor.locator('form[data-control="light"] button').click()
            expect(reactor.locator('dd[data-reading="light_percent"]')).to_have_text("75")
            # A fault reported by the device layer shows on its card.
            assert world.lab is not None
            world.lab.state["valve"].faults.append("position sensor error")
            expect(page.locator('[data-device="valve"] .faults')).to_contain_text("sensor error")
            page.screenshot(path=SHOTS / "lab.png", full_page=True)

            # Reading-to-screen latency with the default 0.1 s device poll (target: 250 ms).
            world.app.state.ctx.device_poll_s = 0.1
            latencies = []
            for i in range(7):
                pressure = 2.0 + i / 10
                started = time.perf_counter()
                world.lab.state["pump-a"].readings["pressure_bar"] = pressure
                page.wait_for_function(
                    'p => document.querySelector(\'[data-device="pump-a"] '
                    'dd[data-reading="pressure_bar"]\').textContent === String(p)',
                    arg=pressure,
                    polling="raf",
                )
                latencies.append(time.perf_counter() - started)
            median = sorted(latencies)[len(latencies) // 2]
            print(f"device reading -> browser: median {median * 1000:.0f} ms")
            assert median < 0.25, latencies

            page.locator("#estop").click()
            expect(page.locator(".toast.ok").last).to_contain_text("emergency stop")
            assert world.lab.calls[-1] == ("emergency_stop",)
            expect(pump.locator('dd[data-reading="flow_ml_min"]')).to_have_text("0")

            page.goto(f"{server.url}/campaigns")
            row = page.locator(f'tr[data-campaign="{ids["campaign_id"]}"]')
            expect(row).to_contain_text("Decarboxylative coupling")
            expect(row).to_contain_text("6 / 10")
            page.locator("#example").select_option("simple")
            expect(page.locator("#protocol")).to_have_value(
                "name: test campaign\nobjective: yield\nbudget: 5\n"
            )
            page.locator("#protocol").fill("name: x\nbadkey: 2\n")
            page.locator("#validate").click()
            expect(page.locator("#issues")).to_contain_text("line 2:1")
            page.screenshot(path=SHOTS / "campaigns.png", full_page=True)

            # a shim before experiment #3: a dashed line on the line-width plot
            server.call(
                world.bus.publish("engine", "nmr.shimmed", {"index": 3, "ok": True},
                                  campaign_id=ids["campaign_id"],
                                  experiment_id=ids["experiment_ids"][2])
            )
            row.locator("a").click()
            expect(page.locator("#status")).to_have_text("running")
            expect(page.locator("#experiments tbody tr")).to_have_count(7)
            page.locator("#plot-objective .main-svg").first.wait_for()
            page.locator("#plot-pareto .main-svg").first.wait_for()
            expect(page.locator("#plot-variables > div")).to_have_count(3)
            page.locator("#plot-linewidth .main-svg").first.wait_for()
            expect(page.locator("#plot-linewidth .shapelayer path")).to_have_count(1)
            # The newest measured experiment's spectrum is shown with its regions.
            expect(page.locator("#regions tbody tr")).to_have_count(3)
            # the standard's line width (fitted 2.1 Hz less 0.5 Hz broadening): shim check
            expect(page.locator("#regions tbody tr", has_text="TMB").locator("td").last
                   ).to_have_text("1.60")
            page.locator(f'tr[data-experiment="{ids["experiment_ids"][1]}"]').click()
            expect(page.locator("#spectrum-title")).to_contain_text("experiment #2")
            # A new event appears in the log without reloading.
            server.call(
                world.bus.publish(
                    "engine", "step.started", {"step": "collect"}, campaign_id=ids["campaign_id"]
                )
            )
            expect(page.locator("#events")).to_contain_text("step.started")
            page.screenshot(path=SHOTS / "campaign.png", full_page=True)

            page.goto(f"{server.url}/account")
            expect(page.locator("#tokens tbody tr")).to_have_count(1)
            page.goto(f"{server.url}/docs")
            expect(page.locator("body")).to_contain_text("/api/status")

            # A viewer sees the same pages without any controls, also for an empty campaign.
            with world.database.session() as s:
                empty = Campaign(name="Empty", protocol_text="x", protocol_sha256="0" * 64)
                s.add(empty)
            viewer = browser.new_page(viewport={"width": 1200, "height": 800})
            viewer.on("pageerror", lambda e: errors.append(str(e)))
            viewer.on(
                "response", lambda r: r.status >= 400 and errors.append(f"{r.status} {r.url}")
            )
            viewer.goto(server.url + issue_login_link(world.app, "viewer"))
            expect(viewer.locator('[data-device="pump-a"]')).to_be_visible()
            assert viewer.locator("#estop, .device form").count() == 0
            viewer.goto(f"{server.url}/campaigns/{empty.id}")
            expect(viewer.locator("#plot-variables")).to_contain_text("No experiments yet")
            assert viewer.locator("button.control").count() == 0
            viewer.goto(f"{server.url}/campaigns")
            expect(viewer.locator("#campaigns tbody tr")).to_have_count(2)
            assert viewer.locator("#new-campaign").count() == 0
        finally:
            browser.close()
    assert errors == []
