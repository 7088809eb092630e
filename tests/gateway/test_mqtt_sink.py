"""The MQTT sink against a real mosquitto: topics, QoS 1, PUBACK-gated acks, outages, TLS, config."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway import config as config_mod
from gateway.config import MqttSinkConfig
from gateway.errors import ConfigError
from gateway.events import Event, event_id
from gateway.signing import DeviceKey, verify
from gateway.sinks.mqtt import MqttSink
from store.queue import Store
from tests.drivers.mqtt.broker import MosquittoBroker, Subscriber, make_tls_files

PREFIX = "linebridge/test-site/gw1"


def sink_config(port: int, **over: Any) -> MqttSinkConfig:
    values: dict[str, Any] = dict(name="upstream", host="127.0.0.1", port=port, tls=False, topic_prefix=PREFIX,
                                  client_id=f"lb-test-{os.getpid()}-{time.monotonic_ns()}", timeout=3.0,
                                  retry_cap=2.0, rate=1000.0)
    values.update(over)
    return MqttSinkConfig(**values)


def make_event(n: int, kind: str = "production", key: DeviceKey | None = None) -> dict[str, Any]:
    data = {"quantity": 1, "total": n} if kind in ("production", "scrap") else {"code": 100 + n}
    ev = Event(id=event_id("gw1", "cnc01/parts", f"{kind}:{n}"), kind=kind, ts="2026-11-28T03:00:00.000Z",
               gateway="gw1", source={"device": "cnc01", "tag": "parts"}, data=data,
               context={"machine": "CNC-01"}).to_dict()
    return key.sign(ev) if key else ev


def telemetry_record(n: int) -> dict[str, Any]:
    return {"schema": "linebridge.event/1", "id": event_id("gw1", "cnc01/telemetry", str(n)), "seq": None,
            "kind": "telemetry", "ts": "2026-11-28T03:00:00.000Z", "gateway": "gw1",
            "source": {"device": "cnc01"}, "data": {"samples": [{"tag": "parts", "value": n}]}, "context": {}}


@contextlib.asynccontextmanager
async def running(sink: MqttSink) -> AsyncIterator[MqttSink]:
    """The sink and its link as the supervisor runs them; stopped in the supervisor's order."""
    stop_sink, stop_link = asyncio.Event(), asyncio.Event()
    link_task = asyncio.create_task(sink.link.run(stop_link))
    sink_task = asyncio.create_task(sink.run(stop_sink))
    try:
        yield sink
    finally:
        stop_sink.set()
        await asyncio.wait_for(sink_task, 10)
        stop_link.set()
        await asyncio.wait_for(link_task, 10)


async def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def payloads(sub: Subscriber) -> list[dict[str, Any]]:
    with sub._lock:
        return [json.loads(p) for _, p, _, _ in sub.messages]


def test_each_kind_goes_to_its_topic_with_qos_1_and_unwanted_kinds_are_acknowledged_unsent(broker, tmp_path):
    key = DeviceKey.load_or_create(tmp_path / "state")
    store = Store(tmp_path / "store", sinks={"upstream": {"business", "telemetry"}})
    kinds = ["production", "scrap", "alarm", "downtime_start", "downtime_end", "quality_result"]
    store.append([make_event(i, k, key) for i, k in enumerate(kinds)] + [key.sign(telemetry_record(1))])
    cfg = sink_config(broker.port, kinds=frozenset(kinds) - {"scrap"}, telemetry=True)

    async def go() -> None:
        with Subscriber(broker.port, f"{PREFIX}/#") as sub:
            async with running(MqttSink(cfg, store)) as sink:
                await until(lambda: sink.stats.delivered + sink.stats.extra["skipped"] == 7, 15,
                            "every event acknowledged")
                got = await until(lambda: len(sub.messages) >= 6 and list(sub.messages), 10, "6 messages")
                assert sink.stats.delivered == 6 and sink.stats.extra["skipped"] == 1
                assert store.backlog("upstream") == 0
            topics = {topic: json.loads(payload) for topic, payload, _, _ in got}
            assert set(topics) == {f"{PREFIX}/events/{k}" for k in kinds if k != "scrap"} | {
                f"{PREFIX}/telemetry/cnc01"}
            assert all(qos == 1 for _, _, qos, _ in got)
            for topic, env in topics.items():
                assert verify(env, key.public) is None, topic
                assert isinstance(env["seq"], int) and env["sig"]["kid"] == key.kid
            assert topics[f"{PREFIX}/events/alarm"]["kind"] == "alarm"

    asyncio.run(go())


def test_an_event_stays_in_the_backlog_until_its_puback_arrives(broker, tmp_path):
    store = Store(tmp_path / "store", sinks=["upstream"])
    cfg = sink_config(broker.port, timeout=30.0)   # the broker, not the timeout, decides here

    async def go() -> None:
        async with running(MqttSink(cfg, store)) as sink:
            await until(lambda: sink.link.connected.is_set(), 10, "a connection")
            os.kill(broker.proc.pid, signal.SIGSTOP)   # frozen: it can take the bytes, never answer
            try:
                store.append([make_event(i) for i in range(3)])
                sink.wake.set()
                await until(lambda: sink.link.in_flight() == 3, 10, "3 publishes waiting for PUBACK")
                assert store.backlog("upstream") == 3 and sink.stats.delivered == 0
            finally:
                os.kill(broker.proc.pid, signal.SIGKILL)   # gone before a PUBACK could be sent
                broker.proc.wait(10)
            await until(lambda: not sink.link.connected.is_set(), 10, "the link to notice")
            await until(lambda: sink.stats.retries >= 1, 10, "the batch to be retried")
            assert store.backlog("upstream") == 3 and sink.stats.delivered == 0
        assert store.backlog("upstream") == 3          # still owed after the sink stopped
        broker.proc = None
        with Subscriber(broker.start().port, f"{PREFIX}/#") as sub:
            async with running(MqttSink(cfg, store)) as again:   # as after a gateway restart
                await until(lambda: again.stats.delivered == 3, 20, "the backlog to be delivered")
                got = await until(lambda: len(sub.messages) >= 3 and payloads(sub), 10, "3 messages")
        assert [e["id"] for e in got] == [make_event(i)["id"] for i in range(3)]
        assert store.backlog("upstream") == 0

    asyncio.run(go())


class PersistentSubscriber:
    """A subscriber whose session (and queued QoS 1 messages) survives a broker restart."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"witness-{os.getpid()}",
                                  clean_session=False, protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        self.client.on_subscribe = lambda *a: subscribed.set()

        def on_message(c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
            with self.lock:
                self.messages.append(json.loads(msg.payload))

        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert subscribed.wait(10), "witness could not subscribe"

    def ids(self) -> list[str]:
        with self.lock:
            return [m["id"] for m in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_broker_restart_mid_stream_loses_nothing_and_keeps_the_order(tmp_path):
    broker = MosquittoBroker(tmp_path / "broker", extra=[
        "persistence true", f"persistence_location {tmp_path / 'broker'}/", "autosave_interval 1"])
    broker.start()
    store = Store(tmp_path / "store", sinks=["upstream"])
    cfg = sink_config(broker.port, rate=60.0, batch_size=20)   # a paced flush, so the restart lands mid-stream
    events = [make_event(i) for i in range(120)]
    witness = PersistentSubscriber(broker.port, f"{PREFIX}/events/#")

    async def go() -> None:
        async with running(MqttSink(cfg, store)) as sink:
            store.append(events[:60])
            sink.wake.set()
            await until(lambda: len(witness.ids()) >= 15, 15, "the stream to start")
            await asyncio.to_thread(broker.stop)
            store.append(events[60:])               # produced during the outage
            await asyncio.to_thread(broker.start)
            await until(lambda: store.backlog("upstream") == 0, 30, "the backlog to drain")
            await until(lambda: set(witness.ids()) >= {e["id"] for e in events}, 15,
                        "every event id at the subscriber")
            assert sink.link.connects >= 2

    try:
        asyncio.run(go())
    finally:
        witness.close()
        broker.stop()
    first_seen: list[str] = []
    for eid in witness.ids():
        if eid not in first_seen:
            first_seen.append(eid)
    assert first_seen == [e["id"] for e in events]   # in seq order of first arrival, none missing


def test_tls_with_server_and_client_certificates_delivers(tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    broker = MosquittoBroker(tmp_path / "broker", tls=tls, require_certificate=True)
    broker.start()
    store = Store(tmp_path / "store", sinks=["upstream"])
    store.append([make_event(i) for i in range(3)])
    cfg = sink_config(broker.port, tls=True, ca_file=str(tls.ca), certfile=str(tls.client_cert),
                      keyfile=str(tls.client_key))

    async def go() -> None:
        async with running(MqttSink(cfg, store)) as sink:
            await until(lambda: sink.stats.delivered == 3, 15, "delivery over TLS")
            assert store.backlog("upstream") == 0 and sink.link.connects == 1

    try:
        asyncio.run(go())
    finally:
        broker.stop()


def test_a_wrong_ca_or_a_missing_client_certificate_is_a_clear_error_retried_never_a_crash(tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    other = make_tls_files(tmp_path / "other")
    broker = MosquittoBroker(tmp_path / "broker", tls=tls, require_certificate=True)
    broker.start()
    store = Store(tmp_path / "store", sinks=["wrong-ca", "no-cert"])
    store.append([make_event(1)])
    wrong_ca = MqttSink(sink_config(broker.port, name="wrong-ca", tls=True, ca_file=str(other.ca),
                                    certfile=str(tls.client_cert), keyfile=str(tls.client_key)), store)
    no_cert = MqttSink(sink_config(broker.port, name="no-cert", tls=True, ca_file=str(tls.ca)), store)

    async def go() -> None:
        async with running(wrong_ca), running(no_cert):
            await until(lambda: wrong_ca.link.last_error and no_cert.link.last_error
                        and wrong_ca.link.state == "retrying" and no_cert.link.state == "retrying",
                        15, "both links to report their TLS error")
            await until(lambda: wrong_ca.stats.last_error and no_cert.stats.last_error, 5, "sink stats")
            failures = wrong_ca.link.connects + no_cert.link.connects
            assert failures == 0
            assert "certificate is not trusted" in wrong_ca.stats.last_error
            assert "SSL reason CERTIFICATE_VERIFY_FAILED" in wrong_ca.stats.last_error
            assert "CERTIFICATE_REQUIRED" in no_cert.stats.last_error, no_cert.stats.last_error
            assert wrong_ca.stats.state in ("disconnected", "connecting")
            assert store.backlog("wrong-ca") == 1 and store.backlog("no-cert") == 1

    try:
        asyncio.run(go())
    finally:
        broker.stop()


def test_refused_credentials_are_reported_with_the_brokers_reason(tmp_path):
    broker = MosquittoBroker(tmp_path / "broker", users={"line": "right-pass"})
    broker.start()
    store = Store(tmp_path / "store", sinks=["upstream"])
    store.append([make_event(1)])

    async def go() -> None:
        bad = MqttSink(sink_config(broker.port, username="line", password="wrong"), store)
        async with running(bad):
            await until(lambda: bad.stats.last_error, 10, "an error")
            assert "refused" in bad.stats.last_error and "authori" in bad.stats.last_error.lower()
        good = MqttSink(sink_config(broker.port, username="line", password="right-pass"), store)
        async with running(good):
            await until(lambda: store.backlog("upstream") == 0, 10, "delivery with the right password")

    try:
        asyncio.run(go())
    finally:
        broker.stop()


# -- configuration ----------------------------------------------------------------------------

BASE = """
[gateway]
id = "gw1"
site = "plant-a"
"""


def parse(text: str) -> config_mod.Config:
    return config_mod.parse(BASE + text, source="t.toml")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value.problems


def test_mqtt_sink_defaults_are_safe_and_topics_follow_site_and_gateway():
    cfg = parse('[sinks.up]\ntype = "mqtt"\nurl = "mqtt://broker.local"\n'
                '[heartbeat]\nsink = "up"\n')
    up = cfg.sinks["up"]
    assert isinstance(up, MqttSinkConfig)
    assert (up.host, up.port, up.tls, up.qos, up.telemetry) == ("broker.local", 1883, False, 1, False)
    assert up.topic_prefix == "linebridge/plant-a/gw1" and up.client_id == "linebridge-gw1-up"
    assert "production" in up.kinds and "status" not in up.kinds and up.classes == {"business"}
    assert cfg.heartbeat.sink == "up" and cfg.heartbeat.interval == 10.0
    secure = parse('[sinks.up]\ntype = "mqtt"\nurl = "mqtts://broker.local"\ntelemetry = true\n').sinks["up"]
    assert secure.port == 8883 and secure.tls and secure.ca_file is None and secure.classes == {
        "business", "telemetry"}


def test_each_tls_misconfiguration_is_named_with_its_key_path(tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    other = make_tls_files(tmp_path / "other")
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("hello")
    found = problems(f"""
[files]                  # the TLS files of this test live under its own directory
tls = ["{tmp_path}"]

[sinks.a]
type = "mqtt"
url = "mqtts://127.0.0.1:8883"
ca_file = "{tmp_path}/missing-ca.pem"
certfile = "{tls.client_cert}"

[sinks.b]
type = "mqtt"
url = "mqtts://127.0.0.1"
ca_file = "{not_pem}"
certfile = "{tls.client_cert}"
keyfile = "{other.client_key}"

[sinks.c]
type = "mqtt"
url = "mqtt://127.0.0.1"
ca_file = "{tls.ca}"

[sinks.d]
type = "mqtt"
url = "http://127.0.0.1"
ca_file = "{tmp_path}"
password_env = "LB_TEST_UNSET_VARIABLE"
kinds = ["production", "parts"]

[heartbeat]
sink = "nope"
""")
    expect = [
        f"t.toml: sinks.a.ca_file: no such file '{tmp_path}/missing-ca.pem'",
        "t.toml: sinks.a.keyfile: a client certificate needs both certfile and keyfile",
        f"t.toml: sinks.b.ca_file: '{not_pem}' holds no PEM CA certificate",
        f"t.toml: sinks.b.certfile: '{tls.client_cert}' with keyfile '{other.client_key}': "
        "the key does not belong to the certificate",
        "t.toml: sinks.c.ca_file: TLS files need an mqtts:// url, got 'mqtt://127.0.0.1'",
        "t.toml: sinks.d.url: must be mqtt://host[:port] or mqtts://host[:port], got 'http://127.0.0.1'",
        f"t.toml: sinks.d.ca_file: '{tmp_path}' is not a file",
        "t.toml: sinks.d.password_env: environment variable 'LB_TEST_UNSET_VARIABLE' is not set",
        "t.toml: sinks.d.username: is required when a password is set",
        "t.toml: sinks.d.kinds[1]: unknown event kind 'parts'",
        "t.toml: heartbeat.sink: no MQTT sink 'nope' under [sinks]",
    ]
    for line in expect:
        assert any(p.startswith(line) for p in found), (line, found)
    assert len(found) == len(expect), found


def test_the_supervisor_routes_telemetry_only_to_sinks_that_want_it(tmp_path):
    from gateway.supervisor import Supervisor
    cfg = parse('[sinks.up]\ntype = "mqtt"\nurl = "mqtt://127.0.0.1:1"\ntelemetry = true\n'
                '[sinks.events]\ntype = "mqtt"\nurl = "mqtt://127.0.0.1:1"\n'
                '[heartbeat]\nsink = "up"\ninterval = 1\n')

    async def go() -> None:
        sup = Supervisor(cfg, tmp_path / "state")
        try:
            assert sup.store.sinks == {"up": {"business", "telemetry"}, "events": {"business"}}
            assert sup.heartbeat is not None and sup.links["up"].will is not None
            assert sup.links["events"].will is None
            assert (tmp_path / "state" / "keys" / "device.key").stat().st_mode & 0o777 == 0o600
        finally:
            sup.store.close()

    asyncio.run(go())


def test_the_demo_adds_an_mqtt_sink_and_the_heartbeat_only_when_asked():
    from gateway.demo import demo_config_text
    plain = config_mod.parse(demo_config_text(), source="demo.toml")
    assert plain.heartbeat is None and set(plain.sinks) == {"odoo"}
    cfg = config_mod.parse(demo_config_text("mqtt://127.0.0.1:1883"), source="demo.toml")
    up = cfg.sinks["mqtt"]
    assert isinstance(up, MqttSinkConfig) and (up.host, up.port) == ("127.0.0.1", 1883)
    assert up.topic_prefix == "linebridge/demo/demo-gw" and set(cfg.sinks) == {"odoo", "mqtt"}
    assert cfg.heartbeat == config_mod.HeartbeatConfig("mqtt", 10.0)
