"""Tamper evidence end to end: altered events never leave, a cut journal shows against the heartbeat.

The attacker here holds the disk: they write the LMDB files directly, while the
gateway is stopped. Delivery runs against the real peers (the Odoo sandbox, a
real mosquitto).
"""
from __future__ import annotations

import asyncio
import json
import logging
import struct
import subprocess
import sys
from typing import Any, Callable

import lmdb
import pytest

from gateway import checkpoint
from gateway import config as config_mod
from gateway.config import OdooSinkConfig
from gateway.events import Event, event_id
from gateway.sandbox.odoo import OdooSandbox
from gateway.signing import DeviceKey
from gateway.sinks.mqtt import MqttSink
from gateway.sinks.odoo import OdooClient, OdooSink
from gateway.supervisor import Supervisor
from store import journal
from store.queue import Store, StoreOptions
from tests.drivers.mqtt.broker import Subscriber
from tests.gateway.test_mqtt_sink import PREFIX, make_event, payloads, running, sink_config, until

CLI = [sys.executable, "-m", "gateway.cli"]


def _k(n: int) -> bytes:
    return struct.pack(">Q", n)


def alter_event(path, seq: int, change: Callable[[bytes], bytes], cls: str = "business") -> None:
    """Rewrite one stored event's bytes in place, as someone with the disk would."""
    env = lmdb.open(str(path), max_dbs=16, subdir=True)
    db = env.open_db(f"ev:{cls}".encode())
    with env.begin(write=True) as txn:
        txn.put(_k(seq), change(bytes(txn.get(_k(seq), db=db))), db=db)
    env.close()


def more(field: str, value: Any) -> Callable[[bytes], bytes]:
    def change(raw: bytes) -> bytes:
        ev = json.loads(raw)
        ev["data"][field] = value
        return json.dumps(ev, separators=(",", ":")).encode()
    return change


# -- the Odoo sink ----------------------------------------------------------------------------

@pytest.fixture()
def odoo(tmp_path):
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=tmp_path / "odoo.json", api_key="secret-key")
    sb.start()
    yield sb
    sb.stop()


def _production(total: int, qty: int, key: DeviceKey) -> dict[str, Any]:
    return key.sign(Event(id=event_id("gw", "cnc01/parts", f"0:{total}"), kind="production",
                          ts="2026-11-28T03:00:00.000Z", gateway="gw", source={"device": "cnc01", "tag": "parts"},
                          data={"quantity": qty, "counter": total, "total": total, "reset": False},
                          context={"machine": "CNC-01", "work_center": "CNC-01"}).to_dict())


async def _produced(url: str) -> float:
    client = OdooClient(url, "sandbox", "admin", "secret-key")
    try:
        (wc,) = await client.execute_kw("mrp.workcenter", "search", [[["code", "=", "CNC-01"]]])
        (wo,) = await client.execute_kw("mrp.workorder", "search_read", [[["workcenter_id", "=", wc]]],
                                        {"fields": ["qty_producing"]})
        return float(wo["qty_producing"])
    finally:
        await client.close()


def test_an_event_altered_on_disk_is_dead_lettered_as_tampered_and_never_reaches_odoo(odoo, tmp_path, caplog):
    key = DeviceKey.load_or_create(tmp_path / "state")
    store = Store(tmp_path / "store", sinks=["odoo"])
    store.append([_production(3, 3, key), _production(5, 2, key), _production(9, 4, key)])
    store.close()
    alter_event(tmp_path / "store", 3, more("total", 900))  # 900 parts that were never made
    store = Store(tmp_path / "store", sinks=["odoo"])
    cfg = OdooSinkConfig("odoo", odoo.url, "sandbox", "admin", "secret-key", timeout=5.0)

    async def go() -> tuple[OdooSink, float]:
        sink = OdooSink(cfg, store, verify=key.public)
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        await until(lambda: store.backlog("odoo") == 0 and sink.stats.delivered == 2, 20, "the batch settled")
        stop.set()
        await asyncio.wait_for(task, 10)
        return sink, await _produced(odoo.url)

    with caplog.at_level(logging.ERROR, logger="linebridge.sinks.screen"):
        sink, produced = asyncio.run(go())
    assert produced == 5.0                       # the untouched events went through; 900 never did
    (letter,) = store.dead_letters("odoo")
    assert letter["seq"] == 3 and letter["error"].startswith("tampered: signature does not match")
    assert sink.stats.extra["tampered"] == 1 and sink.stats.dead_lettered == 1
    assert any("event=tampered sink=odoo seq=3" in r.getMessage() for r in caplog.records)
    ops = [(e["op"], [i[1] for i in e["items"]]) for e in store.journal_entries()]
    assert ("dead_letter", [3]) in ops and ("delivered", [1, 2]) in ops


# -- the MQTT sink ----------------------------------------------------------------------------

def test_altered_and_unreadable_events_are_dead_lettered_and_never_published(broker, tmp_path):
    key = DeviceKey.load_or_create(tmp_path / "state")
    store = Store(tmp_path / "store", sinks=["upstream"])
    store.append([make_event(i, key=key) for i in range(1, 7)])
    store.close()
    alter_event(tmp_path / "store", 2, more("quantity", 1000))
    alter_event(tmp_path / "store", 3, lambda raw: raw[:-2] + b"\xff}")          # no longer JSON
    alter_event(tmp_path / "store", 5, lambda raw: json.dumps(
        {k: v for k, v in json.loads(raw).items() if k != "sig"}).encode())      # signature stripped
    store = Store(tmp_path / "store", sinks=["upstream"])

    async def go() -> tuple[MqttSink, list[dict[str, Any]]]:
        with Subscriber(broker.port, f"{PREFIX}/#") as sub:
            async with running(MqttSink(sink_config(broker.port), store, verify=key.public)) as sink:
                await until(lambda: store.backlog("upstream") == 0, 15, "the backlog drained")
                await until(lambda: len(sub.messages) >= 3, 5, "three messages")
                store.replay("upstream", who="test")   # sent back: checked again, still tampered
                sink.wake.set()
                await until(lambda: all(d["attempts"] == 2 for d in store.dead_letters("upstream")), 10,
                            "the replays dead-lettered again")
                await asyncio.sleep(0.3)               # anything wrongly published would arrive by now
            return sink, payloads(sub)

    sink, got = asyncio.run(go())
    assert [m["seq"] for m in got] == [1, 4, 6]
    letters = {d["seq"]: d for d in store.dead_letters("upstream")}
    assert sorted(letters) == [2, 3, 5]
    assert all(d["error"].startswith("tampered: ") for d in letters.values())
    assert "no sig field" in letters[5]["error"] and "unreadable" in json.dumps(letters[3]["event"])
    assert sink.stats.extra["tampered"] == 6 and sink.stats.extra["published"] == 3


# -- the journal against the heartbeat's checkpoint -------------------------------------------

def _config(port: int) -> config_mod.Config:
    return config_mod.parse(f"""
[gateway]
id = "gw-tamper"
site = "line-3"

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:{port}"
batch_size = 1            # one journal entry per event

[heartbeat]
sink = "up"
interval = 0.3
""")


def _verify(state, *more_args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "journal", "verify", "--state-dir", str(state), *more_args],
                          capture_output=True, text=True, timeout=120)


def test_a_journal_cut_by_someone_holding_the_keys_shows_against_the_heartbeats_checkpoint(broker, tmp_path):
    state = tmp_path / "state"
    status_topic = "linebridge/line-3/gw-tamper/status"

    async def go() -> dict[str, Any]:
        sup = Supervisor(_config(broker.port), state)
        for i in range(12):
            sup.store.append([sup.key.sign(make_event(i))])
        tampered = sup.key.sign(make_event(99))
        tampered["data"]["quantity"] = 7          # changed after signing: the supervisor's sink refuses it
        sup.store.append([tampered])
        runner = asyncio.create_task(sup.run())
        with Subscriber(broker.port, status_topic) as sub:
            await until(lambda: sup.store.backlog("up") == 0, 15, "the sink drained")
            n = sup.store.journal_head()["n"]
            status = await until(lambda: next((s for s in reversed(payloads(sub))
                                               if s.get("journal", {}).get("n") == n
                                               and s.get("tampered") == {"up": 1}), None), 10,
                                 "a status with the final checkpoint")
        assert sup.sinks["up"].stats.extra["tampered"] == 1
        sup.stop()
        await asyncio.wait_for(runner, 15)
        return status

    status = asyncio.run(go())
    cp = status["journal"]
    assert cp["schema"] == checkpoint.SCHEMA and cp["sig"]["kid"] == status["key"]["kid"]
    assert status["tampered"] == {"up": 1} and status["dead_letters"] == {"up": 1}
    (tmp_path / "status.json").write_text(json.dumps(status))
    ok = _verify(state, "--checkpoint", str(tmp_path / "status.json"))
    assert ok.returncode == 0, ok.stderr
    assert "keyed (MACs checked)" in ok.stdout and "matches" in ok.stdout

    # The disk holder has the device key, so they can cut the journal and re-seal its head ...
    key = DeviceKey.load(state)
    store = Store(state / "store", sinks=["up"], options=StoreOptions(journal_key=key.journal_key()))
    keep = cp["n"] - 3
    with store.env.begin(write=True) as txn:
        db, meta = store._db["journal"], store._db["meta"]
        for n in range(keep + 1, cp["n"] + 1):
            txn.delete(_k(n), db=db)
        txn.put(b"journal_head", journal._mark("head", keep, journal.entry_link(txn, db, meta, keep),
                                               key.journal_key()), db=meta)
    store.close()
    local = _verify(state)
    assert local.returncode == 0          # ... which no local check can see
    cut = _verify(state, "--checkpoint", json.dumps(cp))
    assert cut.returncode == 1 and f"TRUNCATED: the journal ends at entry {keep}" in cut.stderr
    assert f"saw {cp['n']} entries" in cut.stderr

    # ... or rewrite an old entry and recompute every MAC after it: the link at the checkpoint changes
    store = Store(state / "store", sinks=["up"], options=StoreOptions(journal_key=key.journal_key()))
    with store.env.begin(write=True) as txn:
        db, meta = store._db["journal"], store._db["meta"]
        entries = [json.loads(v) for _, v in txn.cursor(db=db)]
        for e in entries:
            txn.delete(_k(e["n"]), db=db)
        txn.put(b"journal_head", json.dumps({"n": 0, "hash": journal.GENESIS}).encode(), db=meta)
        entries[0]["items"][0][2] = "forged"
        journal.append(txn, db, meta, [{k: v for k, v in e.items() if k not in ("n", "prev", "mac")}
                                       for e in entries] + [dict(entries[-1], items=[])] * 3, key.journal_key())
    store.close()
    assert _verify(state).returncode == 0
    rewritten = _verify(state, "--checkpoint", json.dumps(cp))
    assert rewritten.returncode == 1 and f"REWRITTEN: entry {cp['n']}" in rewritten.stderr

    forged = dict(cp, n=1)                                      # a checkpoint not signed by the gateway
    bad = _verify(state, "--checkpoint", json.dumps(forged))
    assert bad.returncode == 1 and "checkpoint signature" in bad.stderr


def test_a_held_event_altered_while_it_waits_for_its_work_order_is_dead_lettered_not_posted(tmp_path):
    from tests.gateway.test_pending import CNC2, _cfg, _ev, _new_workcenter, _qty, _release_order
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=tmp_path / "odoo.json", api_key="k")
    sb.start()
    try:
        key = DeviceKey.load_or_create(tmp_path / "state")
        wc = _new_workcenter(sb.url)
        store = Store(tmp_path / "s", sinks=["odoo"])
        store.append([key.sign(_ev("a", 3, CNC2)), key.sign(_ev("b", 4, CNC2))])

        async def one_pass() -> OdooSink:
            sink = OdooSink(_cfg(sb.url), store, clock=lambda: 1000.0, verify=key.public)
            try:
                while batch := await asyncio.to_thread(sink.screen.read, store, 100):
                    await sink.deliver(batch)
                await sink.release_held()
            finally:
                await sink.raw_client.close()
            return sink

        asyncio.run(one_pass())
        assert [h.stored.seq for h in store.held("odoo")] == [1, 2]
        store.close()
        env = lmdb.open(str(tmp_path / "s"), max_dbs=16, subdir=True)   # the held copy, changed on disk
        db = env.open_db(b"held")
        with env.begin(write=True) as txn:
            k = b"odoo\0" + _k(2)
            row = json.loads(txn.get(k, db=db))
            row["event"]["data"]["quantity"] = 400
            txn.put(k, json.dumps(row).encode(), db=db)
        env.close()
        store = Store(tmp_path / "s", sinks=["odoo"])
        wo = _release_order(sb.url, wc)
        sink = asyncio.run(one_pass())
        assert _qty(sb.url, wo) == 3.0 and store.held("odoo") == []
        (letter,) = store.dead_letters("odoo")
        assert letter["seq"] == 2 and letter["error"].startswith("tampered: ")
        assert sink.stats.extra["tampered"] == 1
    finally:
        sb.stop()
