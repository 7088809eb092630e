"""What a rule takes as a machine's reading, and how a reading it refuses is described.

Machine data is not trusted. A counter reading outside its register (negative,
at or above 2^width), a value that is not a whole number where one is
counted, a NaN or a string where a number is measured, an alarm code beyond
65535: each is refused, never masked, rounded or guessed. The readers here
raise `Refused` with a sentence a person can act on; the rule keeps its state
and turns the refusal into an `implausible` event (see `TagRule.refuse`),
which the sinks hold as a dead letter.

It also holds the counter rule's default plausibility cap: a jump of more than
`max_rate` parts per second over the time since the last change (at least
the device's poll interval) is held for a person, with `DEFAULT_MAX_RATE`
when the rule does not set one. It knows nothing about events or stores.
"""
from __future__ import annotations

import math
from typing import Any

#: parts per second no machine makes: a jump above it over the elapsed time is held for a person
DEFAULT_MAX_RATE = 1000.0
#: the largest alarm or state code (a 16-bit word, as Odoo's mapping of codes takes them)
MAX_CODE = 65535
#: how much of a refused raw value an event carries
RAW_LIMIT = 120
#: integers JSON carries exactly in every consumer (JavaScript's safe range)
_JSON_INT = 1 << 53


class Refused(ValueError):
    """A reading a rule cannot take; the message says what it is and what was expected."""


def describe(value: Any) -> str:
    """A short, safe text of a raw value (a 5,000-digit integer has no repr in Python 3.11)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except ValueError:
        text = f"a {type(value).__name__}"
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT - 3] + "..."


def raw_value(value: Any) -> Any:
    """The raw value as an event carries it: itself when JSON keeps it exactly, else its text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and -_JSON_INT < value < _JSON_INT:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str) and len(value) <= RAW_LIMIT:
        return value
    return describe(value)


def counter_reading(value: Any, width: int) -> int:
    """A counter register's reading: a whole number 0..2^width-1, else `Refused`."""
    top = (1 << width) - 1
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused(f"a counter reading must be a whole number 0..{top}, got {describe(value)}")
    if value < 0:
        raise Refused(f"a {width}-bit counter counts 0..{top}, got a negative reading {describe(value)}")
    if value > top:
        raise Refused(f"a {width}-bit counter counts 0..{top}, got {describe(value)}")
    return value


def measurement(value: Any) -> float:
    """A measured number (int or float, finite), else `Refused`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused(f"expected a number, got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise Refused(f"expected a number a float can hold, got {describe(value)}") from None
    if not math.isfinite(number):
        raise Refused(f"expected a finite number, got {describe(value)}")
    return number


def code_reading(value: Any) -> int:
    """An alarm or state word: a whole number 0..65535 (true/false read as 1/0), else `Refused`."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise Refused(f"an alarm code must be a whole number 0..{MAX_CODE}, got {describe(value)}")
    if not 0 <= value <= MAX_CODE:
        raise Refused(f"an alarm code must be 0..{MAX_CODE}, got {describe(value)}")
    return value


def jump_cap(max_rate: float, elapsed: float, poll_interval: float) -> float:
    """The most parts a jump may bring over `elapsed` seconds (never less than one poll's worth)."""
    return max_rate * max(elapsed, poll_interval, 0.001) + 1
