"""Data that cannot silently vanish, and resumes that keep what was done (issue 22, items
4 and 6): a database deleted or full mid-run ends the run in safe state with one line and
no "completed"; raw spectra live in robochem's data directory; an experiment whose
measurement is committed is finished from it after a crash, never measured again; a
valid shim survives a resume."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine_kit import Env, engine_protocol, wait_event
from sqlalchemy import event, select
from supervised import lab_state, sim_process, unsafe

from robochem.analysis import analyze_folder
from robochem.events import EventBus
from robochem.protocols.load import load_platform
from robochem.protocols.runtime.engine import Engine, EngineState, Policy, create_campaign
from robochem.protocols.runtime.lab import connect_lab
from robochem.settings import get_settings
from robochem.storage.db import Database, StorageError
from robochem.storage.locks import CampaignBusy
from robochem.storage.models import Campaign, Event, Experiment, Measurement

ROBOCHEM = [sys.executable, "-m", "robochem.cli"]


# -- storage that fails mid-run ------------------------------------------------------------------


async def test_database_deleted_mid_run_ends_safe_with_one_clear_line(
    env: Env, tmp_path: Path
) -> None:
    cid = env.campaign(budget=2)
    engine = env.engine(cid)
    task = asyncio.create_task(engine.run())
    await wait_event(env.bus, lambda e: e.kind == "step" and e.payload.get("step") == "SetLight",
                     task)  # fmt: skip
    (tmp_path / "robochem.db").unlink()  # the file the sqlite_url fixture points at
    with pytest.raises(StorageError) as info:
        await asyncio.wait_for(task, 60)
    message = str(info.value)
    assert "\n" not in message
    assert f"{tmp_path / 'robochem.db'} was deleted while in use" in message
    assert "the lab is in safe state" in message
    assert f"robochem run --resume {cid}" in message
    assert engine.state is not EngineState.COMPLETED
    env.assert_safe()


async def test_disk_full_ends_safe_and_the_campaign_resumes_once_space_is_back(
    env: Env,
) -> None:
    cid = env.campaign(budget=2)
    full = {"on": False}

    def cap(dbapi_connection: Any, *_: Any) -> None:
        # SQLite's page cap: the same "database or disk is full" a full disk gives.
        pages = 10_000_000 if not full["on"] else dbapi_connection.execute(
            "PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(env.db.engine, "checkout", cap)
    engine = env.engine(cid)
    task = asyncio.create_task(engine.run())
    await wait_event(env.bus, lambda e: e.kind == "measurement", task, wall_s=90)
    full["on"] = True
    with pytest.raises(StorageError, match="database or disk is full") as info:
        await asyncio.wait_for(task, 120)
    assert "the lab is in safe state" in str(info.value)
    env.assert_safe()

    full["on"] = False  # space is back
    state = await asyncio.wait_for(env.engine(cid).run(), 180)
    assert state is EngineState.COMPLETED
    exps = env.experiments(cid)
    assert sum(e.status == "done" for e in exps) == 2
    assert all(e.status in ("done", "interrupted", "failed") for e in exps)


# -- raw spectra ----------------------------------------------------------------------------------


async def test_raw_spectra_are_copied_into_the_data_directory(env: Env) -> None:
    cid = env.campaign(budget=1, initial=1)
    state = await asyncio.wait_for(env.engine(cid).run(), 120)
    assert state is EngineState.COMPLETED
    data_dir = get_settings().data_dir
    with env.db.session() as s:
        (m,) = s.scalars(select(Measurement)).all()
        raw, sha, stored_yield = Path(m.raw_path), m.raw_sha256, m.yield_percent
    assert raw.is_relative_to(data_dir / "spectra" / f"campaign-{cid}")
    shutil.rmtree(env.sim.data_root)  # the instrument's own folder is gone
    again = analyze_folder(raw, env.engine(cid).protocol.analysis)
    assert again.source["sha256"] == sha
    assert again.status != "rejected"
    assert again.yield_percent is not None and stored_yield is not None


# -- resume keeps what was done ------------------------------------------------------------------


def _slow_cleaning_protocol(budget: int) -> str:
    """The engine test protocol with a 6-minute cleaning flush: a wide window (1.2 s of
    wall time at x300) between the committed measurement and the end of the experiment."""
    text = engine_protocol(budget=budget)
    old = "cleaning: {volume: 2 mL, flow: 4 mL/min}"
    assert old in text
    return text.replace(old, "cleaning: {volume: 6 mL, flow: 1 mL/min}")


#: An engine in a process of its own, so that SIGKILL is a real crash (no finally runs).
ENGINE_PROCESS = """
import asyncio, sys
from robochem.clock import Clock, set_clock
from robochem.events import EventBus
from robochem.protocols.load import load_platform
from robochem.protocols.runtime.engine import Engine, Policy
from robochem.protocols.runtime.lab import connect_lab
from robochem.storage.db import Database

async def main(url, platform_file, campaign_id):
    platform = load_platform(platform_file)
    clock = Clock(speed=platform.clock["speed"], epoch=platform.clock["epoch"])
    set_clock(clock)
    db = Database(url)
    lab = await connect_lab(platform)
    engine = Engine(db, EventBus(db, clock=clock), lab, campaign_id, clock=clock,
                    policy=Policy(on_rejected="fail"))
    await engine.run()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


@pytest.fixture
def slow_sim(tmp_path: Path) -> Iterator[Path]:
    """``robochem sim`` at x300 in its own process; yields its platform file."""
    with sim_process(tmp_path, speed=300) as sim:
        yield sim.platform


def _measured_but_running(db: Database, campaign_id: int) -> int | None:
    with db.session() as s:
        return s.scalar(
            select(Experiment.id)
            .join(Measurement, Measurement.experiment_id == Experiment.id)
            .where(Experiment.campaign_id == campaign_id)
            .where(Experiment.status == "running")
        )


def _crash_after_a_measurement(url: str, platform_file: Path, campaign_id: int) -> int:
    """Run the engine in its own process and SIGKILL it as soon as an experiment has a
    committed measurement but is not finished (its cleaning flush); returns that id."""
    db = Database(url)
    proc = subprocess.Popen(
        [sys.executable, "-c", ENGINE_PROCESS, url, str(platform_file), str(campaign_id)],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        measured = None
        while measured is None and time.monotonic() < deadline and proc.poll() is None:
            measured = _measured_but_running(db, campaign_id)
            time.sleep(0.02)
        assert measured is not None, "no measurement was committed while the engine ran"
        os.kill(proc.pid, signal.SIGKILL)  # in the cleaning flush, after the commit
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        db.dispose()
    return measured


async def _resume(db: Database, platform_file: Path, campaign_id: int) -> EngineState:
    from robochem.clock import Clock, set_clock

    platform = load_platform(platform_file)
    clock = Clock(speed=platform.clock["speed"], epoch=platform.clock["epoch"])
    set_clock(clock)
    lab = await connect_lab(platform)
    try:
        engine = Engine(db, EventBus(db, clock=clock), lab, campaign_id, clock=clock,
                        policy=Policy(on_rejected="fail"))  # fmt: skip
        return await asyncio.wait_for(engine.run(), 240)
    finally:
        await lab.close()


@pytest.mark.slow
def test_a_committed_measurement_is_kept_after_a_crash(slow_sim: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = Database(url)
    cid = create_campaign(db, _slow_cleaning_protocol(budget=2), platform=load_platform(slow_sim))
    measured = _crash_after_a_measurement(url, slow_sim, cid)
    with db.session() as s:
        (before,) = s.scalars(select(Measurement).where(Measurement.experiment_id == measured))

    assert asyncio.run(_resume(db, slow_sim, cid)) is EngineState.COMPLETED
    with db.session() as s:
        exps = {e.id: e for e in s.scalars(select(Experiment).where(Experiment.campaign_id == cid))}
        kept = exps[measured]
        assert kept.status == "done"
        assert [m.id for m in kept.measurements] == [before.id]  # not measured again
        assert not any(e.repeat_of_id == measured for e in exps.values())
        assert sum(e.status == "done" for e in exps.values()) == 2
        kinds = [e.kind for e in s.scalars(select(Event).where(Event.campaign_id == cid)
                                           .where(Event.experiment_id == measured)
                                           .order_by(Event.id))]  # fmt: skip
        # the rest of it (the cleaning flush) ran on resume, before it was closed
        resumed_at = kinds.index("experiment.resumed")
        assert "step" in kinds[resumed_at:]
        assert kinds[-1] == "experiment.done"
        campaign = s.get(Campaign, cid)
        told = [o["point"] for o in campaign.optimizer_state["observations"]]
        assert kept.conditions in told
    db.dispose()


async def test_an_interruption_after_the_measurement_keeps_it(env: Env) -> None:
    """An immediate pause in the cleaning flush ends the experiment done, not repeated."""
    cid = env.campaign(budget=2)
    engine = env.engine(cid)
    task = asyncio.create_task(engine.run())
    measurement = await wait_event(env.bus, lambda e: e.kind == "measurement", task, wall_s=90)
    await engine.request_pause(immediate=True, reason="operator")
    await wait_event(env.bus, lambda e: e.kind == "campaign.state"
                     and e.payload.get("to") == "paused", task)  # fmt: skip
    await engine.abort("test over")
    await asyncio.wait_for(task, 60)
    with env.db.session() as s:
        exp = s.get(Experiment, measurement.experiment_id)
        assert exp is not None and exp.status == "done"
        assert len(exp.measurements) == 1
        assert not s.scalars(select(Experiment).where(Experiment.repeat_of_id == exp.id)).all()
    env.assert_safe()


async def test_a_valid_shim_is_kept_on_resume(env: Env) -> None:
    """The simulated platform shims at the start; a resumed run does not shim again while
    that shim holds (no ``every``, the standard's line below the limit)."""
    cid = env.campaign(budget=2)
    engine = env.engine(cid, exit_on_pause=True)
    task = asyncio.create_task(engine.run())
    await wait_event(env.bus, lambda e: e.kind == "nmr.shimmed", task, wall_s=90)
    await engine.request_pause(reason="operator")  # takes effect after this experiment
    assert await asyncio.wait_for(task, 120) is EngineState.PAUSED
    state = await asyncio.wait_for(env.engine(cid).run(), 120)
    assert state is EngineState.COMPLETED
    with env.db.session() as s:
        kinds = [e.kind for e in s.scalars(select(Event).where(Event.campaign_id == cid)
                                           .order_by(Event.id))]  # fmt: skip
        resumed = s.scalars(select(Event).where(Event.kind == "campaign.resumed")).all()
    assert kinds.count("experiment.done") == 2
    assert kinds.count("nmr.shim") == 1
    assert any("shim_kept" in e.payload for e in resumed)


async def test_a_second_controller_for_a_running_campaign_is_refused(env: Env) -> None:
    """``--resume`` of a campaign that another live process runs would drive the lab twice."""
    cid = env.campaign(budget=2)
    first = env.engine(cid)
    task = asyncio.create_task(first.run())
    await wait_event(env.bus, lambda e: e.kind == "experiment.running", task)
    with pytest.raises(CampaignBusy, match=f"campaign {cid} is being run by another process"):
        await env.engine(cid).run()
    assert not task.done() and first.state is EngineState.RUNNING
    await first.abort("test over")
    assert await asyncio.wait_for(task, 60) is EngineState.ABORTED
    env.assert_safe()


@pytest.mark.slow
def test_robochem_run_with_its_database_deleted_exits_safe_with_one_line(
    tmp_path: Path,
) -> None:
    """The acceptance, as a user meets it: a supervised ``robochem run`` whose SQLite file
    is deleted while the lab irradiates ends non-zero with one line, no traceback, no
    "completed", and the virtual lab's own state shows pumps stopped and the light off."""

    protocol = tmp_path / "protocol.yaml"
    protocol.write_text(engine_protocol(budget=2))
    db_file = tmp_path / "lab.db"
    with sim_process(tmp_path, speed=300) as sim, httpx.Client(timeout=5) as client:
        run = subprocess.Popen(
            [*ROBOCHEM, "run", str(protocol), "--platform", str(sim.platform),
             "--db", f"sqlite:///{db_file}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not lab_state(client, sim.state_url)["reactor"]["light"]["on"]:
                assert time.monotonic() < deadline and run.poll() is None, "never irradiated"
                time.sleep(0.05)
            db_file.unlink()
            _, stderr = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode not in (0, None)
        assert unsafe(lab_state(client, sim.state_url)) == []
    # the logged error, and the one line that says what to do (not wrapped by the terminal)
    lines = [ln for ln in stderr.splitlines() if "--resume" in ln]
    assert len(lines) == 1, stderr
    assert f"{db_file} was deleted while in use" in lines[0]
    assert "the lab is in safe state" in lines[0]
    assert "Traceback" not in stderr
    assert "completed" not in stderr.replace("is not completed", "")
