"""One controller per campaign: the lock refuses a second holder and dies with its process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from wire import first_line

from robochem.storage.db import Database
from robochem.storage.locks import CampaignBusy, campaign_lock

HOLDER = """
import sys, time
from robochem.storage.db import Database
from robochem.storage.locks import campaign_lock
db = Database(sys.argv[1])
with campaign_lock(db, 7):
    print("held", flush=True)
    time.sleep(600)
"""


def _hold_in_a_process(url: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True
    )
    assert first_line(proc, timeout=30).strip() == "held"
    return proc


def test_a_second_holder_is_refused_and_the_lock_is_freed_after(db_url: str) -> None:
    first, second = Database(db_url), Database(db_url)
    with campaign_lock(first, 7):
        busy = pytest.raises(CampaignBusy, match="campaign 7 is being run by another process")
        with busy, campaign_lock(second, 7):
            pass
        with campaign_lock(second, 8):  # another campaign is free
            pass
    with campaign_lock(second, 7):  # released
        pass
    first.dispose()
    second.dispose()


def test_a_killed_holder_releases_the_campaign(db_url: str) -> None:
    Database(db_url).dispose()  # migrated before the holder starts
    proc = _hold_in_a_process(db_url)
    db = Database(db_url)
    try:
        with pytest.raises(CampaignBusy), campaign_lock(db, 7):
            pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10  # the server notices a dead connection soon
        while True:
            try:
                with campaign_lock(db, 7):
                    break
            except CampaignBusy:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
        db.dispose()
