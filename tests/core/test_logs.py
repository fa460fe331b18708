import json
import logging

import pytest

from robochem.logs import configure_logging, log_context


def test_records_carry_device_campaign_and_experiment(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = logging.getLogger("robochem.test")
    with log_context(campaign_id=7), log_context(experiment_id=3, device="pump-a"):
        log.info("flow set")
    log.info("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"] == "flow set"
    assert (lines[0]["campaign_id"], lines[0]["experiment_id"], lines[0]["device"]) == (
        7,
        3,
        "pump-a",
    )
    assert "campaign_id" not in lines[1]


def test_text_format_appends_context_and_level_filters(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING", "text")
    log = logging.getLogger("robochem.test")
    with log_context(device="nmr"):
        log.info("hidden")
        log.warning("lamp hot")
    err = capsys.readouterr().err
    assert "hidden" not in err
    assert "lamp hot [device=nmr]" in err
