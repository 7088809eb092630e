"""Sinks: workers that deliver stored events to a destination and acknowledge them."""
