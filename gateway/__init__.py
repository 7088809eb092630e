"""The Linebridge gateway process: configuration, events, rules, sinks, supervisor, CLI."""

__version__ = "0.1.0"
