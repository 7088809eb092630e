"""Rules: qualify raw samples into business events (one module per rule type).

Every rule meets the same small interface: `matches(sample)`, `load_state(raw)`,
`apply(state, sample) -> (events, new_state)` (pure), `state_key`; states have
`to_bytes()`. The pipeline stores a rule's new state with its events.
"""
from __future__ import annotations

from typing import Any, Protocol

from drivers.base import Sample


class Rule(Protocol):
    state_key: str

    def matches(self, sample: Sample) -> bool: ...

    def load_state(self, raw: bytes | None) -> Any: ...

    def apply(self, state: Any, sample: Sample) -> tuple[list[Any], Any]: ...
