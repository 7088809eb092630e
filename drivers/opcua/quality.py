"""OPC-UA status codes to quality codes, and OPC-UA values to plain Python values.

This module owns the mapping table from a `StatusCode` (of a value, a monitored
item or a whole service call) to the gateway's `Quality`, and the conversion of
a variant's value to `int`, `float`, `bool` or `str` (applying the tag's optional
`type` hint). It never invents a value: whatever cannot be converted faithfully
becomes a bad quality with the reason. It does not talk to servers.
"""
from __future__ import annotations

import datetime as dt
import enum
import math
import uuid
from typing import Any

from asyncua import ua
from asyncua.ua.status_codes import code_to_name_doc

from drivers.base import Quality

_GOOD, _UNCERTAIN = 0x00, 0x01  # the two top bits of a status code


def _codes(*names: str) -> frozenset[int]:
    return frozenset(getattr(ua.StatusCodes, name) for name in names)


#: codes that say the tag (node, attribute, type, access) does not fit this server
CONFIG_CODES = _codes(
    "BadNodeIdUnknown", "BadNodeIdInvalid", "BadTypeMismatch", "BadAttributeIdInvalid",
    "BadNotReadable", "BadUserAccessDenied", "BadIndexRangeInvalid", "BadIndexRangeNoData",
    "BadDataEncodingInvalid", "BadDataEncodingUnsupported", "BadNotSupported",
    "BadMonitoredItemFilterInvalid", "BadMonitoredItemFilterUnsupported", "BadFilterNotAllowed",
    "BadDeadbandFilterInvalid", "BadIdentityTokenRejected", "BadIdentityTokenInvalid",
    "BadCertificateUntrusted", "BadCertificateInvalid", "BadCertificateUriInvalid",
    "BadCertificateTimeInvalid", "BadCertificateUseNotAllowed", "BadCertificateRevoked",
    "BadSecurityChecksFailed", "BadSecurityPolicyRejected", "BadSecurityModeRejected")
#: codes that say the server took too long
TIMEOUT_CODES = _codes("BadTimeout", "BadRequestTimeout")
#: codes that say there is no current value, but nothing is broken in the path to it
STALE_CODES = _codes("BadWaitingForInitialData", "BadOutOfService")
#: codes that say the path to the value is broken (listed for the docs; also the default)
COMM_CODES = _codes(
    "BadCommunicationError", "BadConnectionClosed", "BadServerNotConnected", "BadNotConnected",
    "BadNoCommunication", "BadDeviceFailure", "BadSensorFailure", "BadShutdown",
    "BadServerHalted", "BadSecureChannelClosed", "BadSessionClosed", "BadSessionIdInvalid",
    "BadDisconnect", "BadTcpInternalError", "BadConnectionRejected", "BadResourceUnavailable")
#: a monitored item refused for these reasons is retried without its deadband filter
FILTER_REFUSED_CODES = _codes("BadMonitoredItemFilterInvalid", "BadMonitoredItemFilterUnsupported",
                              "BadFilterNotAllowed", "BadDeadbandFilterInvalid")
#: a subscription or monitored item refused for these reasons falls back to polling
MONITORING_REFUSED_CODES = _codes(
    "BadTooManySubscriptions", "BadTooManyMonitoredItems", "BadServiceUnsupported",
    "BadNotSupported", "BadTooManyOperations", "BadResourceUnavailable",
    "BadMonitoringModeInvalid", "BadSubscriptionIdInvalid")


def _base(code: int) -> int:
    """The code without its info bits (limit, overflow, semantics changed...)."""
    return code & 0xFFFF0000


def status_name(code: int) -> str:
    """`BadNodeIdUnknown` for its code; `Bad(0x80FF0000)` for codes this stack does not know."""
    known = code_to_name_doc.get(_base(code))
    if known is not None:
        return known[0]
    severity = {0: "Good", 1: "Uncertain"}.get(code >> 30, "Bad")
    return f"{severity}(0x{code:08X})"


def status_text(code: int) -> str:
    """`BadNodeIdUnknown (the node id refers to a node that does not exist ...)`."""
    known = code_to_name_doc.get(_base(code))
    doc = (known[1] if known else "").strip().rstrip(".")
    name = status_name(code)
    return f"{name} ({doc[0].lower()}{doc[1:]})" if doc else name


def quality_for_status(code: int) -> Quality:
    """The quality of a value carrying this status code (see the table in README.md)."""
    severity = code >> 30
    if severity == _GOOD:
        return Quality.GOOD
    if severity == _UNCERTAIN:
        return Quality.STALE
    base = _base(code)
    if base in CONFIG_CODES:
        return Quality.BAD_CONFIG
    if base in TIMEOUT_CODES:
        return Quality.BAD_TIMEOUT
    if base in STALE_CODES:
        return Quality.STALE
    return Quality.BAD_COMM  # the path to the value is broken, whatever the exact reason


class ConversionError(Exception):
    """The value cannot be reported faithfully; carries the quality to report instead."""

    def __init__(self, quality: Quality, message: str) -> None:
        super().__init__(message)
        self.quality = quality


def convert_value(value: Any, hint: str | None = None) -> int | float | bool | str:
    """A plain Python value for a variant's value, converted to `hint` when given."""
    plain = _plain(value)
    if hint is None:
        return plain
    return _apply_hint(plain, hint)


def _plain(value: Any) -> int | float | bool | str:
    if value is None:
        raise ConversionError(Quality.STALE, "the server sent no value (null)")
    if isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum) and isinstance(value.value, int):
        return int(value.value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConversionError(Quality.STALE, f"the value is not a finite number ({value})")
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, ua.LocalizedText):
        if value.Text is None:
            raise ConversionError(Quality.STALE, "the server sent an empty localized text")
        return str(value.Text)
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return stamp.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        raise ConversionError(Quality.BAD_CONFIG,
                              f"array values are not supported ({len(value)} elements)")
    if isinstance(value, (bytes, bytearray)):
        raise ConversionError(Quality.BAD_CONFIG, "ByteString values are not supported")
    raise ConversionError(Quality.BAD_CONFIG,
                          f"values of type {type(value).__name__} are not supported")


def _apply_hint(value: int | float | bool | str, hint: str) -> int | float | bool | str:
    def mismatch() -> ConversionError:
        return ConversionError(Quality.BAD_CONFIG,
                               f"value {value!r} cannot be read as type {hint!r}")

    if hint == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if hint == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise mismatch()
    if hint == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise mismatch() from None
        raise mismatch()
    if hint == "float":
        if isinstance(value, bool):
            raise mismatch()
        if isinstance(value, (int, float)):
            return float(value)
        try:
            number = float(value.strip())
        except ValueError:
            raise mismatch() from None
        if not math.isfinite(number):
            raise mismatch()
        return number
    raise ValueError(f"unknown type hint {hint!r}")  # config validation prevents this
