"""Typed errors raised by every driver.

``DeviceError`` is the root. Callers decide by type: a ``CommunicationError`` may heal by
reconnecting, a ``DeviceFault`` needs the operator or a recovery policy, and a
``SetpointRejected`` means the request itself was wrong and nothing was sent.
"""

from __future__ import annotations


class DeviceError(Exception):
    """Any failure of a device or its link. ``device`` names the device."""

    def __init__(self, message: str, *, device: str | None = None) -> None:
        self.device = device
        super().__init__(f"{device}: {message}" if device else message)


class CommunicationError(DeviceError):
    """Timeout, dropped connection or a reply that cannot be parsed."""


class ReplyTimeout(CommunicationError):
    """No complete reply arrived within the exchange's timeout."""


class ConnectionLost(CommunicationError):
    """The link closed or could not be opened."""


class GarbledReply(CommunicationError):
    """A reply arrived but does not follow the protocol."""


class DeviceFault(DeviceError):
    """The device reports an error or alarm: stall, overpressure, lamp failure, ..."""

    def __init__(self, message: str, *, device: str | None = None, code: str | None = None):
        self.code = code
        super().__init__(message, device=device)


class SetpointRejected(DeviceError):
    """A setpoint outside the documented range; raised before any byte is sent."""

    def __init__(
        self,
        *,
        device: str | None,
        quantity: str,
        value: object,
        unit: str,
        allowed: str,
    ) -> None:
        self.quantity = quantity
        self.value = value
        self.unit = unit
        self.allowed = allowed
        super().__init__(
            f"{quantity} {value} {unit} is outside the allowed range {allowed}", device=device
        )


def check_range(
    device: str | None,
    quantity: str,
    value: float,
    low: float,
    high: float,
    unit: str,
) -> float:
    """Return ``value`` if ``low <= value <= high``; otherwise raise ``SetpointRejected``.

    Never clamps: a wrong setpoint is the caller's mistake to see.
    """
    if not isinstance(value, int | float) or value != value:  # rejects NaN too
        raise SetpointRejected(
            device=device, quantity=quantity, value=value, unit=unit, allowed=f"{low}..{high}"
        )
    if not low <= value <= high:
        raise SetpointRejected(
            device=device, quantity=quantity, value=value, unit=unit, allowed=f"{low}..{high}"
        )
    return value


#: What a failing link or device raises: ``is_reachable()`` answers False for these and
#: only these (a bug elsewhere must not look like an unplugged cable).
LINK_ERRORS: tuple[type[BaseException], ...] = (DeviceError, OSError, TimeoutError)
