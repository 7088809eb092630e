"""The MQTT input driver against a real mosquitto broker on a loopback port."""
from __future__ import annotations

import asyncio
import json
import logging
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from drivers.base import Backoff, Quality
from tests.drivers.mqtt import all_good, all_stale, by_tag, make_driver, send, take, wait_until
from tests.drivers.mqtt.broker import MosquittoBroker, Publisher, free_port, make_tls_files
from tests.helpers import wait_for

LOGGER = "linebridge.drivers.mqtt"

STATE_TOPICS = {
    "state": {
        "topic": "plant/cnc01/state",
        "timestamp_field": "ts",
        "fields": {
            "parts": {"path": "counters.good", "type": "int"},
            "scrap": "counters.scrap",
            "spindle_load": {"path": "axes.1.load", "type": "float"},
            "running": {"path": "status.running", "type": "bool"},
            "program": {"path": "status.program", "type": "str"},
        },
    },
}


def messages(caplog, event):
    return [r for r in caplog.records
            if r.name == LOGGER and r.getMessage().startswith(f"event={event} ")]


def test_json_fields_map_nested_paths_list_indexes_and_types(broker):
    payload = {"ts": "2024-05-01T10:00:00Z",
               "counters": {"good": 1200.0, "scrap": 7},
               "axes": [{"load": 10}, {"load": "41.5"}],
               "status": {"running": "on", "program": 4711}}

    async def scenario():
        driver = make_driver(broker.port, STATE_TOPICS)
        await driver.start()
        samples = driver.samples()
        await wait_until(lambda: driver.health.connected, "the driver to subscribe")
        await send(broker.port, "plant/cnc01/state", json.dumps(payload))
        payload_ms = dict(payload, ts=1714557600250)
        await send(broker.port, "plant/cnc01/state", json.dumps(payload_ms))
        first, second = await take(samples), await take(samples)
        await driver.stop()
        return first, second, driver.health

    first, second, health = asyncio.run(scenario())
    assert [s.tag for s in first] == ["parts", "scrap", "spindle_load", "running", "program"]
    assert {s.tag: s.value for s in first} == {"parts": 1200, "scrap": 7, "spindle_load": 41.5,
                                               "running": True, "program": "4711"}
    assert type(by_tag(first)["parts"].value) is int
    assert all(s.quality is Quality.GOOD and s.error is None and s.device == "cnc01"
               for s in first)
    assert {s.source_ts for s in first} == {1714557600.0}      # ISO 8601 from the payload
    assert {s.source_ts for s in second} == {1714557600.25}    # epoch milliseconds
    assert health.reads == 2 and health.errors == 0 and health.last_good_read is not None


def test_raw_payload_becomes_one_typed_value_with_receive_time(broker):
    topics = {"weight": {"topic": "plant/scale1/weight", "format": "raw",
                         "fields": {"weight": {"type": "float"}}},
              "scan": {"topic": "plant/scanner1/code", "format": "raw",
                       "fields": {"barcode": ""}}}

    async def scenario():
        driver = make_driver(broker.port, topics)
        await driver.start()
        samples = driver.samples()
        await wait_until(lambda: driver.health.connected, "the driver to subscribe")
        before = time.time()
        await send(broker.port, "plant/scale1/weight", b" 12.375\r\n")
        await send(broker.port, "plant/scanner1/code", b"4006381333931\n")
        got = [await take(samples), await take(samples)]
        await driver.stop()
        return before, got

    before, (weight, scan) = asyncio.run(scenario())
    assert [(s.tag, s.value, s.quality) for s in weight] == [("weight", 12.375, Quality.GOOD)]
    assert [(s.tag, s.value, s.quality) for s in scan] == [
        ("barcode", "4006381333931", Quality.GOOD)]
    assert before <= weight[0].source_ts <= time.time()


def test_malformed_payloads_give_bad_config_and_one_log_line_while_other_fields_stay_good(
        broker, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    topics = {"state": {"topic": "plant/cnc01/state",
                        "fields": {"parts": {"path": "counters.good", "type": "int"},
                                   "mode": "mode",
                                   "temp": {"path": "temps.0", "type": "float"}}}}
    good = {"counters": {"good": 5}, "mode": "auto", "temps": [20.5]}
    sequence = [
        json.dumps(good),
        json.dumps({"counters": {"good": "many"}, "mode": "auto", "temps": [20.5]}),  # wrong type
        json.dumps({"counters": {"good": 6}, "temps": [21.0]}),                     # mode missing
        "not json {",                                                                # garbage
        "not json {",                                                                # again
        json.dumps(good),
    ]

    async def scenario():
        driver = make_driver(broker.port, topics)
        await driver.start()
        samples = driver.samples()
        await wait_until(lambda: driver.health.connected, "the driver to subscribe")
        for payload in sequence:
            await send(broker.port, "plant/cnc01/state", payload)
        batches = [await take(samples) for _ in sequence]
        await driver.stop()
        return batches, driver.health

    batches, health = asyncio.run(scenario())
    quality = [{s.tag: s.quality.value for s in b} for b in batches]
    assert quality[0] == {"parts": "good", "mode": "good", "temp": "good"}
    assert quality[1] == {"parts": "bad_config", "mode": "good", "temp": "good"}
    assert quality[2] == {"parts": "good", "mode": "bad_config", "temp": "good"}
    assert quality[3] == quality[4] == {"parts": "bad_config", "mode": "bad_config",
                                        "temp": "bad_config"}
    assert all_good(batches[5])
    for batch in batches:  # never an invented value
        assert all(s.value is None for s in batch if s.quality is not Quality.GOOD)
    assert by_tag(batches[1])["mode"].value == "auto" and by_tag(batches[2])["parts"].value == 6
    assert "expected int, got 'many'" in by_tag(batches[1])["parts"].error

    wrong_type, missing = messages(caplog, "field_rejected")
    assert "device=cnc01" in wrong_type.getMessage()
    assert "topic=plant/cnc01/state field=parts path=counters.good" in wrong_type.getMessage()
    assert "expected int, got 'many'" in wrong_type.getMessage()
    assert wrong_type.levelno == logging.WARNING
    assert "field=mode" in missing.getMessage() and "no key 'mode'" in missing.getMessage()
    [garbage] = messages(caplog, "payload_rejected")  # the repeat is counted, not logged again
    assert "fields=parts,mode,temp" in garbage.getMessage()
    assert "not valid JSON" in garbage.getMessage()
    assert len(messages(caplog, "payload_recovered")) == 1
    assert health.errors == 4 and health.reads == 6 and health.connected is False


def test_broker_restart_marks_tags_stale_once_then_reconnects_and_resubscribes(broker, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    topics = {"state": {"topic": "plant/cnc01/state", "fields": {"parts": "parts"}}}

    async def scenario():
        driver = make_driver(broker.port, topics)
        await driver.start()
        samples = driver.samples()
        await wait_until(lambda: driver.health.connected, "the driver to subscribe")
        await send(broker.port, "plant/cnc01/state", '{"parts": 41}')
        before = await take(samples)
        await asyncio.to_thread(broker.stop)
        stale = await take(samples)
        assert not driver.health.connected
        await wait_until(lambda: len(messages(caplog, "connect_failed")) >= 2,
                         "reconnect attempts while the broker is down")
        await asyncio.to_thread(broker.start)  # same port; the broker's sessions are gone
        await wait_until(lambda: driver.health.connected, "the driver to reconnect")
        await send(broker.port, "plant/cnc01/state", '{"parts": 42}')
        after = await take(samples)  # no second stale batch came in between
        await driver.stop()
        return before, stale, after, driver.health

    before, stale, after, health = asyncio.run(scenario())
    assert before[0].value == 41 and before[0].quality is Quality.GOOD
    assert all_stale(stale) and stale[0].value is None
    assert "connection to 127.0.0.1" in stale[0].error and "lost" in stale[0].error
    assert after[0].value == 42 and after[0].quality is Quality.GOOD
    assert health.reconnects == 1 and health.errors >= 3
    assert len(messages(caplog, "connection_lost")) == 1
    failed = messages(caplog, "connect_failed")
    assert failed[0].levelno == logging.WARNING and failed[1].levelno == logging.INFO
    assert "session_present=false" in messages(caplog, "connected")[-1].getMessage()


def test_qos1_messages_published_while_the_driver_was_away_arrive_after_it_reconnects(
        broker, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    topics = {"state": {"topic": "plant/cnc01/state", "fields": {"parts": "parts"}}}

    async def scenario():
        first = make_driver(broker.port, topics, client_id="cnc01-persistent")
        await first.start()
        await wait_until(lambda: first.health.connected, "the first driver to subscribe")
        await first.stop()  # the broker keeps the session (clean_session = false)
        with Publisher(broker.port) as pub:
            for value in (1, 2, 3):
                await asyncio.to_thread(pub.publish, "plant/cnc01/state",
                                        json.dumps({"parts": value}), 1)
        second = make_driver(broker.port, topics, client_id="cnc01-persistent")
        await second.start()
        samples = second.samples()
        got = [await take(samples) for _ in range(3)]
        await wait_until(lambda: second.health.connected, "the second driver to subscribe")
        await second.stop()
        return got

    got = asyncio.run(scenario())
    assert [b[0].value for b in got] == [1, 2, 3]
    assert "session_present=true" in messages(caplog, "connected")[-1].getMessage()


def test_clean_session_forgets_messages_published_while_the_driver_was_away(broker):
    topics = {"state": {"topic": "plant/cnc01/state", "fields": {"parts": "parts"}}}

    async def scenario():
        first = make_driver(broker.port, topics, client_id="cnc01-clean", clean_session=True)
        await first.start()
        await wait_until(lambda: first.health.connected, "the first driver to subscribe")
        await first.stop()
        await send(broker.port, "plant/cnc01/state", '{"parts": 1}')
        second = make_driver(broker.port, topics, client_id="cnc01-clean", clean_session=True)
        await second.start()
        samples = second.samples()
        await wait_until(lambda: second.health.connected, "the second driver to subscribe")
        await send(broker.port, "plant/cnc01/state", '{"parts": 99}')
        got = await take(samples)
        await second.stop()
        return got

    assert asyncio.run(scenario())[0].value == 99


def test_a_message_is_acknowledged_only_after_the_gateway_took_its_batch(broker):
    """A batch the gateway never finished with is redelivered by the broker."""
    topics = {"state": {"topic": "plant/cnc01/state", "fields": {"parts": "parts"}}}

    async def scenario():
        crashed = make_driver(broker.port, topics, client_id="cnc01-ack")
        await crashed.start()
        samples = crashed.samples()
        await wait_until(lambda: crashed.health.connected, "the driver to subscribe")
        await send(broker.port, "plant/cnc01/state", '{"parts": 1}')
        held = await take(samples)           # taken, never handed back (the gateway died)
        await crashed.stop()
        await samples.aclose()

        second = make_driver(broker.port, topics, client_id="cnc01-ack")
        await second.start()
        samples = second.samples()
        again = await take(samples)          # redelivered
        await send(broker.port, "plant/cnc01/state", '{"parts": 2}')
        then = await take(samples)           # resuming acknowledged message 1
        await second.stop()                  # message 2 was taken but not handed back
        await samples.aclose()

        third = make_driver(broker.port, topics, client_id="cnc01-ack")
        await third.start()
        samples = third.samples()
        last = await take(samples)
        await third.stop()
        return held, again, then, last

    held, again, then, last = asyncio.run(scenario())
    assert [held[0].value, again[0].value, then[0].value, last[0].value] == [1, 1, 2, 2]


def test_wildcard_subscriptions_map_every_matching_topic(broker):
    topics = {"state": {"topic": "plant/+/state", "fields": {"parts": "parts"}},
              "alarms": {"topic": "alarms/#", "fields": {"alarm_code": {"path": "code",
                                                                        "type": "int"}}}}

    async def scenario():
        driver = make_driver(broker.port, topics)
        await driver.start()
        samples = driver.samples()
        await wait_until(lambda: driver.health.connected, "the driver to subscribe")
        for topic, payload in [("plant/cnc01/state", '{"parts": 1}'),
                               ("plant/cnc02/state", '{"parts": 2}'),
                               ("plant/cnc01/other", '{"parts": 3}'),       # not subscribed
                               ("plant/a/b/state", '{"parts": 4}'),         # '+' is one level
                               ("alarms/line1/cnc03", '{"code": 17}'),
                               ("alarms", '{"code": 18}')]:                 # '#' takes the parent
            await send(broker.port, topic, payload)
        got = [await take(samples) for _ in range(4)]
        await driver.stop()
        return got

    got = asyncio.run(scenario())
    assert [(b[0].tag, b[0].value) for b in got] == [
        ("parts", 1), ("parts", 2), ("alarm_code", 17), ("alarm_code", 18)]
    assert all(all_good(b) and len(b) == 1 for b in got)


def test_username_and_password_are_accepted(auth_broker, monkeypatch):
    monkeypatch.setenv("LB_TEST_MQTT_PASSWORD", "s3cret-pass")
    topics = {"state": {"topic": "plant/cnc01/state", "fields": {"parts": "parts"}}}

    async def scenario():
        driver = make_driver(auth_broker.port, topics, username="line",
                             password_env="LB_TEST_MQTT_PASSWORD")
        await driver.start()
        samples = driver.samples()
        await wait_until(lambda: driver.health.connected, "the driver to log in")
        await send(auth_broker.port, "plant/cnc01/state", '{"parts": 5}',
                   username="viewer", password="other-pass")
        got = await take(samples)
        await driver.stop()
        return got, driver.health

    got, health = asyncio.run(scenario())
    assert got[0].value == 5 and health.errors == 0


def test_wrong_password_is_reported_clearly_and_retried_with_backoff(auth_broker, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    topics = {"state": {"topic": "plant/cnc01/state", "fields": {"parts": "parts"}}}

    async def scenario():
        driver = make_driver(auth_broker.port, topics, username="line", password="wrong",
                             backoff=Backoff(initial=0.2, cap=0.4))
        await driver.start()
        samples = driver.samples()
        stale = await take(samples)
        await wait_until(lambda: len(messages(caplog, "connect_refused")) >= 4,
                         "four refused attempts")
        began = time.monotonic()
        await driver.stop()
        stopped_in = time.monotonic() - began
        return stale, driver.health, stopped_in

    stale, health, stopped_in = asyncio.run(scenario())
    refused = messages(caplog, "connect_refused")
    assert "Not authorized" in refused[0].getMessage()
    assert "check username and password" in refused[0].getMessage()
    assert refused[0].levelno == logging.WARNING
    assert all(r.levelno == logging.INFO for r in refused[1:])
    # full-jitter backoff: each wait is at least half its ceiling (0.1, 0.2, 0.2 s)
    assert refused[3].created - refused[0].created >= 0.45
    assert all_stale(stale) and "Not authorized" in stale[0].error
    assert not health.connected and "Not authorized" in health.last_error
    assert health.errors >= 4 and health.reconnects == 0
    assert stopped_in < 1.0


def test_unreachable_broker_marks_tags_stale_once_and_connects_when_it_appears(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    port = free_port()
    topics = {"state": {"topic": "plant/cnc01/state", "fields": {"parts": "parts"}}}

    async def scenario():
        driver = make_driver(port, topics)
        await driver.start()
        samples = driver.samples()
        stale = await take(samples)
        await wait_until(lambda: len(messages(caplog, "connect_failed")) >= 3,
                         "three failed attempts")
        late = MosquittoBroker(tmp_path / "late", port=port)
        await asyncio.to_thread(late.start)
        try:
            await wait_until(lambda: driver.health.connected, "the driver to connect")
            await send(port, "plant/cnc01/state", '{"parts": 8}')
            good = await take(samples)      # no second stale batch before it
            await driver.stop()
        finally:
            await asyncio.to_thread(late.stop)
        return stale, good, driver.health

    stale, good, health = asyncio.run(scenario())
    assert all_stale(stale) and "refused" in stale[0].error.lower()
    assert good[0].value == 8
    assert health.reconnects == 0  # the first successful connection is not a reconnect


def test_a_peer_that_never_answers_connect_times_out_and_stop_stays_prompt(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    topics = {"state": {"topic": "plant/cnc01/state", "fields": {"parts": "parts"}}}

    async def scenario():
        accepted = []
        server = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        driver = make_driver(port, topics, connect_timeout=0.5)
        await driver.start()
        samples = driver.samples()
        try:
            stale = await take(samples)
            await wait_until(lambda: len(accepted) >= 2, "a second connection attempt")
            began = time.monotonic()
            await driver.stop()
            await driver.stop()  # twice is fine
            stopped_in = time.monotonic() - began
            ended = [b async for b in samples]
        finally:
            for writer in accepted:
                writer.close()
            server.close()
            await server.wait_closed()
        return stale, stopped_in, ended, driver.health

    stale, stopped_in, ended, health = asyncio.run(scenario())
    assert all_stale(stale)
    assert "no answer from the broker (CONNACK, SUBACK) within 0.5 s" in stale[0].error
    assert stopped_in < 1.0 and ended == [] and not health.connected


def test_stop_ends_the_stream_and_disconnects_cleanly(broker):
    topics = {"state": {"topic": "plant/cnc01/state", "fields": {"parts": "parts"}}}

    async def scenario():
        driver = make_driver(broker.port, topics, client_id="cnc01-stopper")
        await driver.start()
        samples = driver.samples()
        await wait_until(lambda: driver.health.connected, "the driver to subscribe")
        waiting = asyncio.ensure_future(take(samples))
        await asyncio.sleep(0)  # let it start waiting for a message
        began = time.monotonic()
        await driver.stop()
        try:
            await waiting
            raise AssertionError("a batch came after stop()")
        except StopAsyncIteration:
            pass
        return time.monotonic() - began

    assert asyncio.run(scenario()) < 1.0
    # a DISCONNECT packet ("disconnected."), not a dropped socket ("closed its connection.")
    wait_for(lambda: "Client cnc01-stopper disconnected." in broker.output(), 5.0,
             "the broker to log the clean disconnect")


def test_tls_with_a_client_certificate_connects_and_an_unknown_ca_is_reported(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    files = make_tls_files(tmp_path / "pki")
    topics = {"state": {"topic": "plant/cnc01/state", "fields": {"parts": "parts"}}}

    async def scenario(broker):
        trusted = make_driver(broker.port, topics, tls={
            "ca_file": str(files.ca), "certfile": str(files.client_cert),
            "keyfile": str(files.client_key)})
        await trusted.start()
        samples = trusted.samples()
        await wait_until(lambda: trusted.health.connected, "the TLS driver to subscribe")
        await asyncio.to_thread(publish_tls, broker.port, files)
        got = await take(samples)
        await trusted.stop()

        untrusting = make_driver(broker.port, topics, tls=True)  # the system's CAs only
        await untrusting.start()
        stale = await take(untrusting.samples())
        await untrusting.stop()
        return got, stale, untrusting.health

    with MosquittoBroker(tmp_path / "tls-broker", tls=files, require_certificate=True) as broker:
        got, stale, health = asyncio.run(scenario(broker))
    assert got[0].value == 9 and got[0].quality is Quality.GOOD
    assert all_stale(stale) and "TLS failed" in stale[0].error
    assert "certificate verify failed" in health.last_error and not health.connected
    [failed] = messages(caplog, "connect_failed")
    assert "TLS failed" in failed.getMessage()


def publish_tls(port, files):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.tls_set(ca_certs=str(files.ca), certfile=str(files.client_cert),
                   keyfile=str(files.client_key))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        info = client.publish("plant/cnc01/state", '{"parts": 9}', qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_topic_left_in_the_persistent_session_is_ignored_with_one_log_line(broker, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    before = {"a": {"topic": "plant/a", "fields": {"a": "v"}},
              "b": {"topic": "plant/b", "fields": {"b": "v"}}}
    after = {"a": {"topic": "plant/a", "fields": {"a": "v"}}}

    async def scenario():
        old = make_driver(broker.port, before, client_id="cnc01-reconfigured")
        await old.start()
        await wait_until(lambda: old.health.connected, "the old configuration to subscribe")
        await old.stop()
        new = make_driver(broker.port, after, client_id="cnc01-reconfigured")
        await new.start()
        samples = new.samples()
        await wait_until(lambda: new.health.connected, "the new configuration to subscribe")
        for topic, value in [("plant/b", 1), ("plant/b", 2), ("plant/a", 3)]:
            await send(broker.port, topic, json.dumps({"v": value}))
        got = await take(samples)
        await new.stop()
        return got, new.health

    got, health = asyncio.run(scenario())
    assert [(s.tag, s.value) for s in got] == [("a", 3)]  # no empty batches in between
    [unmapped] = messages(caplog, "message_unmapped")
    assert "topic=plant/b" in unmapped.getMessage()
    assert health.errors == 2


def test_messages_beyond_the_queue_limit_are_dropped_counted_and_logged_once(
        broker, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger=LOGGER)
    monkeypatch.setattr("drivers.mqtt.driver.QUEUE_LIMIT", 2)
    topics = {"state": {"topic": "plant/cnc01/state", "qos": 0, "fields": {"parts": "parts"}}}

    async def scenario():
        driver = make_driver(broker.port, topics)
        await driver.start()
        samples = driver.samples()
        await wait_until(lambda: driver.health.connected, "the driver to subscribe")
        with Publisher(broker.port) as pub:  # the gateway is busy: nothing is taken meanwhile
            for value in range(5):
                await asyncio.to_thread(pub.publish, "plant/cnc01/state",
                                        json.dumps({"parts": value}), 0)
        await wait_until(lambda: driver.dropped == 3, "three messages to be dropped")
        got = [await take(samples), await take(samples)]
        await driver.stop()
        return got, driver.health

    got, health = asyncio.run(scenario())
    assert [b[0].value for b in got] == [0, 1]
    assert health.errors == 3
    [dropped] = messages(caplog, "message_dropped")
    assert "queue full" in dropped.getMessage() and dropped.levelno == logging.WARNING
