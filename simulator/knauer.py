"""Knauer AZURA P 2.1S / P 4.1S pump and AZURA V 2.1S valve, speaking the ASCII LAN/RS-232 protocol.

Written from docs/devices.md (Knauer sections), independently of the driver:

* pump: ``CMD?`` queries, ``CMD:value`` or ``CMD value`` sets, bare ``ON``/``OFF``/``REMOTE``/
  ``LOCAL`` (``REMOTE:1`` too). Requests end with CR, LF, CRLF or LFCR; replies end with CR.
  ``<CMD>:OK`` for accepted sets, ``<CMD>:<value>`` for queries, ``ERROR:1`` for an invalid
  message, ``ERROR:2`` for a refused (out-of-range) setpoint.
* valve: ``T`` (type), ``P`` (position), a position token moves; ``?`` refuses, ``E0``..``E6``
  report switching errors.

State evolves on the shared clock: pressure comes from ``pressure_source(flow_ml_min)``,
a PMAX trip stops the pump at once and latches, a PMIN trip stops it after 30 simulated s.
"""

from __future__ import annotations

from collections.abc import Callable

from robochem.clock import Clock
from robochem.simulator.base import StreamSimulator, split_lines

_ANY_EOL = (b"\r\n", b"\n\r", b"\r", b"\n")

# Codes the simulator writes into ERRORS? when a pressure limit trips. The real codes are
# not documented in the reference [unverified]; any change of ERRORS? is the signal.
ERROR_CODE_PMAX = 21
ERROR_CODE_PMIN = 22
PMIN_DELAY_S = 30.0


def default_pressure(flow_ml_min: float) -> float:
    """Back-pressure of a typical capillary reactor: rises linearly with flow (bar)."""
    return 1.0 + 8.0 * flow_ml_min if flow_ml_min > 0 else 0.0


class KnauerPumpSimulator(StreamSimulator):
    """An AZURA P 4.1S (with pressure sensor) or P 2.1S (without)."""

    family = "knauer-azura"

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        head_ml: int = 10,
        model: str = "P4.1S",
        pressure_source: Callable[[float], float] | None = None,
    ) -> None:
        super().__init__(clock=clock, host=host, port=port)
        if head_ml not in (10, 50):
            raise ValueError("head_ml must be 10 or 50")
        if model not in ("P4.1S", "P2.1S"):
            raise ValueError("model must be 'P4.1S' or 'P2.1S'")
        self.model = model
        self.head_ml = head_ml
        self.flow_ul_min = 0  # the setpoint
        self.running = False  # STARTMODE 0: comes up paused
        self.remote = False
        # Limits in 0.1 MPa (= bar) per head; the device defaults to the head maxima.
        self.pmax = {10: 400, 50: 150}
        self.pmin = {10: 0, 50: 0}
        self.settings: dict[str, int] = {
            "STARTLEVEL": 1,
            "STARTMODE": 0,
            "ERRIO": 0,
            "EXTCONTR": 0,
            "IMIN10": 0,
            "IMIN50": 0,
            "IMAX10": 100,
            "IMAX50": 100,
            "ADJ10": 1000,
            "ADJ50": 1000,
            "CORR10": 0,
            "CORR50": 0,
        }
        self.errors: list[int] = [0, 0, 0, 0, 0]  # newest first
        self.tripped: str | None = None  # "PMAX" / "PMIN" while latched
        #: flow (mL/min, 0 when stopped) -> pressure in bar; a virtual lab replaces it.
        self.pressure_source: Callable[[float], float] = pressure_source or default_pressure
        #: Added to the pressure (bar): a spike or a blockage, for fault tests.
        self.pressure_offset_bar = 0.0
        self._below_pmin_since: float | None = None

    def url(self, scheme: str = "tcp") -> str:
        """A LAN device: ``tcp://`` by default (``socket://`` for the RS-232 form)."""
        return super().url(scheme)

    # -- physics ---------------------------------------------------------------
    @property
    def flow_ml_min(self) -> float:
        """The flow actually delivered (0 while stopped)."""
        return self.flow_ul_min / 1000.0 if self.running else 0.0

    @property
    def pressure_bar(self) -> float:
        return max(0.0, float(self.pressure_source(self.flow_ml_min)) + self.pressure_offset_bar)

    def _latch(self, which: str, code: int) -> None:
        self.running = False
        self.tripped = which
        self.errors = [code, *self.errors[:4]]
        self._below_pmin_since = None

    def update(self) -> None:
        """Apply the pressure limits at the current simulated time."""
        if not self.running:
            self._below_pmin_since = None
            return
        p = self.pressure_bar
        if p > self.pmax[self.head_ml]:
            self._latch("PMAX", ERROR_CODE_PMAX)
            return
        pmin = self.pmin[self.head_ml]
        if pmin and p < pmin:
            now = self.clock.now()
            if self._below_pmin_since is None:
                self._below_pmin_since = now
            elif now - self._below_pmin_since >= PMIN_DELAY_S:
                self._latch("PMIN", ERROR_CODE_PMIN)
        else:
            self._below_pmin_since = None

    # -- protocol --------------------------------------------------------------
    split = staticmethod(split_lines(_ANY_EOL))

    def device_error_reply(self, request: bytes) -> bytes | None:
        return b"ERROR:2\r"

    def handle(self, request: bytes) -> bytes | None:
        text = request.decode("ascii", "replace").strip()
        if not text:
            return None  # CR and LF in separate chunks yield an empty request
        self.update()
        reply = self._answer(text)
        self.update()  # a new flow may trip a limit at once
        return reply.encode("ascii") + b"\r"

    def _answer(self, text: str) -> str:
        if text.endswith("?"):
            return self._query(text[:-1].rstrip(":"))
        for sep in (":", " "):
            if sep in text:
                cmd, _, value = text.partition(sep)
                return self._set(cmd.strip(), value.strip())
        return self._bare(text)

    def _bare(self, cmd: str) -> str:
        if cmd == "ON":
            if self.tripped:
                return "ERROR:2"  # a latched pressure error must be cleared first (OFF)
            self.running = True
            self._below_pmin_since = None
        elif cmd == "OFF":
            self.running = False
            self.tripped = None  # stopping acknowledges the latched error
        elif cmd == "REMOTE":
            self.remote = True
        elif cmd == "LOCAL":
            self.remote = False
        else:
            return "ERROR:1"
        return f"{cmd}:OK"

    def _query(self, cmd: str) -> str:
        if cmd == "FLOW":
            return f"FLOW:{self.flow_ul_min}"
        if cmd == "PRESSURE":
            if self.model == "P2.1S":
                return "ERROR:1"  # no sensor
            return f"PRESSURE:{round(self.pressure_bar)}"
        if cmd == "HEADTYPE":
            return f"HEADTYPE:{self.head_ml}"
        if cmd == "ERRORS":
            return "ERRORS:" + ",".join(str(c) for c in self.errors)
        if cmd in ("PMAX10", "PMAX50"):
            return f"{cmd}:{self.pmax[int(cmd[4:])]}"
        if cmd in ("PMIN10", "PMIN50"):
            return f"{cmd}:{self.pmin[int(cmd[4:])]}"
        if cmd == "IMOTOR":
            return f"IMOTOR:{min(100, int(self.flow_ml_min * 5))}"
        if cmd == "EXTFLOW":
            return "EXTFLOW:0"
        if cmd in self.settings and cmd != "EXTCONTR":
            return f"{cmd}:{self.settings[cmd]}"
        return "ERROR:1"

    def _set(self, cmd: str, value: str) -> str:
        if cmd in ("ON", "OFF", "REMOTE", "LOCAL"):
            # flowchem sends REMOTE:1 / LOCAL:1; treat like the bare command
            return self._bare(cmd)
        try:
            number = float(value)
        except ValueError:
            return "ERROR:1"
        if number != int(number):
            return "ERROR:1"  # the manual calls every value an integer
        n = int(number)
        if cmd == "FLOW":
            if not 0 <= n <= (10000 if self.head_ml == 10 else 50000):
                return "ERROR:2"
            self.flow_ul_min = n
        elif cmd == "HEADTYPE":
            if n not in (10, 50):
                return "ERROR:2"
            self.head_ml = n
            self.flow_ul_min = min(self.flow_ul_min, n * 1000)
        elif cmd[:4] in ("PMAX", "PMIN") and cmd[4:] in ("10", "50"):
            head = int(cmd[4:])
            if not 0 <= n <= (400 if head == 10 else 150):
                return "ERROR:2"
            (self.pmax if cmd.startswith("PMAX") else self.pmin)[head] = n
        elif cmd in self.settings:
            low, high = _SETTING_RANGES.get(cmd[:4] if cmd[:4] in _SETTING_RANGES else cmd, (0, 1))
            if not low <= n <= high:
                return "ERROR:2"
            self.settings[cmd] = n
        else:
            return "ERROR:1"
        return f"{cmd}:OK"


_SETTING_RANGES = {
    "IMIN": (0, 100),
    "IMAX": (0, 100),
    "ADJ1": (100, 2000),
    "ADJ5": (100, 2000),
    "CORR": (0, 300),
}


VALVE_TYPES: dict[str, tuple[str, ...]] = {
    "LI": ("L", "I"),
    "6": tuple(str(i) for i in range(1, 7)),
    "12": tuple(str(i) for i in range(1, 13)),
    "16": tuple(str(i) for i in range(1, 17)),
}


class KnauerValveSimulator(StreamSimulator):
    """An AZURA V 2.1S valve drive: ``VALVE LI`` (injection) or ``VALVE 6/12/16`` (selection)."""

    family = "knauer-valve"

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        valve_type: str = "6",
    ) -> None:
        super().__init__(clock=clock, host=host, port=port)
        if valve_type not in VALVE_TYPES:
            raise ValueError(f"valve_type must be one of {sorted(VALVE_TYPES)}")
        self.valve_type = valve_type
        self.position = VALVE_TYPES[valve_type][0]  # the physical port/position
        #: Error code (0..6) the next move answers with instead of moving; a fault hook.
        self.next_move_error: int | None = None
        self.refuse_next_moves = 0  # answer "?" to this many moves
        self.moves = 0

    split = staticmethod(split_lines(_ANY_EOL))

    def url(self, scheme: str = "tcp") -> str:
        return super().url(scheme)

    def device_error_reply(self, request: bytes) -> bytes | None:
        return b"E0\r"

    def handle(self, request: bytes) -> bytes | None:
        token = request.decode("ascii", "replace").strip()
        if not token:
            return None
        if token == "T":
            return f"VALVE {self.valve_type}\r".encode()
        if token == "P":
            return f"{self.position}\r".encode()
        if token in VALVE_TYPES[self.valve_type]:
            if self.refuse_next_moves > 0:
                self.refuse_next_moves -= 1
                return b"?\r"
            if self.next_move_error is not None:
                code, self.next_move_error = self.next_move_error, None
                return f"E{code}\r".encode()
            self.position = token
            self.moves += 1
            return f"{token}\r".encode()
        return b"?\r"
