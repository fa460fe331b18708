"""``robochem serve`` (a real platform) and ``robochem demo`` (the simulated lab).

The dashboard process (devices, campaign engine and web server in one event loop: the
event bus that feeds the live pages is in-process) is a supervised controller: the command
a user starts becomes its supervisor (``protocols/runtime/supervisor.py``), which makes the
lab safe if the dashboard dies. ``demo`` also starts the simulated lab as a process of its
own (``robochem sim``), so the virtual lab outlives a dashboard that dies and the
supervisor has something to make safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from robochem.web.tasks import watch

log = logging.getLogger("robochem.web.serve")

DEMO_USER = "demo"
DEMO_EXAMPLE = "hat-alkylation"
#: Set in the demo's controller: the platform file its simulated lab wrote.
ENV_DEMO_PLATFORM = "ROBOCHEM_DEMO_PLATFORM"
#: Wall seconds the dashboard has to pause its campaigns after its supervisor died.
LOST_PAUSE_BOUND_S = 10.0
#: Wall seconds ``robochem sim`` may take to start.
SIM_START_S = 90.0


async def run_dashboard(
    platform: Any,
    *,
    host: str,
    port: int,
    start_example: str | None = None,
    login_user: str | None = None,
    announce: Any = print,
    link: Any = None,
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
    stop = _StopSignals()
    if link is not None:
        link.start()  # heartbeats; a death noticed now is acted on once the lab is open
    lab = await connect_lab(platform)
    lab_service = LabService(lab)
    campaigns = CampaignService(database, bus, lab)
    lab_service.campaigns = campaigns
    watcher: asyncio.Task[None] | None = None
    if link is not None:
        link.send("armed")
        watcher = watch(
            asyncio.create_task(_report_campaigns(bus, link), name="report-campaigns"),
            "reporting campaigns to the supervisor",
        )
        link.set_on_lost(_guard(lab, campaigns))
    try:
        app = create_app(database, bus, lab=lab_service, campaigns=campaigns)
        # a simulated lab's ground truth, for the Lab page (web/virtual_lab.py)
        app.state.virtual_lab_url = getattr(platform, "state_url", None)
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
        stop.attach(server)
        await server.serve()
    finally:
        if watcher is not None:
            watcher.cancel()
        await campaigns.close()
        await lab_service.stop()
        report = await lab.safe_state(temperature=True)
        if not report.ok:
            log.error("safe state incomplete at shutdown: %s", report.to_dict())
        await lab.close()
        database.dispose()
        if link is not None:
            await link.stop()
            link.send("clean")


async def _report_campaigns(bus: Any, link: Any) -> None:
    """Tell the supervisor which campaign runs (for its event and its hint)."""
    with bus.subscribe(lambda e: e.kind in ("campaign.state", "step")) as events:
        async for event in events:
            if event.kind == "campaign.state" and event.payload.get("to") == "running":
                link.send("campaign", id=event.campaign_id)
            elif event.kind == "step":
                link.send("step", text=event.payload.get("type"))


class _StopSignals:
    """SIGINT/SIGTERM end the web server; the shutdown after it (campaigns aborted, safe
    state, devices closed) then runs whole. uvicorn's own handlers re-raise the signal once
    it has stopped, which cancelled that shutdown half-way."""

    def __init__(self) -> None:
        self.server: Any = None
        self.requested = 0
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._request)

    def attach(self, server: Any) -> None:
        server.capture_signals = contextlib.nullcontext  # this process owns its signals
        self.server = server
        self._apply()

    def _request(self) -> None:
        self.requested += 1
        self._apply()

    def _apply(self) -> None:
        if self.server is not None and self.requested:
            self.server.should_exit = True
            self.server.force_exit = self.requested > 1


def _guard(lab: Any, campaigns: Any) -> Any:
    """When the supervisor dies: the lab safe at once, every campaign paused (its
    experiment interrupted, repeated on resume), one line, exit (nothing would make the
    lab safe if this process died next)."""
    from robochem.protocols.runtime.supervisor import EXIT_SUPERVISOR_LOST

    pending: set[asyncio.Task[Any]] = set()

    async def react(reason: str) -> None:
        safe = asyncio.create_task(lab.safe_state(temperature=True))
        try:
            await asyncio.wait_for(campaigns.pause_all(reason), LOST_PAUSE_BOUND_S)
        except TimeoutError:
            log.error("%s: campaigns not paused within %g s", reason, LOST_PAUSE_BOUND_S)
        except Exception:
            # the lab is made safe below whatever went wrong here: log it and go on
            log.exception("%s: pausing the campaigns failed", reason)
        # Safe state again until every engine has paused: a step being cancelled can still
        # send its command (a syringe pump's start) after the first one.
        for engine in list(campaigns.engines.values()):
            for _ in range(int(LOST_PAUSE_BOUND_S * 10)):
                if engine.state.value not in ("running", "pausing"):
                    break
                await asyncio.sleep(0.1)
                await lab.safe_state(temperature=True)
        await safe
        await lab.safe_state(temperature=True)
        print(
            f"robochem: {reason}; the lab is in its safe state and running campaigns are "
            "paused; start the dashboard again to resume them",
            file=sys.stderr,
            flush=True,
        )
        os._exit(EXIT_SUPERVISOR_LOST)

    def lost(reason: str) -> None:
        task = watch(asyncio.get_running_loop().create_task(react(reason)), "going safe")
        pending.add(task)

    return lost


# -- commands ---------------------------------------------------------------------------------


def serve_command(platform_file: Path, *, host: str, port: int) -> int:
    """``robochem serve``: the supervisor, or (in the child) the dashboard."""
    from robochem.protocols.runtime.link import SupervisorLink
    from robochem.protocols.runtime.supervisor import supervise, supervision_wanted

    link = SupervisorLink.from_env()
    platform = _load_platform(platform_file)
    if platform is None:
        return 1
    if link is None and supervision_wanted():
        argv = ["serve", "--platform", str(platform_file), "--host", host, "--port", str(port)]
        return supervise(
            argv,
            platform,
            database_url=None,
            resume_hint=lambda cid: f"campaign {cid} was running: resume it from the dashboard",
        )
    _install_clock(platform)
    run(run_dashboard(platform, host=host, port=port, link=link))
    return 0


def demo_command(*, host: str, port: int, speed: float, reaction: str, seed: int) -> int:
    """``robochem demo``: the simulated lab (a process), then the supervised dashboard."""
    from robochem.protocols.runtime.link import SupervisorLink
    from robochem.protocols.runtime.supervisor import supervise, supervision_wanted
    from robochem.web.runtime import EXAMPLES

    link = SupervisorLink.from_env()
    example = reaction if (EXAMPLES / f"{reaction}.yaml").is_file() else None
    if link is not None:  # the controller: the lab is running, its platform file given
        platform = _load_platform(Path(os.environ[ENV_DEMO_PLATFORM]))
        if platform is None:
            return 1
        _install_clock(platform)
        dashboard = run_dashboard(
            platform,
            host=host,
            port=port,
            start_example=example,
            login_user=DEMO_USER,
            link=link,
        )
        run(dashboard)
        return 0
    with tempfile.TemporaryDirectory(prefix="robochem-demo-") as tmp:
        platform_file = Path(tmp) / "lab.yaml"
        sim = _start_sim(platform_file, Path(tmp), speed=speed, reaction=reaction, seed=seed)
        try:
            platform = _load_platform(platform_file)
            if platform is None:
                return 1
            print(f"simulated lab running at x{speed:g} ({reaction}); Ctrl-C stops everything")
            sys.stdout.flush()
            if supervision_wanted():
                argv = ["demo", "--host", host, "--port", str(port), "--speed", repr(speed)]
                argv += ["--reaction", reaction, "--seed", str(seed)]
                return supervise(
                    argv,
                    platform,
                    database_url=None,
                    resume_hint=lambda cid: f"campaign {cid} was running",
                    env={ENV_DEMO_PLATFORM: str(platform_file)},
                )
            _install_clock(platform)
            run(
                run_dashboard(
                    platform, host=host, port=port, start_example=example, login_user=DEMO_USER
                )
            )
            return 0
        finally:
            _stop(sim)


def _start_sim(
    platform_file: Path, tmp: Path, *, speed: float, reaction: str, seed: int
) -> subprocess.Popen[str]:
    """``robochem sim`` in its own process group (a Ctrl-C at the terminal must not stop
    the lab before the dashboard made it safe); it stops 10 s after this process dies."""
    command = [sys.executable, "-m", "robochem.cli", "sim", "--json", "--until-stdin-closes"]
    command += ["--platform-out", str(platform_file), "--speed", repr(speed)]
    command += ["--reaction", reaction, "--seed", str(seed), "--data-dir", str(tmp / "nmr")]
    log_file = (tmp / "sim.log").open("w")
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
        process_group=0,
    )
    log_file.close()
    assert proc.stdout is not None
    line = _readline(proc, SIM_START_S)
    try:
        json.loads(line)  # the endpoint map: the lab is up
    except ValueError:
        _stop(proc)
        raise RuntimeError(
            f"robochem sim did not start (see {tmp / 'sim.log'}): {line!r}"
        ) from None
    return proc


def _readline(proc: subprocess.Popen[str], timeout_s: float) -> str:
    import threading

    assert proc.stdout is not None
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return out[0] if out else ""


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _load_platform(path: Path) -> Any:
    from robochem.protocols.errors import ProtocolError
    from robochem.protocols.load import load_platform

    try:
        return load_platform(path)
    except ProtocolError as exc:
        for issue in exc.issues:
            print(str(issue), file=sys.stderr)
        return None


def _install_clock(platform: Any) -> None:
    """A platform written by ``robochem sim`` carries its clock: share its simulated time."""
    from robochem.clock import Clock, set_clock

    if platform.clock:
        set_clock(Clock(speed=platform.clock["speed"], epoch=platform.clock["epoch"]))


def run(coro: Any) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(coro)
