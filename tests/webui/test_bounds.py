"""What the console keeps in memory stays bounded at a year's counts: the login throttle under address
spraying and the log ring with long lines (tracebacks are logged whole to the journal)."""
from __future__ import annotations

import logging

from webui.accounts import Throttle
from webui.logbuffer import LogBuffer


def test_the_login_throttle_keeps_at_most_its_address_bound_under_a_spray_of_addresses():
    now = [0.0]
    t = Throttle(attempts=5, window=300, clock=lambda: now[0], max_keys=1000)
    # a year of one failed login a second from a new address each time (31.5 M); 300,000 here, same shape
    for i in range(300_000):
        now[0] += 1.0
        t.failed(f"2001:db8::{i:x}")
        assert len(t) <= 1000
    # within the window it still throttles
    for _ in range(5):
        t.failed("198.51.100.7")
    assert t.wait_s("198.51.100.7") > 0
    # asking about an address does not make it remembered
    for i in range(5000):
        t.wait_s(f"203.0.113.{i}")
    assert len(t) <= 1000


def test_a_burst_from_more_addresses_than_the_bound_in_one_instant_is_cut_to_the_bound():
    t = Throttle(attempts=5, window=300, clock=lambda: 0.0, max_keys=100)
    for i in range(10_000):
        t.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(t) <= 100


def test_the_log_ring_keeps_its_line_count_and_cuts_long_lines():
    buf = LogBuffer(capacity=100, line_limit=1024)
    logger = logging.getLogger("linebridge.test.bounds")
    logger.propagate = False
    logger.addHandler(buf)
    logger.setLevel(logging.INFO)
    try:
        for i in range(300):
            logger.info("event=payload_rejected payload=%s", "x" * 1_000_000)
        try:
            raise OverflowError("math range error")
        except OverflowError:
            logger.exception("event=task_died task=sink:odoo")
    finally:
        logger.removeHandler(buf)
    assert len(buf.lines) == 100
    assert all(len(line["message"]) <= 1024 + 80 for line in buf.lines)
    assert "more characters in the journal" in buf.lines[0]["message"]
    assert buf.lines[-1]["seq"] == 301 and "OverflowError" in buf.lines[-1]["message"]
