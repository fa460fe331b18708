"""Simulated Manson HCS-3xxx power supply with an LED load (devices.md §9).

ASCII commands end in ``\\r`` (``\\r\\n`` is accepted too); every reply line ends in
``\\r``; a command that worked ends its reply with ``OK``. Commands with a wrong argument,
or unknown commands, get no reply at all [unverified against the manual].

The load is an LED string: forward voltage ``led_vf_v`` plus a dynamic resistance. With
the output on, the supply runs in constant current (CC) when the voltage setting allows
the set current, else in constant voltage (CV). ``set_lamp_failure()`` opens the string:
no current flows and the supply sits in CV at its set voltage.

Written from the reference alone; it shares no code with the driver.
"""

from __future__ import annotations

import re

from robochem.clock import Clock
from robochem.simulator.base import StreamSimulator, split_lines

#: Models whose current is programmed in 0.01 A steps (the others use 0.1 A).
FINE_CURRENT_MODELS = {"HCS-3102", "HCS-3014", "HCS-3204", "HCS-3202"}
MODEL_LIMITS = {  # max volts, max amps
    "HCS-3102": (36.0, 5.0),
    "HCS-3014": (16.0, 4.0),
    "HCS-3204": (60.0, 2.5),
    "HCS-3202": (36.0, 5.0),
    "HCS-3302": (32.0, 15.0),
}


class MansonSimulator(StreamSimulator):
    family = "manson"

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "HCS-3102",
        model_reply: str | None = None,
        led_vf_v: float = 12.0,
        led_resistance_ohm: float = 2.0,
        led_rated_current_a: float = 1.0,
    ) -> None:
        super().__init__(clock=clock, host=host, port=port)
        self.model = model
        #: What GMOD answers; some units reply e.g. "3102 " without the "HCS-" prefix.
        self.model_reply = model_reply if model_reply is not None else model
        self.max_v, self.max_a = MODEL_LIMITS.get(model, (36.0, 5.0))
        self.current_per_count = 0.01 if model in FINE_CURRENT_MODELS else 0.1
        self.set_voltage_v = 0.0
        self.set_current_a = 0.0
        self.output_on = False
        self.protection = False
        self.presets = [(5.0, 1.0), (12.0, 1.0), (24.0, 1.0)]
        self.led_vf_v = led_vf_v
        self.led_resistance_ohm = led_resistance_ohm
        self.led_rated_current_a = led_rated_current_a
        self.lamp_failure = False
        self._split = split_lines((b"\r\n", b"\r", b"\n"))

    # -- observable state -----------------------------------------------------------
    def output(self) -> tuple[float, float, int]:
        """(volts, amps, mode) at the terminals; mode 0 = CV, 1 = CC."""
        if not self.output_on:
            return 0.0, 0.0, 0
        if self.lamp_failure:
            return self.set_voltage_v, 0.0, 0
        v_needed = self.led_vf_v + self.set_current_a * self.led_resistance_ohm
        if self.set_voltage_v >= v_needed:
            return v_needed, self.set_current_a, 1
        amps = max(0.0, (self.set_voltage_v - self.led_vf_v) / self.led_resistance_ohm)
        return self.set_voltage_v, amps, 0

    @property
    def light_output_fraction(self) -> float:
        """LED output relative to its rated current (for a virtual lab)."""
        return min(1.0, self.output()[1] / self.led_rated_current_a)

    def set_lamp_failure(self, failed: bool = True) -> None:
        self.lamp_failure = failed

    # -- protocol -------------------------------------------------------------------
    def split(self, buffer: bytes) -> tuple[bytes | None, bytes]:
        return self._split(buffer)

    def handle(self, request: bytes) -> bytes | None:
        lines = self._answer(request)
        if lines is None:
            return None
        return b"".join(line.encode("ascii") + b"\r" for line in [*lines, "OK"])

    def device_error_reply(self, request: bytes) -> bytes | None:
        # The supply's error form is undocumented: answer the data lines without the OK.
        lines = self._answer(request) or []
        return b"".join(line.encode("ascii") + b"\r" for line in [*lines, ""])

    def _vc(self, volts: float, amps: float) -> str:
        return f"{round(volts * 10):03d}{round(amps / self.current_per_count):03d}"

    def _answer(self, request: bytes) -> list[str] | None:
        try:
            text = request.decode("ascii").strip()
        except UnicodeDecodeError:
            return None
        if not text:
            return None
        if text == "GMOD":
            return [self.model_reply]
        if text == "GMAX":
            return [self._vc(self.max_v, self.max_a)]
        if text == "GETS":
            return [self._vc(self.set_voltage_v, self.set_current_a)]
        if text == "GETD":
            volts, amps, mode = self.output()
            return [f"{round(volts * 100):04d}{round(amps * 100):04d}{mode}"]
        if text == "GETM":
            return [self._vc(v, a) for v, a in self.presets]
        if text in ("SOUT0", "SOUT1"):
            self.output_on = text == "SOUT0"  # inverted logic: 0 switches the output ON
            return []
        if text in ("SPRO0", "SPRO1"):
            self.protection = text == "SPRO1"
            return []
        if m := re.fullmatch(r"VOLT(\d{3})", text):
            volts = int(m.group(1)) / 10
            if volts > self.max_v:
                return None
            self.set_voltage_v = volts
            return []
        if m := re.fullmatch(r"CURR(\d{3})", text):
            amps = int(m.group(1)) * self.current_per_count
            if amps > self.max_a + 1e-9:
                return None
            self.set_current_a = round(amps, 2)
            return []
        if m := re.fullmatch(r"RUNM([0-2])", text):
            self.set_voltage_v, self.set_current_a = self.presets[int(m.group(1))]
            return []
        if m := re.fullmatch(r"PROM(\d{18})", text):
            digits = m.group(1)
            presets = []
            for i in range(3):
                chunk = digits[6 * i : 6 * i + 6]
                presets.append((int(chunk[:3]) / 10, int(chunk[3:]) * self.current_per_count))
            if any(v > self.max_v or a > self.max_a + 1e-9 for v, a in presets):
                return None
            self.presets = presets
            return []
        return None
