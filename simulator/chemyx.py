"""Chemyx Fusion 100/200/4000 syringe pump, written from docs/devices.md §5 independently of
the driver.

Requests are lower-case and end with CR or CR LF (a lone LF does not end a request). Each
reply is two CR LF lines: the echoed command, then the result [unverified: RoboChem v1 read
its data from line index 1]. Set commands answer ``<parameter> = <value>`` with the value the
pump now holds: a value out of limits is clamped to the limit and echoed as such, so the echo
differs from the value sent (the vendor's documented signal).

The run evolves on the shared clock: ``pump status`` reads 3 (delayed) during the start delay,
1 while the volume is being delivered, 0 once it is done; ``stall()`` makes it 4.
"""

from __future__ import annotations

import math

from robochem.clock import Clock
from robochem.simulator.base import StreamSimulator

DIAMETER_RANGE_MM = (0.103, 40.0)
# Pusher speed and travel behind the rate/volume limits [unverified, plausible values].
MAX_SPEED_MM_MIN = 90.0
MIN_SPEED_MM_MIN = 1.0e-4
TRAVEL_MM = 120.0
MIN_VOLUME_ML = 1.0e-6

# units mode -> (rate factor from ml/min, volume factor from ml, volume unit)
UNITS = {0: (1.0, 1.0, "ml"), 1: (60.0, 1.0, "ml"), 2: (1000.0, 1000.0, "ul"),
         3: (60000.0, 1000.0, "ul")}  # fmt: skip

STOPPED, RUNNING, PAUSED, DELAYED, STALLED = 0, 1, 2, 3, 4


def _fmt(value: float) -> str:
    return f"{value:.6g}"


class ChemyxSimulator(StreamSimulator):
    family = "chemyx-fusion"

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        diameter_mm: float = 14.567,
    ) -> None:
        super().__init__(clock=clock, host=host, port=port)
        self.units = 0
        self.diameter_mm = diameter_mm
        self.rate_ml_min = 1.0
        self.volume_ml = 1.0  # signed: + infuse, - withdraw
        self.delay_min = 0.0
        self.state = STOPPED
        self.dispensed_ml = 0.0  # of the current (or last) run, unsigned
        self.total_infused_ml = 0.0  # for a virtual lab: net volume pushed out
        self._phase_start = self.clock.now()
        self._last = self.clock.now()

    # -- physics -----------------------------------------------------------------
    def limits_ml(self) -> tuple[float, float, float, float]:
        """(max rate, min rate) in ml/min and (max volume, min volume) in ml."""
        area = math.pi * (self.diameter_mm / 2) ** 2
        return (
            float(_fmt(area * MAX_SPEED_MM_MIN / 1000)),
            float(_fmt(area * MIN_SPEED_MM_MIN / 1000)),
            float(_fmt(area * TRAVEL_MM / 1000)),
            MIN_VOLUME_ML,
        )

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def flow_ml_min(self) -> float:
        """Signed flow now (+ infusing, - withdrawing)."""
        if self.state != RUNNING:
            return 0.0
        return math.copysign(self.rate_ml_min, self.volume_ml)

    def update(self) -> None:
        now = self.clock.now()
        if self.state == DELAYED and now - self._phase_start >= self.delay_min * 60:
            self.state = RUNNING
            self._last = self._phase_start + self.delay_min * 60
        if self.state == RUNNING:
            moved = self.rate_ml_min * max(0.0, now - self._last) / 60
            left = abs(self.volume_ml) - self.dispensed_ml
            if moved >= left:
                moved = max(0.0, left)
                self.state = STOPPED
            self.dispensed_ml += moved
            self.total_infused_ml += math.copysign(moved, self.volume_ml)
        self._last = now

    def stall(self) -> None:
        self.update()
        self.state = STALLED

    # -- protocol -----------------------------------------------------------------
    def split(self, buffer: bytes) -> tuple[bytes | None, bytes]:
        i = buffer.find(b"\r")
        if i < 0:
            return None, buffer
        return buffer[:i].lstrip(b"\n"), buffer[i + 1 :]

    def device_error_reply(self, request: bytes) -> bytes | None:
        self.stall()
        return self.handle(request)

    def handle(self, request: bytes) -> bytes | None:
        echo = request.decode("ascii", "replace").strip()
        if not echo:
            return None
        self.update()
        result = self._answer(echo)
        return f"{echo}\r\n{result}\r\n".encode("ascii", "replace")

    def _answer(self, text: str) -> str:
        words = text.split()
        rate_f, vol_f, vol_unit = UNITS[self.units]
        if text == "start":
            if self.state == STALLED:
                return "Pump stalled!"
            self.dispensed_ml = 0.0
            self._phase_start = self._last = self.clock.now()
            if self.delay_min > 0:
                self.state = DELAYED
                return "Pump delay..."
            self.state = RUNNING
            return "Pump start running..."
        if text == "stop":
            if self.state != STALLED:
                self.state = STOPPED
            return "Pump stop!"
        if text == "pause":
            if self.state in (RUNNING, DELAYED):
                self.state = PAUSED
            return "Pump pause!"
        if text == "restart":
            if self.state == PAUSED:
                self.state = RUNNING
                self._last = self.clock.now()
            return "Pump restart running..."
        if text == "pump status":
            return str(self.state)
        if text == "dispensed volume":
            return f"dispensed volume = {_fmt(self.dispensed_ml * vol_f)} {vol_unit}"
        if text == "elapsed time":
            return f"elapsed time = {_fmt((self.clock.now() - self._phase_start) / 60)} min"
        if text == "read limit parameter":
            max_r, min_r, max_v, min_v = self.limits_ml()
            return " ".join(
                _fmt(x) for x in (max_r * rate_f, min_r * rate_f, max_v * vol_f, min_v * vol_f)
            )
        if len(words) == 3 and words[0] == "set":
            return self._set(words[1], words[2])
        return "Invalid command"

    def _set(self, what: str, value: str) -> str:
        rate_f, vol_f, _ = UNITS[self.units]
        try:
            x = float(value)
        except ValueError:
            return "Invalid command"
        if not math.isfinite(x):
            return "Invalid command"
        if self.state in (RUNNING, DELAYED) and what in ("diameter", "units", "volume"):
            return "Pump is running"
        max_r, min_r, max_v, min_v = self.limits_ml()
        if what == "units":
            if x in (0, 1, 2, 3):
                self.units = int(x)
            return f"units = {self.units}"
        if what == "diameter":
            if DIAMETER_RANGE_MM[0] <= x <= DIAMETER_RANGE_MM[1]:
                self.diameter_mm = round(x, 3)
            return f"diameter = {self.diameter_mm:.3f}"
        if what == "rate":
            self.rate_ml_min = min(max(x / rate_f, min_r), max_r)  # the pump clamps
            return f"rate = {_fmt(self.rate_ml_min * rate_f)}"
        if what == "volume":
            magnitude = min(max(abs(x) / vol_f, min_v), max_v)
            self.volume_ml = math.copysign(magnitude, x)
            return f"volume = {_fmt(self.volume_ml * vol_f)}"
        if what == "delay":
            self.delay_min = max(0.0, x)
            return f"delay = {_fmt(self.delay_min)}"
        return "Invalid command"
