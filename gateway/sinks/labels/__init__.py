"""The label sink: labels made from events, printed once each on a ZPL (raw TCP) or IPP (PDF) printer.

The package's modules: `config` (the section's model), `template` (which labels
an event makes and their values), `zpl` and `pdf` (drawing), `ipp` (the wire),
`printer` (sending), `ledger` (the durable state) and `sink` (the worker).
Importing the package loads no printing library.
"""
from __future__ import annotations

from typing import Any

__all__ = ["LabelSink"]


def __getattr__(name: str) -> Any:
    if name == "LabelSink":
        from gateway.sinks.labels.sink import LabelSink
        return LabelSink
    raise AttributeError(name)
