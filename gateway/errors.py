"""The gateway's small exception hierarchy: what went wrong and whether a retry helps.

Configuration errors stop the gateway before anything starts; delivery errors
tell a sink worker whether to retry (transient), pause and alarm (auth), or
send the one event to the dead letters (permanent).
"""
from __future__ import annotations


class LinebridgeError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(LinebridgeError):
    """The configuration is invalid; `problems` lists every finding as 'file: key: reason'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class DeliveryError(LinebridgeError):
    """A sink could not deliver. `retryable` says whether trying again can help."""

    retryable = True

    def __init__(self, message: str, *, remote_name: str | None = None) -> None:
        super().__init__(message)
        self.remote_name = remote_name


class TransientDeliveryError(DeliveryError):
    """Network trouble, timeouts, 5xx, 429, concurrency conflicts: retry with backoff."""

    retryable = True


class UnreachableError(TransientDeliveryError):
    """Nothing accepted the connection (refused, no route, no answer to the connect): the peer is away.

    A sink's next attempt after one of these first looks with a bare TCP connect
    (`gateway.sinks.reach`), which costs far less than a whole request to fail.
    """


class AuthDeliveryError(DeliveryError):
    """Credentials or rights refused: pause the sink, raise an alarm, retry slowly."""

    retryable = True


class PermanentDeliveryError(DeliveryError):
    """The destination refused this event for good: dead-letter it with the message."""

    retryable = False
