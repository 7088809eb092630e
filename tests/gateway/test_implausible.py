"""Untrusted machine data does not become parts: the gateway with a real broker, real CSV files and
the Odoo sandbox.

Found by attack and reproduced: `-5` after `130` over MQTT put 4,294,967,161 parts into Odoo (the
counter masked -5 to 32 bits), and `99999999999999999999999` in a CSV cell put 4,135,583,703. Now a
reading no counter can show is held as an `implausible` dead letter naming the raw value and where
it came from, the next good reading counts from the last trusted one, and a jump above the default
cap waits for a person like any suspect jump.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gateway import config as config_mod
from tests.drivers.mqtt.broker import Publisher
from tests.gateway.test_live_apply import KEY, gateway, odoo, odoo_qty, run, until_async  # noqa: F401

SINK = f"""
[machines.CNC-01]
work_center = "CNC-01"
equipment = "CNC-01"

[sinks.odoo]
type = "odoo"
url = "{{url}}"
database = "sandbox"
login = "admin"
api_key = "{KEY}"
timeout = 5.0
retry_cap = 2.0
"""


def mqtt_config(odoo_url: str, port: int) -> config_mod.Config:
    text = f"""
[gateway]
id = "gw-untrusted"
site = "test"

[devices.cnc01]
type = "mqtt"
host = "127.0.0.1"
port = {port}
client_id = "lb-untrusted"
machine = "CNC-01"

[devices.cnc01.topics.state]
topic = "plant/cnc01/state"

[devices.cnc01.topics.state.fields]
parts = {{ path = "parts", type = "int" }}

[rules.parts]
type = "counter"
device = "cnc01"
tag = "parts"
initial = "zero"
""" + SINK.format(url=odoo_url)
    return config_mod.parse(text, source="test.toml")


def csv_config(odoo_url: str, drop: Path) -> config_mod.Config:
    text = f"""
[gateway]
id = "gw-untrusted"
site = "test"

[files]                   # the drop folder lives where the installation allows drops
drops = ["{drop.parent}"]

[devices.press]
type = "filedrop"
directory = "{drop}"
stable_seconds = 0.2
poll_interval = 0.05
timestamp_column = "time"
machine = "CNC-01"

[devices.press.columns]
parts = "parts"

[devices.press.types]
parts = "int"

[rules.parts]
type = "counter"
device = "press"
tag = "parts"
initial = "zero"
""" + SINK.format(url=odoo_url)
    return config_mod.parse(text, source="test.toml")


def letters(sup, kind: str | None = None) -> list[dict]:
    return sup.store.dead_letters("odoo", kind=kind)


def test_a_negative_counter_reading_over_mqtt_is_held_not_counted_and_a_replay_accepts_it(odoo, broker,
                                                                                          tmp_path):
    async def go() -> None:
        async with gateway(mqtt_config(odoo.url, broker.port), tmp_path / "state") as sup:
            base = await odoo_qty(odoo.url)
            with Publisher(broker.port) as pub:
                await until_async(lambda: _connected(sup), 10, "the MQTT device to subscribe")
                for value in (130, -5, 140):
                    await asyncio.to_thread(pub.publish, "plant/cnc01/state", json.dumps({"parts": value}))
                    await asyncio.sleep(0.3)   # one message after the other, in order
                await until_async(lambda: _qty_is(odoo.url, base + 140), 30, "140 parts in Odoo")
                (letter,) = await until_async(lambda: _async(letters(sup, "implausible")), 20,
                                              "the implausible dead letter")
            error = letter["error"]
            assert "implausible reading held for a person" in error and "raw -5" in error, error
            assert "device cnc01 tag parts" in error and "topic plant/cnc01/state field parts" in error
            assert sup.status()["implausible"] == 1
            sup.store.replay("odoo", kind="implausible", who="tester")   # a person accepts it
            await until_async(lambda: _async(not letters(sup)), 20, "the replay to be acknowledged")
            await asyncio.sleep(0.5)
            assert await odoo_qty(odoo.url) == base + 140     # accepting it posts no phantom parts
    run(go())


def test_a_23_digit_csv_cell_quarantines_the_file_and_a_cell_beyond_32_bits_is_held(odoo, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()

    async def go() -> None:
        async with gateway(csv_config(odoo.url, drop), tmp_path / "state") as sup:
            base = await odoo_qty(odoo.url)
            (drop / "a.csv").write_text("time,parts\n2026-11-23T07:00:00Z,100\n"
                                        "2026-11-23T07:00:10Z,99999999999999999999999\n")
            await until_async(lambda: _async((drop / "quarantine").is_dir()
                                             and any((drop / "quarantine").iterdir())), 20,
                              "the file with a 23-digit count in quarantine")
            (drop / "b.csv").write_text("time,parts\n2026-11-23T07:01:00Z,100\n"
                                        "2026-11-23T07:01:10Z,5000000000\n2026-11-23T07:01:20Z,110\n")
            await until_async(lambda: _qty_is(odoo.url, base + 110), 30, "110 parts in Odoo")
            (letter,) = await until_async(lambda: _async(letters(sup, "implausible")), 20,
                                          "the implausible dead letter")
            assert "raw 5000000000" in letter["error"] and "file b.csv row 3 column 'parts'" in letter["error"]
            assert "32-bit counter counts 0..4294967295" in letter["error"]
            await asyncio.sleep(0.5)
            assert await odoo_qty(odoo.url) == base + 110
    run(go())


def test_a_jump_above_the_default_cap_waits_for_a_person(odoo, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()

    async def go() -> None:
        async with gateway(csv_config(odoo.url, drop), tmp_path / "state") as sup:
            base = await odoo_qty(odoo.url)
            # 4,000,000,000 parts in ten seconds: a PLC preset, not a machine
            (drop / "c.csv").write_text("time,parts\n2026-11-23T07:00:00Z,10\n"
                                        "2026-11-23T07:00:10Z,4000000010\n2026-11-23T07:00:20Z,4000000015\n")
            (letter,) = await until_async(lambda: _async(letters(sup, "production")), 30,
                                          "the suspect jump as a dead letter")
            await until_async(lambda: _qty_is(odoo.url, base + 15), 30, "the plausible 15 parts in Odoo")
            assert "exceeds max_rate 1000/s" in letter["error"]
            assert letter["event"]["data"]["quantity"] == 4_000_000_000
    run(go())


async def _async(value):
    return value


async def _qty_is(url: str, qty: float) -> bool:
    return await odoo_qty(url) == qty


async def _connected(sup) -> bool:
    return bool(sup.drivers.get("cnc01") and sup.drivers["cnc01"].health.connected)


def test_a_device_repeating_garbage_is_counted_every_time_and_stored_once_a_minute(odoo, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    rows = "".join(f"2026-11-23T07:00:{s:02d}Z,-5\n" for s in range(0, 50, 10))   # five refusals in 40 s
    rows += "2026-11-23T07:02:00Z,-5\n2026-11-23T07:02:10Z,7\n"                   # one more, two minutes on

    async def go() -> None:
        async with gateway(csv_config(odoo.url, drop), tmp_path / "state") as sup:
            base = await odoo_qty(odoo.url)
            (drop / "g.csv").write_text("time,parts\n" + rows)
            await until_async(lambda: _qty_is(odoo.url, base + 7), 30, "the 7 good parts in Odoo")
            found = await until_async(lambda: _async(len(letters(sup, "implausible")) == 2 and
                                                     letters(sup, "implausible")), 20, "two implausible letters")
            assert sorted(letter["event"]["data"]["origin"] for letter in found) == [
                "file g.csv row 2 column 'parts'", "file g.csv row 7 column 'parts'"]
            assert sup.status()["implausible"] == 6
    run(go())
