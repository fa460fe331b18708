"""Harvard Apparatus Pump 11 Elite syringe pumps, alone or daisy-chained on one port.

URL: the pump's USB virtual COM port with its baud rate, e.g.
``/dev/ttyACM0?baudrate=115200`` (8N1), or ``socket://127.0.0.1:PORT`` for the simulator.

Wire choices (docs/devices.md §4):

* requests are ``[address]command args`` + CR; the address is sent only when nonzero
  (``5irate 1.2 m/m``), as the manual says (flowchem's ``0irate`` is accepted by pumps too);
* a reply is ``\\n[NN:]text\\r`` lines followed by ``\\n[NN]<prompt>``; both the prefixed and
  the unprefixed line forms are parsed. Prompts: ``:`` idle, ``>`` infusing, ``<``
  withdrawing, ``*`` stalled, ``T*`` target reached;
* ``Command error`` / ``Argument error`` replies (and bodies saying ``Unknown command`` or
  ``Out of range``) raise ``Elite11CommandError``; a stall raises ``DeviceFault``;
* rate limits come from ``irate lim`` (they depend on the diameter); a rate outside them is
  rejected before sending, never clamped.

Daisy chain: give every pump on the port the same ``transport`` (from
``open_byte_transport``); its lock serialises their exchanges. A pump that did not open the
transport does not close it.
"""

from __future__ import annotations

import logging
import math
import re

from robochem.drivers.base import PumpState, PumpStatus, SyringePump
from robochem.drivers.errors import (
    DeviceFault,
    GarbledReply,
    SetpointRejected,
    check_range,
)
from robochem.drivers.options import required_options
from robochem.drivers.transport import ByteTransport, open_byte_transport

log = logging.getLogger(__name__)

#: Syringe inner diameter accepted (mm), as flowchem bounds it (docs/devices.md §4).
DIAMETER_RANGE_MM = (1.0, 33.0)
#: Syringe volumes from the data sheet's smallest (0.5 µl) to a 200 ml syringe.
SYRINGE_VOLUME_RANGE_ML = (0.0005, 200.0)
TICKS_PER_S = 56_000_000

_PROMPT_END = re.compile(rb"(?:\A|\r)\n(\d\d)?(T\*|[:<>*])\Z")
_PROMPT = re.compile(r"^(\d\d)?(T\*|[:<>*])\Z")
_PREFIX = {"m": 1.0, "u": 1e-3, "n": 1e-6, "p": 1e-9}  # to ml
_PER = {"min": 1.0, "m": 1.0, "hr": 1 / 60, "h": 1 / 60, "sec": 60.0, "s": 60.0}  # to per min
_RATE = re.compile(r"^([-+\d.eE]+)\s*([munp])l/(min|hr|h|sec|s)$")
_VOLUME = re.compile(r"^([-+\d.eE]+)\s*([munp])l$")
_ERROR_MARKERS = ("Command error", "Argument error", "Unknown command", "Out of range")


class Elite11CommandError(DeviceFault):
    """The pump answered ``Command error`` or ``Argument error``."""


def _frame_reply(buffer: bytes) -> int:
    """A reply is complete when the buffer ends with a prompt (it has no terminator).

    ``\\nNN:`` (idle prompt of a nonzero address) is also how every prefixed text line
    starts, so that ending is only tentative: the transport waits its settle time for more.
    """
    m = _PROMPT_END.search(buffer)
    if not m:
        return 0
    if m.group(1) is not None and m.group(2) == b":":
        return -len(buffer)
    return len(buffer)


def parse_rate_ml_min(text: str) -> float:
    """``1.5 ml/min``, ``20 ul/hr``, ... -> ml/min."""
    m = _RATE.match(text.strip())
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _PREFIX[m.group(2)] * _PER[m.group(3)]


def parse_volume_ml(text: str) -> float:
    m = _VOLUME.match(text.strip())
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _PREFIX[m.group(2)]


def format_rate_arg(ml_min: float) -> str:
    """A rate argument in the unit that keeps the number in [1, 1000): ``12.5 u/m``."""
    for prefix, scale in (("m", 1.0), ("u", 1e-3), ("n", 1e-6), ("p", 1e-9)):
        if ml_min >= scale or prefix == "p":
            return f"{ml_min / scale:.6g} {prefix}/m"
    raise AssertionError


def format_volume_arg(ml: float) -> str:
    if ml >= 1.0:
        return f"{ml:.6g} m"
    return f"{ml * 1000:.6g} u"


class Elite11Pump(SyringePump):
    """One Pump 11 Elite at ``address`` (0 for the pump wired to the computer)."""

    driver_name = "harvard-elite11"
    required_options = required_options("harvard-elite11")

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout_s: float = 1.0,
        address: int = 0,
        diameter_mm: float | None = None,
        syringe_volume_ml: float | None = None,
        transport: ByteTransport | None = None,
    ) -> None:
        super().__init__(name)
        if not isinstance(address, int) or not 0 <= address <= 99:
            raise ValueError(f"address must be 0..99, got {address!r}")
        self.url = url
        self.address = address
        self.diameter_mm = diameter_mm
        self.syringe_volume_ml = syringe_volume_ml
        self._owns_transport = transport is None
        self.transport: ByteTransport = transport or open_byte_transport(
            url, name=self.name, timeout_s=timeout_s
        )
        self.timeout_s = timeout_s
        self.rate_limits_ml_min: tuple[float, float] | None = None
        self.last_prompt = ":"

    # -- wire ------------------------------------------------------------------
    def _frame_request(self, command: str) -> bytes:
        prefix = str(self.address) if self.address else ""
        return f"{prefix}{command}\r".encode("ascii")

    async def command(self, command: str, *, retries: int = 0) -> tuple[list[str], str]:
        """Send one command; return (body lines without address prefix, prompt)."""
        raw = await self.transport.exchange(
            self._frame_request(command),
            _frame_reply,
            timeout_s=self.timeout_s,
            retries=retries,
        )
        lines, prompt = self._parse(command, raw)
        self.last_prompt = prompt
        if any(marker in line for line in lines for marker in _ERROR_MARKERS):
            kind = (
                "argument-error" if any("Argument error" in x for x in lines) else "command-error"
            )
            raise Elite11CommandError(
                f"{command!r} answered {' / '.join(x.strip() for x in lines)}",
                device=self.name,
                code=kind,
            )
        return lines, prompt

    def _parse(self, command: str, raw: bytes) -> tuple[list[str], str]:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise GarbledReply(f"non-ASCII reply {raw!r} to {command!r}", device=self.name) from exc
        segments = text.split("\n")
        if segments[0].strip():
            raise GarbledReply(
                f"reply to {command!r} does not start with LF: {raw!r}", device=self.name
            )
        m = _PROMPT.match(segments[-1])
        if not m:
            raise GarbledReply(f"no prompt at the end of {raw!r}", device=self.name)
        if m.group(1) is not None and int(m.group(1)) != self.address:
            raise GarbledReply(
                f"reply from address {m.group(1)}, expected {self.address}: {raw!r}",
                device=self.name,
            )
        prefix = f"{self.address:02d}:"
        lines = []
        for segment in segments[1:-1]:
            if not segment.endswith("\r"):
                raise GarbledReply(f"reply line {segment!r} not ended by CR", device=self.name)
            line = segment[:-1]
            lines.append(line[3:] if line.startswith(prefix) else line)
        return lines, m.group(2)

    async def _query(self, command: str) -> str:
        lines, _ = await self.command(command, retries=1)
        if len(lines) != 1:
            raise GarbledReply(
                f"{command!r} answered {lines!r}, expected one line", device=self.name
            )
        return lines[0].strip()

    async def _set(self, command: str) -> str:
        lines, prompt = await self.command(command)
        if lines:
            raise GarbledReply(
                f"{command!r} answered {lines!r}, expected the prompt only", device=self.name
            )
        return prompt

    def _stall_check(self, prompt: str, what: str) -> None:
        if prompt == "*":
            raise DeviceFault(
                f"pump stalled ({what}); clear the stall on the pump display",
                device=self.name,
                code="stall",
            )

    # -- lifecycle -------------------------------------------------------------
    async def _initialise(self) -> None:
        """Stop the motor, check it is an Elite, then apply the configured syringe."""
        await self.stop()
        ver = await self._query("ver")
        if "ELITE" not in ver.upper() and "11" not in ver:
            raise DeviceFault(
                f"'ver' answered {ver!r}: not a Pump 11 Elite",
                device=self.name,
                code="wrong-device",
            )
        if self.diameter_mm is not None or self.syringe_volume_ml is not None:
            await self.set_syringe(
                self.diameter_mm if self.diameter_mm is not None else await self.get_diameter(),
                self.syringe_volume_ml
                if self.syringe_volume_ml is not None
                else await self.get_syringe_volume(),
            )
        else:
            await self.read_rate_limits()

    async def disconnect(self) -> None:
        if self._owns_transport:
            await self.transport.close()

    async def _probe(self) -> None:
        await self.command("", retries=1)

    # -- syringe -----------------------------------------------------------------
    async def set_syringe(self, diameter_mm: float, volume_ml: float) -> None:
        """Set diameter (mm) and syringe volume (mL), then re-read the rate limits."""
        check_range(self.name, "syringe diameter", diameter_mm, *DIAMETER_RANGE_MM, "mm")
        check_range(self.name, "syringe volume", volume_ml, *SYRINGE_VOLUME_RANGE_ML, "mL")
        await self._set(f"diameter {diameter_mm:.4f}")
        actual = await self.get_diameter()
        if not math.isclose(actual, round(diameter_mm, 4), abs_tol=1e-4):
            raise DeviceFault(
                f"diameter set to {diameter_mm} mm reads back {actual} mm",
                device=self.name,
                code="readback",
            )
        await self._set(f"svolume {format_volume_arg(volume_ml)}")
        self.diameter_mm = actual
        self.syringe_volume_ml = await self.get_syringe_volume()
        await self.read_rate_limits()

    async def get_diameter(self) -> float:
        text = await self._query("diameter")
        m = re.match(r"^([\d.]+)\s*mm$", text)
        if not m:
            raise GarbledReply(f"diameter answered {text!r}", device=self.name)
        return float(m.group(1))

    async def get_syringe_volume(self) -> float:
        return self._volume(await self._query("svolume"), "svolume")

    def _volume(self, text: str, what: str) -> float:
        try:
            return parse_volume_ml(text)
        except ValueError:
            raise GarbledReply(f"{what} answered {text!r}", device=self.name) from None

    def _rate(self, text: str, what: str) -> float:
        try:
            return parse_rate_ml_min(text)
        except ValueError:
            raise GarbledReply(f"{what} answered {text!r}", device=self.name) from None

    async def read_rate_limits(self) -> tuple[float, float]:
        """``irate lim``: (min, max) in mL/min for the current diameter."""
        text = await self._query("irate lim")
        low, sep, high = text.partition(" to ")
        if not sep:
            raise GarbledReply(f"irate lim answered {text!r}", device=self.name)
        self.rate_limits_ml_min = (self._rate(low, "irate lim"), self._rate(high, "irate lim"))
        return self.rate_limits_ml_min

    async def _checked_rate(self, ml_min: float, quantity: str) -> str:
        if self.rate_limits_ml_min is None:
            await self.read_rate_limits()
        assert self.rate_limits_ml_min is not None
        low, high = self.rate_limits_ml_min
        check_range(self.name, quantity, ml_min, low, high, "mL/min")
        return format_rate_arg(ml_min)

    # -- rates ---------------------------------------------------------------------
    async def set_flow_rate(self, ml_min: float) -> float:
        """Infusion rate in mL/min within ``irate lim``; returns the rate the pump reports."""
        arg = await self._checked_rate(ml_min, "infusion rate")
        await self._set(f"irate {arg}")
        return await self.get_flow_rate()

    async def get_flow_rate(self) -> float:
        return self._rate(await self._query("irate"), "irate")

    async def set_withdraw_rate(self, ml_min: float) -> float:
        arg = await self._checked_rate(ml_min, "withdrawal rate")
        await self._set(f"wrate {arg}")
        return await self.get_withdraw_rate()

    async def get_withdraw_rate(self) -> float:
        return self._rate(await self._query("wrate"), "wrate")

    # -- volumes -------------------------------------------------------------------
    async def set_target_volume(self, ml: float | None) -> None:
        """Stop after ``ml`` infused/withdrawn (counted by ivolume/wvolume); None clears."""
        if ml is None:
            await self._set("ctvolume")
            return
        high = self.syringe_volume_ml or SYRINGE_VOLUME_RANGE_ML[1]
        if not isinstance(ml, int | float) or not 0 < ml <= high:
            raise SetpointRejected(
                device=self.name,
                quantity="target volume",
                value=ml,
                unit="mL",
                allowed=f"0 (exclusive)..{high}",
            )
        await self._set(f"tvolume {format_volume_arg(ml)}")

    async def get_target_volume(self) -> float | None:
        text = await self._query("tvolume")
        if text.lower().startswith("target volume not set"):
            return None
        return self._volume(text, "tvolume")

    async def get_dispensed_volume(self) -> float:
        return self._volume(await self._query("ivolume"), "ivolume")

    async def get_withdrawn_volume(self) -> float:
        return self._volume(await self._query("wvolume"), "wvolume")

    async def clear_volumes(self) -> None:
        """Zero the infused and withdrawn counters."""
        await self._set("cvolume")

    # -- motion --------------------------------------------------------------------
    async def infuse(self) -> None:
        prompt = await self._set("irun")
        self._stall_check(prompt, "irun")
        if prompt not in (">", "T*"):
            raise DeviceFault(
                f"irun answered prompt {prompt!r}, expected '>'",
                device=self.name,
                code="not-running",
            )

    async def withdraw(self) -> None:
        prompt = await self._set("wrun")
        self._stall_check(prompt, "wrun")
        if prompt not in ("<", "T*"):
            raise DeviceFault(
                f"wrun answered prompt {prompt!r}, expected '<'",
                device=self.name,
                code="not-running",
            )

    async def stop(self) -> None:
        # A stalled pump keeps its '*' prompt after stop; stopping is still what we wanted.
        await self._set("stop")

    async def status(self) -> PumpStatus:
        """State from the prompt and the ``status`` record; a stall raises DeviceFault."""
        lines, prompt = await self.command("status", retries=1)
        if len(lines) != 1 or len(lines[0].split()) != 4:
            raise GarbledReply(f"status answered {lines!r}", device=self.name)
        rate_fl_s, ticks, volume_fl, flags = lines[0].split()
        if len(flags) != 5:
            raise GarbledReply(f"status flags {flags!r}", device=self.name)
        self._stall_check("*" if flags[2] == "S" else prompt, "status")
        try:
            flow = int(rate_fl_s) * 60 / 1e12
            run_s = int(ticks) / TICKS_PER_S
            infused = int(volume_fl) / 1e12
        except ValueError:
            raise GarbledReply(f"status answered {lines[0]!r}", device=self.name) from None
        state = {
            ">": PumpState.RUNNING,
            "<": PumpState.RUNNING,
            "T*": PumpState.TARGET_REACHED,
        }.get(prompt, PumpState.STOPPED)
        direction = {"I": "infusing", "W": "withdrawing"}.get(flags[0], "idle")
        return PumpStatus(
            state,
            flow_rate_ml_min=flow,
            detail=f"{direction}; run {run_s:.1f} s; infused {infused:.6g} mL; flags {flags}",
        )
