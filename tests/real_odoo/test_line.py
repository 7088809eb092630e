"""The demo plant's line against each Odoo: every event kind lands once, with its external id, across a kill -9.

The gateway runs as its own process with the demo configuration and extra
rules on the plant's tags, so that one run makes every event kind: parts
(production), scrap, alarms (maintenance requests, downtimes), the running
bit's rises (`workorder_start`), the scrap counter as a measured
characteristic (`quality_result`, limits 0..5) and the alarm word as a
hopper's weight (each cleared alarm "consumes" its code in Coolant, a
manual-consumption component: `consumption`). The gateway is killed with SIGKILL once while parts are
made and started again. Odoo's records are then compared with the plant's
ground truth. Every finding is collected before the test fails, so one report
names all that is wrong on a version.
"""
from __future__ import annotations

import time

import pytest

from tests.helpers import wait_for
from tests.real_odoo.harness import OdooDb
from tests.real_odoo.masterdata import COMPONENTS, MANUAL, QC_CHARACTERISTIC, external_ids, prepare

EXTRA_RULES = f"""
[rules.cnc01_running]
type = "machine_state"
device = "cnc01"
tag = "running"

[rules.cnc01_quality]
type = "threshold"
device = "cnc01"
tag = "scrap"
emit = "quality_result"
characteristic = "{QC_CHARACTERISTIC}"
unit = "Units"
low = 0.0
high = 5.0
on_change = true

[rules.cnc01_hopper]
type = "weight"
device = "cnc01"
tag = "alarm"
mode = "consumption"
material = "COOLANT"
unit = "Units"
"""


def _unique_external_ids(rpc, model: str, ids: list[int], problems: list[str]) -> None:
    xids = external_ids(rpc, model)
    for rid in ids:
        names = xids.get(rid, [])
        if len(names) != 1:
            problems.append(f"{model} {rid} has {len(names)} linebridge external ids ({names})")
    linked = [rid for rid in xids if rid in ids]
    if len(linked) != len(set(linked)):
        problems.append(f"{model}: an external id names two records")


@pytest.mark.real_odoo_smoke
def test_every_event_kind_lands_once_across_a_kill_9(odoo: OdooDb, line_factory) -> None:
    plant = prepare(odoo)
    line = line_factory(odoo, extra=EXTRA_RULES)
    rpc = odoo.rpc()
    check = line.odoo_check()
    problems: list[str] = []
    if check.returncode != 0 or "ready: no blockers" not in check.stdout:
        problems.append(f"odoo check is not clean: {check.stdout}{check.stderr}")

    def qty() -> float:
        return sum(w["qty_producing"] for w in rpc("mrp.workorder", "read", list(plant.workorders),
                                                   fields=["qty_producing"]))

    line.start_plant(duration=16)
    line.start_gateway()
    wait_for(lambda: qty() > 0, 60, f"the first parts in Odoo {odoo.version} (log: {line.log()[-2000:]})")
    time.sleep(1.5)
    line.kill_gateway()
    line.start_gateway()
    truth = line.final_truth(60)
    line.drained(120)

    try:  # the count is written at most once per count_interval (5 s) per work order
        wait_for(lambda: qty() == truth["parts"], 15, "the count")
    except AssertionError:
        problems.append(f"qty_producing {qty()} != the plant's {truth['parts']} parts")
    scraps = rpc("stock.scrap", "search_read", [["production_id", "=", plant.production]],
                 fields=["scrap_qty", "state", "product_id"])
    # scrap_mode components: a bad part scraps its share of each open component of the order
    for code, per in [(c[1], c[2]) for c in COMPONENTS] + [(MANUAL[1], MANUAL[2])]:
        scrapped = sum(s["scrap_qty"] for s in scraps
                       if s["state"] == "done" and s["product_id"][0] == plant.components[code])
        if scrapped != truth["scrap"] * per:
            problems.append(f"{scrapped} {code} scrapped (done) != the plant's {truth['scrap']} x {per} "
                            f"({len(scraps)} scrap orders, states {sorted({s['state'] for s in scraps})})")
    finished = rpc("product.product", "read", [plant.product], fields=["qty_available"])[0]["qty_available"]
    if finished < 0:
        problems.append(f"the finished product's stock went negative ({finished})")
    _unique_external_ids(rpc, "stock.scrap", [s["id"] for s in scraps], problems)

    logs = rpc("mrp.workcenter.productivity", "search_read",
               [["workcenter_id", "=", plant.workcenter], ["loss_type", "!=", "productive"]],
               fields=["date_start", "date_end", "loss_id"])
    if len(logs) != truth["alarms"] or not all(r["date_end"] for r in logs):
        problems.append(f"{len(logs)} downtime logs ({sum(1 for r in logs if not r['date_end'])} open) != "
                        f"the plant's {truth['alarms']} alarms")
    _unique_external_ids(rpc, "mrp.workcenter.productivity", [r["id"] for r in logs], problems)

    requests = rpc("maintenance.request", "search_read", [["equipment_id", "=", plant.equipment]],
                   fields=["name", "maintenance_type"])
    titles = [r["name"] for r in requests]
    if truth["alarms"] and not requests:
        problems.append("no maintenance request for the plant's alarms")
    if len(titles) != len(set(titles)):
        problems.append(f"two open maintenance requests for one alarm code: {titles}")
    _unique_external_ids(rpc, "maintenance.request", [r["id"] for r in requests], problems)

    moves = rpc("stock.move", "search_read", [["raw_material_production_id", "=", plant.production],
                                              ["product_id", "=", plant.components["COOLANT"]],
                                              # a scrap of coolant is no consumption (19 has no `scrapped`)
                                              ["scrap_id", "=", False] if odoo.major >= 19 else ["scrapped", "=", False]],
                fields=["quantity_done" if odoo.major == 16 else "quantity"])
    consumed = sum(m.get("quantity_done", m.get("quantity", 0)) for m in moves)
    if not 101 * truth["alarms"] <= consumed <= 105 * truth["alarms"]:
        problems.append(f"Coolant consumed {consumed}, not the codes of the plant's {truth['alarms']} alarms")

    wos = rpc("mrp.workorder", "read", list(plant.workorders), fields=["state", "date_start"])
    if any(w["state"] == "done" for w in wos):
        problems.append(f"a work order was finished, but nothing asked for it: {wos}")
    if not any(w["date_start"] for w in wos):
        problems.append(f"no work order was started: {wos}")

    notes = rpc("mail.message", "search_count", [["model", "=", "mrp.production"], ["res_id", "=", plant.production],
                                                 ["body", "ilike", "Linebridge event"]])
    if not notes:
        problems.append("no quality note on the manufacturing order")

    dead = line.dead_letters()
    if dead:
        problems.append(f"{len(dead)} dead letters: "
                        + "; ".join(str(d.get('error', d))[:200] for d in dead[:5]))
    assert line.stop_gateway() == 0
    assert not problems, f"Odoo {odoo.version}:\n- " + "\n- ".join(problems)


FINISH_RULES = """
[rules.cnc01_running]
type = "machine_state"
device = "cnc01"
tag = "running"

[rules.cnc01_done]
type = "machine_state"
device = "cnc01"
tag = "running"
on = 0
debounce = 8.0
emit = "finish"
"""


@pytest.mark.real_odoo_smoke
def test_the_work_order_starts_with_the_machine_and_finishes_after_its_counts(odoo: OdooDb, line_factory) -> None:
    """`workorder_start` on the running bit's rise, `workorder_finish` once it has been 0 for 8 s (the plant
    stopped: its alarms last at most 4 s): the order is done with the plant's parts on it."""
    plant = prepare(odoo)
    rpc = odoo.rpc()
    line = line_factory(odoo, extra=FINISH_RULES)
    line.start_plant(duration=10, seed=13)
    line.start_gateway()
    truth = line.final_truth(60)

    def finished():
        return [w for w in rpc("mrp.workorder", "read", list(plant.workorders), fields=["state", "qty_producing",
                                                                                       "qty_produced"])
                if w["state"] == "done"]

    done = wait_for(finished, 60, f"the work order to be finished (log: {line.log()[-1500:]})")
    line.drained(60)
    problems = []
    counted = done[0]["qty_produced"] or done[0]["qty_producing"]
    if counted != truth["parts"]:
        problems.append(f"the finished work order has {done[0]}, the plant made {truth['parts']}")
    logs = rpc("mrp.workcenter.productivity", "search_read", [["workcenter_id", "=", plant.workcenter]],
               fields=["date_end", "loss_type"])
    if any(not r["date_end"] for r in logs):
        problems.append(f"time logs left open after the finish: {logs}")
    assert line.stop_gateway() == 0
    assert not problems, f"Odoo {odoo.version}:\n- " + "\n- ".join(problems)
