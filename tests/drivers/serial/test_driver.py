"""The serial driver against socat pty pairs with a fake scale or scanner on the far end."""
from __future__ import annotations

import asyncio
import logging
import time

from drivers.base import Backoff, ConfigCollector, Quality
from drivers.serial import SerialDriver
from tests.drivers.serial import FakeScale, SocatPair, Stream, by_tag, next_batch, scripted

SCAN_PATTERN = r"^(?P<kind>B|L)(?P<code>[0-9A-Z]{6,20})$"


def make_driver(port, **overrides):
    section = {"type": "serial", "port": str(port), "parser": "scale", "baudrate": 9600,
               "read_timeout": 0.5, "machine": "PACK-01"}
    if overrides.get("parser", "scale") == "scale":
        section["poll_interval"] = 0.1
    section.update(overrides)
    issues = ConfigCollector()
    config = SerialDriver.parse_config(section, "devices.scale1", issues)
    assert issues.issues == []
    name = "scale1" if section["parser"] == "scale" else "scanner1"
    return SerialDriver(name, config, backoff=Backoff(initial=0.05, cap=0.2))


def scanner(port, **overrides):
    return make_driver(port, parser="scanner", pattern=SCAN_PATTERN, **overrides)


def good(batch):
    return all(s.quality is Quality.GOOD for s in batch)


def records(caplog, event):
    return [r.getMessage() for r in caplog.records
            if r.name == "linebridge.drivers.serial" and f"event={event} " in r.getMessage()]


def test_stable_weight_is_read_with_its_unit(tmp_path):
    async def scenario(pair, scale):
        driver = make_driver(pair.dev, command="SI")
        before = time.time()
        batch = await next_batch(driver.samples(), lambda b: True)
        await driver.stop()
        return before, batch, driver

    with SocatPair(tmp_path) as pair, FakeScale(pair, scripted(b"S S     12.345 g\r\n")) as scale:
        before, batch, driver = asyncio.run(scenario(pair, scale))
    samples = by_tag(batch)
    assert [s.tag for s in batch] == ["weight", "unit"]
    assert samples["weight"].quality is Quality.GOOD and samples["weight"].value == 12.345
    assert samples["unit"].value == "g"
    assert all(s.device == "scale1" and s.error is None for s in batch)
    assert before <= batch[0].source_ts <= time.time()
    assert batch[0].source_ts == batch[1].source_ts
    assert scale.commands[0] == "SI"
    assert driver.health.reads >= 1 and driver.health.errors == 0
    assert driver.health.connected is False  # closed by stop()


def test_unstable_overload_and_underload_are_stale_without_values(tmp_path, caplog):
    answers = scripted(b"S D     12.340 g\r\n", b"S +\r\n", b"S -\r\n", b"S S    -0.002 kg\r\n")

    async def scenario(pair):
        driver = make_driver(pair.dev)
        samples = driver.samples()
        batches = [await next_batch(samples, lambda b: True) for _ in range(4)]
        await driver.stop()
        return batches, driver

    with caplog.at_level(logging.INFO, logger="linebridge.drivers.serial"):
        with SocatPair(tmp_path) as pair, FakeScale(pair, answers):
            batches, driver = asyncio.run(scenario(pair))
    dynamic, overload, underload, stable = (by_tag(b)["weight"] for b in batches)
    assert dynamic.quality is Quality.STALE and dynamic.value is None
    assert "unstable" in dynamic.error and "12.34" in dynamic.error
    assert overload.quality is Quality.STALE and overload.value is None
    assert overload.error == "device scale1: overload"
    assert underload.quality is Quality.STALE and "underload" in underload.error
    assert stable.quality is Quality.GOOD and stable.value == -0.002
    assert by_tag(batches[3])["unit"].value == "kg"
    assert all(by_tag(b)["unit"].value is None for b in batches[:3])
    assert records(caplog, "weight_not_trusted") == [
        "event=weight_not_trusted device=scale1 status=overload",
        "event=weight_not_trusted device=scale1 status=underload"]
    assert driver.health.errors == 0  # the scale answered properly each time


def test_error_responses_are_bad_comm_naming_the_error(tmp_path, caplog):
    answers = scripted(b"ES\r\n", b"EL\r\n", b"S S      1.5 g\r\n")

    async def scenario(pair):
        driver = make_driver(pair.dev, command="S")
        samples = driver.samples()
        batches = [await next_batch(samples, lambda b: True) for _ in range(3)]
        await driver.stop()
        return batches

    with caplog.at_level(logging.INFO, logger="linebridge.drivers.serial"):
        with SocatPair(tmp_path) as pair, FakeScale(pair, answers) as scale:
            es, el, ok = asyncio.run(scenario(pair))
    assert scale.commands[0] == "S"
    assert all(s.quality is Quality.BAD_COMM and s.value is None for s in es + el)
    assert "syntax error (ES)" in es[0].error and "logical error (EL)" in el[0].error
    assert by_tag(ok)["weight"].value == 1.5
    assert [m.split(" error=")[0] for m in records(caplog, "scale_error")] == [
        "event=scale_error device=scale1 code=ES", "event=scale_error device=scale1 code=EL"]
    assert records(caplog, "read_recovered") == [
        "event=read_recovered device=scale1 port=%s after=scale_error:EL" % (tmp_path / "dev")]


def test_silent_scale_gives_bad_timeout_logged_once(tmp_path, caplog):
    async def scenario(pair):
        driver = make_driver(pair.dev, read_timeout=0.3)
        samples = driver.samples()
        began = time.monotonic()
        first = await next_batch(samples, lambda b: True)
        took = time.monotonic() - began
        more = [await next_batch(samples, lambda b: True) for _ in range(2)]
        await driver.stop()
        return first, took, more, driver

    with caplog.at_level(logging.INFO, logger="linebridge.drivers.serial"):
        with SocatPair(tmp_path) as pair, FakeScale(pair, lambda command: None) as scale:
            first, took, more, driver = asyncio.run(scenario(pair))
    assert all(s.quality is Quality.BAD_TIMEOUT and s.value is None for s in first)
    assert first[0].error == "device scale1: no response to 'SI' within 0.3 s"
    assert 0.25 <= took < 2.0
    assert all(b[0].quality is Quality.BAD_TIMEOUT for b in more)
    assert len(scale.commands) >= 3  # it went on polling
    assert len(records(caplog, "no_response")) == 1  # once per streak, not per poll
    assert driver.health.errors >= 3


def test_garbage_on_the_line_is_bad_quality_with_one_log_line(tmp_path, caplog):
    answers = scripted(b"\xff\xfeS S \x00\x9c garbage\r\n", b"S S      2.000 g\r\n")

    async def scenario(pair):
        driver = make_driver(pair.dev)
        samples = driver.samples()
        bad = await next_batch(samples, lambda b: True)
        again = await next_batch(samples, lambda b: True)
        await driver.stop()
        return bad, again, driver

    with caplog.at_level(logging.INFO, logger="linebridge.drivers.serial"):
        with SocatPair(tmp_path) as pair, FakeScale(pair, answers):
            bad, again, driver = asyncio.run(scenario(pair))
    assert all(s.quality is Quality.BAD_COMM and s.value is None for s in bad)
    assert "garbage on the line: not UTF-8 (byte 0xff at offset 0)" in bad[0].error
    [line] = records(caplog, "line_rejected")
    assert "device=scale1" in line and "reason=garbage" in line
    assert "line=b'\\xff\\xfeS S \\x00\\x9c garbage'" in line
    assert by_tag(again)["weight"].value == 2.0  # the process lives on
    assert driver.rejected["garbage"] == 1 and driver.health.errors == 1


def test_scanner_yields_the_code_and_the_named_groups(tmp_path):
    async def scenario(pair, peer):
        driver = scanner(pair.dev)
        stream = Stream(driver)
        await stream.wait_open()
        peer.write(b"B4711ABC\r\nL0815XYZ99\r\n")
        first = await stream.next()
        second = await stream.next()
        await stream.close()
        return first, second, driver

    with SocatPair(tmp_path) as pair:
        with pair.open_peer() as peer:
            first, second, driver = asyncio.run(scenario(pair, peer))
    assert [(s.tag, s.value, s.quality) for s in first] == [
        ("code", "4711ABC", Quality.GOOD), ("kind", "B", Quality.GOOD)]
    assert [(s.tag, s.value) for s in second] == [("code", "0815XYZ99"), ("kind", "L")]
    assert all(s.device == "scanner1" for s in first + second)
    assert driver.tags == ("code", "kind")
    assert driver.health.reads == 2


def test_scan_not_matching_the_pattern_is_refused_with_one_log_line(tmp_path, caplog):
    async def scenario(pair, peer):
        driver = scanner(pair.dev)
        stream = Stream(driver)
        await stream.wait_open()
        peer.write(b"X12\r\n\r\nB123456\r\n")
        refused = await stream.next()
        accepted = await stream.next()
        await stream.close()
        return refused, accepted, driver

    with caplog.at_level(logging.INFO, logger="linebridge.drivers.serial"):
        with SocatPair(tmp_path) as pair:
            with pair.open_peer() as peer:
                refused, accepted, driver = asyncio.run(scenario(pair, peer))
    assert [(s.tag, s.value, s.quality) for s in refused] == [
        ("code", None, Quality.BAD_COMM), ("kind", None, Quality.BAD_COMM)]
    assert "scan does not match the pattern: b'X12'" in refused[0].error
    assert [(s.tag, s.value) for s in accepted] == [("code", "123456"), ("kind", "B")]
    [line] = records(caplog, "line_rejected")  # the blank line is ignored silently
    assert "device=scanner1" in line and "reason=unmatched" in line and "line=b'X12'" in line
    assert driver.rejected["unmatched"] == 1 and driver.health.errors == 1


def test_garbage_flood_without_terminator_is_cut_at_max_line(tmp_path, caplog):
    async def scenario(pair, peer):
        driver = scanner(pair.dev, max_line=64)
        stream = Stream(driver)
        await stream.wait_open()
        peer.write(bytes(range(256)) * 8 + b"\r\nB777777\r\n")
        flood = await stream.next()
        scan = await stream.next()
        await stream.close()
        return flood, scan, driver

    with caplog.at_level(logging.INFO, logger="linebridge.drivers.serial"):
        with SocatPair(tmp_path) as pair:
            with pair.open_peer() as peer:
                flood, scan, driver = asyncio.run(scenario(pair, peer))
    assert all(s.quality is Quality.BAD_COMM and s.value is None for s in flood)
    assert "line longer than 64 bytes discarded" in flood[0].error
    [line] = records(caplog, "line_rejected")
    assert "reason=too_long" in line and "line=b'\\x00\\x01\\x02" in line
    assert [(s.tag, s.value) for s in scan] == [("code", "777777"), ("kind", "B")]
    assert driver.rejected == {"garbage": 0, "too_long": 1, "unexpected": 0, "unmatched": 0}


def test_unplugged_port_goes_bad_comm_then_recovers_when_the_path_returns(tmp_path, caplog):
    pair = SocatPair(tmp_path).start()

    async def scenario():
        driver = scanner(pair.dev)
        stream = Stream(driver)
        await stream.wait_open()
        with pair.open_peer() as peer:
            peer.write(b"B100001\r\n")
            first = await stream.next()
        assert driver.health.connected
        pair.stop()  # unplug: the port fails and its by-id style link disappears
        lost = await stream.next()
        assert not driver.health.connected and not pair.dev.exists()
        # while the path is missing, reopen attempts fail quietly (backoff, no batches)
        deadline = time.monotonic() + 5
        while driver.health.errors < 3:
            assert time.monotonic() < deadline, "no reopen attempts"
            await asyncio.sleep(0.02)
        assert stream.queue.empty()
        pair.start()  # plugged back in: the same path points to a new pty
        await stream.wait_open()
        with pair.open_peer() as peer:
            peer.write(b"L200002\r\n")
            again = await stream.next()
        await stream.close()
        return first, lost, again, driver

    try:
        with caplog.at_level(logging.INFO, logger="linebridge.drivers.serial"):
            first, lost, again, driver = asyncio.run(scenario())
    finally:
        pair.stop()
    assert by_tag(first)["code"].value == "100001"
    assert all(s.quality is Quality.BAD_COMM and s.value is None for s in lost)
    assert "read failed" in lost[0].error and "scanner1" in lost[0].error
    assert by_tag(again)["code"].value == "200002" and good(again)
    assert driver.health.reconnects == 1
    assert len(records(caplog, "connection_lost")) == 1
    failed = records(caplog, "open_failed")
    assert failed and "does not exist (unplugged?)" in failed[0]
    warnings = [r for r in caplog.records if "event=open_failed" in r.getMessage()
                and r.levelno == logging.WARNING]
    assert len(warnings) == 1  # the first failed attempt warns, the retries are INFO


def test_missing_port_at_start_is_bad_comm_once_and_polling_scale_keeps_cadence(tmp_path):
    async def scenario():
        driver = make_driver(tmp_path / "nothing-here", poll_interval=0.1)
        samples = driver.samples()
        began = time.monotonic()
        batches = [await next_batch(samples, lambda b: True) for _ in range(4)]
        took = time.monotonic() - began
        await driver.stop()
        return batches, took, driver

    batches, took, driver = asyncio.run(scenario())
    assert all(s.quality is Quality.BAD_COMM and s.value is None for b in batches for s in b)
    assert "does not exist (unplugged?)" in batches[0][0].error
    assert took >= 0.29
    assert 1 <= driver.health.errors <= 4  # reopen attempts follow the backoff


def test_streaming_scale_yields_each_line_and_sends_its_start_command(tmp_path):
    async def scenario(pair, peer):
        driver = make_driver(pair.dev, mode="stream", command="SIR", read_timeout=1.0)
        stream = Stream(driver)
        deadline = time.monotonic() + 5
        received = b""
        while b"SIR\r\n" not in received:
            assert time.monotonic() < deadline, "the start command never came"
            received += await asyncio.to_thread(peer.read, 16)
        peer.write(b"S D      3.1 g\r\nS D      3.3 g\r\nS S      3.400 g\r\n")
        batches = [await stream.next() for _ in range(3)]
        silent = await stream.next()
        await stream.close()
        return batches, silent

    with SocatPair(tmp_path) as pair:
        with pair.open_peer() as peer:
            batches, silent = asyncio.run(scenario(pair, peer))
    weights = [by_tag(b)["weight"] for b in batches]
    assert [w.quality for w in weights] == [Quality.STALE, Quality.STALE, Quality.GOOD]
    assert weights[2].value == 3.4
    assert silent[0].quality is Quality.BAD_TIMEOUT
    assert "no data from the streaming scale for 1 s" in silent[0].error


def test_stop_ends_the_stream_promptly_during_a_read(tmp_path):
    async def scenario(pair):
        driver = scanner(pair.dev, read_timeout=30)

        async def consume():
            return [batch async for batch in driver.samples()]

        consumer = asyncio.create_task(consume())
        deadline = time.monotonic() + 5
        while not driver.health.connected:
            assert time.monotonic() < deadline, "driver never opened the port"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        began = time.monotonic()
        await driver.stop()
        batches = await asyncio.wait_for(consumer, 2)
        await driver.stop()  # twice is fine
        return time.monotonic() - began, batches, driver

    with SocatPair(tmp_path) as pair:
        took, batches, driver = asyncio.run(scenario(pair))
        # the port was closed: the exclusive lock is free again
        with __import__("serial").Serial(str(pair.dev), exclusive=True):
            pass
    assert took < 0.5
    assert batches == []
    assert driver.health.connected is False


def test_polled_scale_unplugged_mid_poll_recovers_on_the_same_path(tmp_path):
    pair = SocatPair(tmp_path).start()

    async def scenario():
        driver = make_driver(pair.dev)
        samples = driver.samples()
        with FakeScale(pair, scripted(b"S S      5.000 g\r\n")):
            first = await next_batch(samples, lambda b: True)
            pair.stop()
            lost = await next_batch(samples, lambda b: b[0].quality is not Quality.GOOD)
        pair.start()
        with FakeScale(pair, scripted(b"S S      6.000 g\r\n")):
            again = await next_batch(samples, good)
        await driver.stop()
        return first, lost, again, driver

    try:
        first, lost, again, driver = asyncio.run(scenario())
    finally:
        pair.stop()
    assert by_tag(first)["weight"].value == 5.0
    assert all(s.quality is Quality.BAD_COMM and s.value is None for s in lost)
    assert by_tag(again)["weight"].value == 6.0
    assert driver.health.reconnects == 1 and driver.health.connected is False
