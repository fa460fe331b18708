"""Facts from the device reference, checked in the driver AND in its simulator.

The driver and the simulator are written independently (neither imports the other's
tables): that is what catches a misreading. Each fact below quotes the line of the device
reference (``devices.md``, the wire-protocol reference both were written from) it comes
from, derives the expected values from that quote, and checks both sides against them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from robochem.drivers import chemyx as chemyx_driver
from robochem.drivers import harvard as harvard_driver
from robochem.drivers import knauer as knauer_driver
from robochem.drivers import manson as manson_driver
from robochem.simulator import chemyx as chemyx_sim
from robochem.simulator import harvard as harvard_sim
from robochem.simulator import manson as manson_sim
from robochem.simulator.knauer import KnauerPumpSimulator

#: The shared reference, where a checkout has it next to the repository.
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "devices.md"

HARVARD_DIAMETER = "| `diameter [mm]` | `#.#### mm`. flowchem accepts 1–33 mm. |"
HARVARD_RATE_UNITS = (
    "- Rate units are written `m|u|n|p` + `/` + `h|m|s`: `m/m` = ml/min, `u/h` = µl/h."
)
HARVARD_REPLY_UNITS = "- Replies spell units out: `ml/min`, `ul/hr`, …"
HARVARD_TICKS = "Ticks are 1/56 000 000 s."
CHEMYX_DIAMETER = "| `set diameter X` | mm, up to 3 decimals; 0.103–40.000 mm on the Fusion |"
MANSON_MODELS = "**Models:** HCS-3102, HCS-3014, HCS-3204, HCS-3202."
MANSON_GMAX = "| `GMAX` | `VVVCCC`: V×10, A×10 (A×100 on the alternative-range models) |"
KNAUER_HEADS = ("- 10 ml head: 400 bar, 10000 µl/min.", "- 50 ml head: 150 bar, 50000 µl/min.")

QUOTES = [
    HARVARD_DIAMETER, HARVARD_RATE_UNITS, HARVARD_REPLY_UNITS, HARVARD_TICKS,
    CHEMYX_DIAMETER, MANSON_MODELS, MANSON_GMAX, *KNAUER_HEADS,
]  # fmt: skip


def _range(quote: str) -> tuple[float, float]:
    low, high = re.search(r"(\d+(?:\.\d+)?)–(\d+(?:\.\d+)?) mm", quote).groups()  # type: ignore[union-attr]
    return float(low), float(high)


# The reference lives beside the repository (../shared/reference), not in it: a clone
# elsewhere cannot compare the quotes, while the facts below are still checked against them.
# CI always has it beside the checkout (as for ../shared/data): there a missing file fails.
@pytest.mark.skipif(
    not REFERENCE.is_file() and not os.environ.get("CI"),
    reason="../shared/reference/devices.md is not beside this checkout (a clone elsewhere)",
)
@pytest.mark.parametrize("quote", QUOTES)
def test_the_quotes_are_the_reference_text(quote: str) -> None:
    assert quote in REFERENCE.read_text(encoding="utf-8")


def test_harvard_diameter_range() -> None:
    expected = _range(HARVARD_DIAMETER)
    assert expected == (1.0, 33.0)
    assert expected == harvard_driver.DIAMETER_RANGE_MM
    assert expected == harvard_sim.DIAMETER_RANGE_MM


async def test_harvard_simulator_refuses_a_diameter_outside_the_range(running, manual_clock):
    from robochem.drivers.transport import open_byte_transport

    sim = await harvard_sim.Elite11Simulator(clock=manual_clock).start()
    running.append(sim)
    link = open_byte_transport(sim.url(), timeout_s=2.0)
    running.append(link)
    low, high = _range(HARVARD_DIAMETER)
    frame = harvard_driver._frame_reply  # the driver's framing, not its range check
    for inside in (low, high):
        assert b"error" not in await link.exchange(f"diameter {inside}\r".encode(), frame)
    for outside in (low - 0.5, high + 0.5):
        reply = await link.exchange(f"diameter {outside}\r".encode(), frame)
        assert b"Argument error" in reply


def test_harvard_rate_units_sent() -> None:
    # `m/m` = ml/min and `u/h` = µl/h: what the driver sends, what the simulator reads.
    assert "`m/m` = ml/min" in HARVARD_RATE_UNITS and "`u/h` = µl/h" in HARVARD_RATE_UNITS
    assert harvard_driver.format_rate_arg(1.5) == "1.5 m/m"
    assert harvard_driver.format_rate_arg(0.0125) == "12.5 u/m"
    assert harvard_sim.parse_rate("1.5", "m/m") == pytest.approx(1.5)
    assert harvard_sim.parse_rate("60", "u/h") == pytest.approx(60e-3 / 60)
    for prefix, scale in (("m", 1.0), ("u", 1e-3), ("n", 1e-6), ("p", 1e-9)):
        for per, to_min in (("h", 1 / 60), ("m", 1.0), ("s", 60.0)):
            assert harvard_sim.parse_rate("2", f"{prefix}/{per}") == pytest.approx(
                2 * scale * to_min
            )


def test_harvard_rate_units_replied() -> None:
    # Replies spell the units out: the simulator writes them so, the driver reads them.
    assert "`ml/min`, `ul/hr`" in HARVARD_REPLY_UNITS
    assert harvard_sim.format_rate(1.5) == "1.500 ml/min"
    assert harvard_sim.format_rate(0.0125).endswith(" ul/min")
    assert harvard_driver.parse_rate_ml_min("1.5 ml/min") == pytest.approx(1.5)
    assert harvard_driver.parse_rate_ml_min("60 ul/hr") == pytest.approx(60e-3 / 60)
    assert harvard_driver.parse_rate_ml_min("1.000 nl/min") == pytest.approx(1e-6)


def test_harvard_status_ticks() -> None:
    ticks = int(HARVARD_TICKS.split("1/")[1].split(" s")[0].replace(" ", ""))
    assert ticks == 56_000_000
    assert ticks == harvard_driver.TICKS_PER_S
    assert ticks == harvard_sim.TICKS_PER_S


def test_chemyx_diameter_range() -> None:
    expected = _range(CHEMYX_DIAMETER)
    assert expected == (0.103, 40.0)
    assert expected == chemyx_driver.DIAMETER_RANGE_MM
    assert expected == chemyx_sim.DIAMETER_RANGE_MM


def test_manson_fine_current_models() -> None:
    # The models listed are the ones whose current is programmed in 0.01 A (A×100).
    models = set(re.findall(r"HCS-\d{4}", MANSON_MODELS))
    assert "A×100" in MANSON_GMAX and len(models) == 4
    assert set(manson_driver.FINE_CURRENT_MODELS) == models
    assert set(manson_sim.FINE_CURRENT_MODELS) == models
    for model in models:
        assert manson_sim.MansonSimulator(model=model).current_per_count == 0.01
    assert manson_sim.MansonSimulator(model="HCS-3302").current_per_count == 0.1


def test_knauer_head_limits() -> None:
    expected = {}
    for quote in KNAUER_HEADS:
        head, bar, flow = (int(x) for x in re.findall(r"\d+", quote))
        expected[head] = (flow, bar)
    assert expected == knauer_driver.HEAD_LIMITS
    for head, (_flow, bar) in expected.items():
        assert KnauerPumpSimulator(head_ml=head).pmax[head] == bar
