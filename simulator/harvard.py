"""Harvard Apparatus Pump 11 Elite syringe pumps (one or a daisy chain), written from
docs/devices.md §4 independently of the driver.

Requests: ``[NN[:]][@]command [args]`` ended by CR (a LF after the CR is ignored, so
flowchem's ``\\r\\n`` works); addresses 0..99 with one or two digits, ``0irate`` too.
Commands may be shortened to their first four letters. A pump not on the chain stays silent.

Replies follow the manual: each text line ``\\n[NN:]text\\r``, then ``\\n[NN]<prompt>`` with
prompt ``:`` idle, ``>`` infusing, ``<`` withdrawing, ``*`` stalled, ``T*`` target reached.
The address prefix appears only for nonzero addresses, or always with ``always_prefix=True``
(the ``00:`` form flowchem expects).

Motion integrates on the shared clock: each request first advances every pump by the
simulated time since the last one, stopping at the target volume (prompt ``T*``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from robochem.clock import Clock
from robochem.simulator.base import StreamSimulator

# Linear speed range of the pusher (mm/min): gives the rate limits for a diameter. Chosen so
# a 60 ml syringe tops out near the 88 ml/min of the data sheet [unverified].
MAX_SPEED_MM_MIN = 159.0
MIN_SPEED_MM_MIN = 1.54e-4
#: Syringe inner diameters accepted (mm). The reference (docs/devices.md §4, ``diameter``)
#: gives 1-33 mm, the range flowchem accepts; an earlier 0.1-50 mm here had no source.
DIAMETER_RANGE_MM = (1.0, 33.0)
TICKS_PER_S = 56_000_000

COMMANDS = (
    "irate", "wrate", "irun", "wrun", "rrun", "run", "stop", "stp", "diameter", "svolume",
    "tvolume", "ctvolume", "cvolume", "civolume", "cwvolume", "ivolume", "wvolume", "crate",
    "force", "ver", "version", "address", "poll", "echo", "nvram", "status",
)  # fmt: skip

_RATE_SCALE = {"m": 1.0, "u": 1e-3, "n": 1e-6, "p": 1e-9}  # to ml
_TIME_SCALE = {"h": 1 / 60, "hr": 1 / 60, "m": 1.0, "min": 1.0, "s": 60.0, "sec": 60.0}
_RATE_RE = re.compile(r"^([munp])l?/(h|hr|m|min|s|sec)$")
_VOL_RE = re.compile(r"^([munp])l?$")


def _scaled(ml: float, decimals: int) -> tuple[str, str]:
    """Number and unit prefix (m/u/n/p) so the number lies in [1, 1000)."""
    for prefix, scale in (("m", 1.0), ("u", 1e-3), ("n", 1e-6), ("p", 1e-9)):
        if abs(ml) >= scale or prefix == "p":
            return f"{ml / scale:.{decimals}f}", prefix
    raise AssertionError


def format_rate(ml_min: float) -> str:
    number, prefix = _scaled(ml_min, 3)
    return f"{number} {prefix}l/min"


def format_volume(ml: float) -> str:
    if ml == 0:
        return "0.0000 ul"
    number, prefix = _scaled(ml, 4)
    return f"{number} {prefix}l"


def parse_rate(value: str, unit: str) -> float | None:
    m = _RATE_RE.match(unit.lower())
    if not m:
        return None
    return float(value) * _RATE_SCALE[m.group(1)] * _TIME_SCALE[m.group(2)]


def parse_volume(value: str, unit: str) -> float | None:
    m = _VOL_RE.match(unit.lower())
    if not m:
        return None
    return float(value) * _RATE_SCALE[m.group(1)]


class ArgumentError(Exception):
    def __init__(self, arg: str, message: str) -> None:
        self.arg, self.message = arg, message


@dataclass
class ElitePumpState:
    """One pump on the chain; plain attributes a virtual lab may read or drive."""

    address: int
    diameter_mm: float = 14.567
    syringe_volume_ml: float = 10.0
    irate_ml_min: float = 1.0
    wrate_ml_min: float = 1.0
    target_ml: float | None = None
    infused_ml: float = 0.0
    withdrawn_ml: float = 0.0
    direction: str | None = None  # "I" or "W" while the motor runs
    last_direction: str = "I"
    stalled: bool = False
    target_reached: bool = False
    force_percent: int = 30
    run_started: float = 0.0
    last_update: float = 0.0
    history: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.direction is not None

    @property
    def flow_ml_min(self) -> float:
        """Signed flow now: + infusing, - withdrawing, 0 idle."""
        if self.direction == "I":
            return self.irate_ml_min
        if self.direction == "W":
            return -self.wrate_ml_min
        return 0.0

    def rate_limits(self) -> tuple[float, float]:
        """(min, max) ml/min for the diameter, rounded as the pump displays them."""
        area = math.pi * (self.diameter_mm / 2) ** 2
        low, high = area * MIN_SPEED_MM_MIN / 1000, area * MAX_SPEED_MM_MIN / 1000
        return _displayed(low), _displayed(high)

    def advance(self, now: float) -> None:
        dt = max(0.0, now - self.last_update)
        self.last_update = now
        if self.direction is None or dt == 0:
            return
        rate = self.irate_ml_min if self.direction == "I" else self.wrate_ml_min
        moved = rate * dt / 60.0
        done = self.infused_ml if self.direction == "I" else self.withdrawn_ml
        if self.target_ml is not None and done + moved >= self.target_ml:
            moved = max(0.0, self.target_ml - done)
            self.direction = None
            self.target_reached = True
        if self.last_direction == "I":
            self.infused_ml += moved
        else:
            self.withdrawn_ml += moved

    @property
    def prompt(self) -> str:
        if self.stalled:
            return "*"
        if self.target_reached:
            return "T*"
        return {"I": ">", "W": "<"}.get(self.direction or "", ":")


def _displayed(ml_min: float) -> float:
    number, prefix = _scaled(ml_min, 3)
    return float(number) * {"m": 1.0, "u": 1e-3, "n": 1e-6, "p": 1e-9}[prefix]


class Elite11Simulator(StreamSimulator):
    """One serial port with pumps at ``addresses`` (the one wired to the PC is 0)."""

    family = "harvard-elite11"

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        addresses: tuple[int, ...] = (0,),
        always_prefix: bool = False,
        version: str = "11 ELITE I/W Single 3.0.4",
    ) -> None:
        super().__init__(clock=clock, host=host, port=port)
        now = self.clock.now()
        self.pumps: dict[int, ElitePumpState] = {
            a: ElitePumpState(a, last_update=now) for a in addresses
        }
        self.always_prefix = always_prefix
        self.version = version

    # -- hooks for tests and a virtual lab -----------------------------------------
    def pump(self, address: int = 0) -> ElitePumpState:
        self.update()
        return self.pumps[address]

    def update(self) -> None:
        now = self.clock.now()
        for p in self.pumps.values():
            p.advance(now)

    def stall(self, address: int = 0) -> None:
        """The pusher blocks: motor stops, prompt ``*`` until cleared on the display."""
        self.update()
        p = self.pumps[address]
        p.direction = None
        p.stalled = True

    def clear_stall(self, address: int = 0) -> None:
        self.pumps[address].stalled = False

    # -- framing ----------------------------------------------------------------------
    def split(self, buffer: bytes) -> tuple[bytes | None, bytes]:
        i = buffer.find(b"\r")
        if i < 0:
            return None, buffer
        # A LF after CR (flowchem's \r\n) arrives as the start of the next request.
        return buffer[:i].lstrip(b"\n"), buffer[i + 1 :]

    def _parse_address(self, text: str) -> tuple[int, str]:
        m = re.match(r"^(\d{1,2}):?(.*)$", text, re.S)
        if m:
            return int(m.group(1)), m.group(2)
        return 0, text

    def _frame(self, address: int, lines: list[str], prompt: str) -> bytes:
        prefixed = self.always_prefix or address != 0
        pre = f"{address:02d}:" if prefixed else ""
        body = "".join(f"\n{pre}{line}\r" for line in lines)
        end = f"\n{address:02d}{prompt}" if prefixed else f"\n{prompt}"
        return (body + end).encode("ascii")

    def device_error_reply(self, request: bytes) -> bytes | None:
        address, _ = self._parse_address(request.decode("ascii", "replace").strip())
        if address not in self.pumps:
            return None
        self.stall(address)
        return self._frame(address, [], self.pumps[address].prompt)

    def handle(self, request: bytes) -> bytes | None:
        text = request.decode("ascii", "replace").strip()
        address, rest = self._parse_address(text)
        if address not in self.pumps:
            return None  # nobody at that address on the chain
        self.update()
        pump = self.pumps[address]
        rest = rest.strip().lstrip("@")
        try:
            lines = self._command(pump, rest)
        except ArgumentError as err:
            lines = [f"Argument error: {err.arg}", f"   {err.message}"]
        except KeyError:
            lines = ["Command error:", "   Unknown command"]
        pump.history.append(rest)
        return self._frame(address, lines, pump.prompt)

    # -- commands ------------------------------------------------------------------------
    def _resolve(self, word: str) -> str:
        word = word.lower()
        if word in COMMANDS:
            return word
        matches = [c for c in COMMANDS if len(word) >= 4 and c.startswith(word)]
        if len(matches) == 1:
            return matches[0]
        raise KeyError(word)

    #: command -> the method answering it, one per responsibility
    _HANDLERS: ClassVar[dict[str, str]] = {
        **dict.fromkeys(("irate", "wrate"), "_rate"),
        **dict.fromkeys(("irun", "wrun", "rrun", "run", "stop", "stp"), "_motion"),
        **dict.fromkeys(("diameter", "svolume", "force"), "_syringe"),
        **dict.fromkeys(
            ("tvolume", "ctvolume", "cvolume", "civolume", "cwvolume", "ivolume", "wvolume"),
            "_volumes",
        ),
        **dict.fromkeys(("crate", "status"), "_readout"),
        **dict.fromkeys(("ver", "version", "address", "poll", "echo", "nvram"), "_settings"),
    }

    def _command(self, p: ElitePumpState, text: str) -> list[str]:
        """Answer one command (address already removed): the reply body lines."""
        if not text:
            return []  # bare CR: status poll, prompt only
        word, *args = text.split()
        cmd = self._resolve(word)
        handler: Callable[[ElitePumpState, str, list[str]], list[str]] = getattr(
            self, self._HANDLERS[cmd]
        )
        return handler(p, cmd, args)

    def _motion(self, p: ElitePumpState, cmd: str, args: list[str]) -> list[str]:
        """irun, wrun, rrun (reverse), run (the RUN key), stop / stp."""
        if cmd in ("stop", "stp"):
            p.direction = None
            p.target_reached = False
            return []
        if args:
            raise ArgumentError(args[0], "Too many arguments")
        if p.stalled:
            return []
        direction = {"irun": "I", "wrun": "W", "run": p.last_direction}.get(cmd)
        if direction is None:  # rrun: reverse
            direction = "W" if p.last_direction == "I" else "I"
        now = self.clock.now()
        p.direction = p.last_direction = direction
        p.target_reached = False
        p.run_started = now
        p.advance(now)  # a target already met stops at once
        return []

    def _syringe(self, p: ElitePumpState, cmd: str, args: list[str]) -> list[str]:
        """diameter, svolume and force: set with an argument, query without."""
        if cmd == "diameter":
            if not args:
                return [f"{p.diameter_mm:.4f} mm"]
            d = self._number(args[0])
            if not DIAMETER_RANGE_MM[0] <= d <= DIAMETER_RANGE_MM[1]:
                raise ArgumentError(args[0], "Out of range")
            p.diameter_mm = round(d, 4)
        elif cmd == "svolume":
            if not args:
                return [f"{p.syringe_volume_ml:.4f} ml"]
            p.syringe_volume_ml = self._volume(args)
        else:  # force
            if not args:
                return [f"{p.force_percent}%"]
            f = self._number(args[0].rstrip("%"))
            if not 1 <= f <= 100 or f != int(f):
                raise ArgumentError(args[0], "Out of range")
            p.force_percent = int(f)
        return []

    def _volumes(self, p: ElitePumpState, cmd: str, args: list[str]) -> list[str]:
        """The target volume and the infused/withdrawn counters."""
        if cmd == "tvolume":
            if not args:
                return (
                    ["Target volume not set"]
                    if p.target_ml is None
                    else [format_volume(p.target_ml)]
                )
            v = self._volume(args)
            if v <= 0:
                raise ArgumentError(args[0], "Out of range")
            p.target_ml = v
            return []
        if cmd == "ctvolume":
            p.target_ml = None
            p.target_reached = False
            return []
        if cmd == "ivolume":
            return [format_volume(p.infused_ml)]
        if cmd == "wvolume":
            return [format_volume(p.withdrawn_ml)]
        if cmd != "cwvolume":  # cvolume, civolume
            p.infused_ml = 0.0
        if cmd != "civolume":  # cvolume, cwvolume
            p.withdrawn_ml = 0.0
        return []

    def _readout(self, p: ElitePumpState, cmd: str, args: list[str]) -> list[str]:
        """crate (the running rate) and the one-line status record."""
        if cmd == "crate":
            if p.direction is None:
                return ["Pump is not running"]
            what = "Infusing" if p.direction == "I" else "Withdrawing"
            return [f"{what} at {format_rate(abs(p.flow_ml_min))}"]
        rate_fl_s = round(abs(p.flow_ml_min) / 60 * 1e12)
        ticks = round((self.clock.now() - p.run_started) * TICKS_PER_S) if p.running else 0
        volume_fl = round(p.infused_ml * 1e12)
        d = p.direction or p.last_direction.lower()
        flags = f"{d}.{'S' if p.stalled else '.'}{'T' if p.target_reached else '.'}I"
        return [f"{rate_fl_s} {ticks} {volume_fl} {flags}"]

    def _settings(self, p: ElitePumpState, cmd: str, args: list[str]) -> list[str]:
        """Identity and link settings: ver, version, address, poll, echo, nvram."""
        if cmd == "ver":
            return [self.version]
        if cmd == "version":
            return ["Firmware: v3.0.4", "RTOS: v1.0", f"Pump address: {p.address}"]
        if cmd == "address":
            if args:
                raise ArgumentError(args[0], "Readdressing not simulated")
            return [f"Pump address is {p.address}"]
        if args and args[0].lower() not in ("on", "off"):  # poll, echo, nvram
            raise ArgumentError(args[0], "Expected on or off")
        return []

    @staticmethod
    def _number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ArgumentError(text, "Invalid number") from None
        if not math.isfinite(value):
            raise ArgumentError(text, "Invalid number")
        return value

    def _volume(self, args: list[str]) -> float:
        value = self._number(args[0])
        unit = args[1] if len(args) > 1 else ""
        ml = parse_volume(args[0], unit) if unit else None
        if ml is None:
            raise ArgumentError(unit or args[0], "Invalid units")
        if value < 0:
            raise ArgumentError(args[0], "Out of range")
        return ml

    def _rate(self, p: ElitePumpState, cmd: str, args: list[str]) -> list[str]:
        attr = "irate_ml_min" if cmd == "irate" else "wrate_ml_min"
        low, high = p.rate_limits()
        if not args:
            return [format_rate(getattr(p, attr))]
        if args[0].lower() == "lim":
            return [f"{format_rate(low)} to {format_rate(high)}"]
        if args[0].lower() in ("max", "min"):
            setattr(p, attr, high if args[0].lower() == "max" else low)
            return []
        value = self._number(args[0])
        if len(args) < 2:
            raise ArgumentError(args[0], "Missing units")
        ml_min = parse_rate(args[0], args[1])
        if ml_min is None:
            raise ArgumentError(args[1], "Invalid units")
        # Compare at the display resolution, as the pump does with its own rounding.
        if value <= 0 or not low * (1 - 1e-9) <= ml_min <= high * (1 + 1e-9):
            raise ArgumentError(args[0], "Out of range")
        setattr(p, attr, _displayed(ml_min))
        return []
