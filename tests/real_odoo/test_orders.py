"""Orders and people against each Odoo: auto-finish, a dead letter replayed after the master data is fixed,
the XML-RPC wire, and OCA quality inspections (17.0, where quality_control_oca is built).
"""
from __future__ import annotations

import time

import pytest

from tests.helpers import wait_for
from tests.real_odoo.harness import OdooDb
from tests.real_odoo.masterdata import MACHINE, QC_CHARACTERISTIC, QC_TEST, external_ids, prepare
from tests.real_odoo.test_line import EXTRA_RULES


def _problems(odoo: OdooDb, problems: list[str]) -> None:
    assert not problems, f"Odoo {odoo.version}:\n- " + "\n- ".join(problems)


def test_auto_finish_closes_the_order_at_its_quantity(odoo: OdooDb, line_factory) -> None:
    plant = prepare(odoo, order_qty=15)
    rpc = odoo.rpc()
    if odoo.sandbox:  # the sandbox's demo order is for a million parts
        rpc("mrp.production", "write", [plant.production], {"product_qty": 15})
    line = line_factory(odoo, auto_finish=True, pending_timeout=600.0)
    line.start_plant(duration=12)
    line.start_gateway()
    wait_for(lambda: rpc("mrp.production", "read", [plant.production], fields=["state"])[0]["state"] == "done",
             90, f"the order to be done (gateway log: {line.log()[-1500:]})")
    (mo,) = rpc("mrp.production", "read", [plant.production], fields=["qty_producing", "qty_produced", "state"])
    wos = rpc("mrp.workorder", "read", list(plant.workorders), fields=["state", "qty_produced"])
    problems = []
    if mo["qty_produced"] < 15:  # the parts of the last write before the finish may go past the quantity
        problems.append(f"the done order produced {mo['qty_produced']}, less than its 15")
    if any(w["state"] != "done" for w in wos):
        problems.append(f"work orders not done: {wos}")
    dead = line.dead_letters()
    if dead:
        problems.append(f"{len(dead)} dead letters: " + "; ".join(str(d.get("error", d))[:200] for d in dead[:5]))
    assert line.stop_gateway() == 0
    _problems(odoo, problems)


def test_a_dead_letter_replayed_after_the_fix_lands_once(odoo: OdooDb, line_factory) -> None:
    plant = prepare(odoo)
    rpc = odoo.rpc()
    rpc("maintenance.equipment", "write", [plant.equipment], {"serial_no": "CNC-01-OLD"})  # a typo in Odoo
    line = line_factory(odoo)
    line.start_plant(duration=14, seed=3)
    line.start_gateway()
    truth = line.final_truth(60)
    line.drained(120)
    assert truth["alarms"] > 0, "the plant made no alarm; pick another seed"
    dead = wait_for(lambda: [d for d in line.dead_letters() if d["event"]["kind"] in ("alarm", "maintenance_due")], 30,
                    "the alarms to be dead letters (no equipment CNC-01)")
    rpc("maintenance.equipment", "write", [plant.equipment], {"serial_no": MACHINE})  # the fix
    out = line.cli("queue", "dlq", "replay", "--state-dir", str(line.state), "--kind", "alarm", "--by", "test", "odoo")
    assert out.returncode == 0, out.stdout + out.stderr
    line.drained(60)
    wait_for(lambda: not [d for d in line.dead_letters() if d["event"]["kind"] == "alarm"], 30,
             "no alarm left in the dead letters after the replay")
    requests = rpc("maintenance.request", "search_read", [["equipment_id", "=", plant.equipment]], fields=["name"])
    xids = external_ids(rpc, "maintenance.request")
    problems = []
    if not requests:
        problems.append(f"no maintenance request after replaying {len(dead)} dead letters")
    if len({r["name"] for r in requests}) != len(requests):
        problems.append(f"a request twice: {[r['name'] for r in requests]}")
    if any(len(xids.get(r["id"], [])) != 1 for r in requests):
        problems.append(f"requests without exactly one external id: {requests} {xids}")
    assert line.stop_gateway() == 0
    _problems(odoo, problems)


@pytest.mark.real_odoo_only
@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_the_older_wires_deliver_exactly(odoo: OdooDb, line_factory, protocol: str) -> None:
    """16-18 speak JSON-RPC and XML-RPC; 19 still serves both, deprecated."""
    plant = prepare(odoo)
    rpc = odoo.rpc()
    line = line_factory(odoo, protocol=protocol)
    check = line.odoo_check()
    line.start_plant(duration=10, seed=11)
    line.start_gateway()
    truth = line.final_truth(60)
    line.drained(120)

    def count() -> float:
        return sum(w["qty_producing"] for w in rpc("mrp.workorder", "read", list(plant.workorders),
                                                   fields=["qty_producing"]))
    try:  # the count is written at most once per count_interval (5 s) per work order
        wait_for(lambda: count() == truth["parts"], 15, "the count")
    except AssertionError:
        pass
    qty = count()
    logs = rpc("mrp.workcenter.productivity", "search_count",
               [["workcenter_id", "=", plant.workcenter], ["loss_type", "!=", "productive"]])
    problems = []
    if check.returncode != 0:
        problems.append(f"odoo check over {protocol}: {check.stdout}{check.stderr}")
    if qty != truth["parts"]:
        problems.append(f"{protocol}: qty_producing {qty} != the plant's {truth['parts']}")
    if logs != truth["alarms"]:
        problems.append(f"{protocol}: {logs} downtime logs != the plant's {truth['alarms']} alarms")
    assert line.stop_gateway() == 0
    _problems(odoo, problems)


@pytest.mark.real_odoo_quality
def test_quality_results_become_concluded_oca_inspections(odoo_qc: OdooDb, line_factory) -> None:
    odoo = odoo_qc
    prepare(odoo, quality=True)
    rpc = odoo.rpc()
    line = line_factory(odoo, extra=EXTRA_RULES.split("[rules.cnc01_hopper]")[0], quality_test=QC_TEST)
    check = line.odoo_check()
    line.start_plant(duration=10, seed=5)
    line.start_gateway()
    line.final_truth(60)
    line.drained(120)
    inspections = rpc("qc.inspection", "search_read", [], fields=["state", "inspection_lines"])
    lines = rpc("qc.inspection.line", "search_read", [], fields=["inspection_id", "name", "quantitative_value"])
    xids = external_ids(rpc, "qc.inspection")
    problems = []
    if check.returncode != 0:
        problems.append(f"odoo check: {check.stdout}{check.stderr}")
    if not inspections:
        problems.append("no inspection")
    for i in inspections:
        own = [ln for ln in lines if ln["inspection_id"][0] == i["id"]]
        expected = "success" if own and own[0]["quantitative_value"] <= 5 else "failed"
        if len(own) != 1 or own[0]["name"] != QC_CHARACTERISTIC or i["state"] != expected:
            problems.append(f"inspection {i} with lines {own}: expected one {QC_CHARACTERISTIC!r} line, {expected}")
        if len(xids.get(i["id"], [])) != 1:
            problems.append(f"inspection {i['id']} external ids {xids.get(i['id'])}")
    dead = line.dead_letters()
    if dead:
        problems.append(f"{len(dead)} dead letters: " + "; ".join(str(d.get("error", d))[:200] for d in dead[:5]))
    assert line.stop_gateway() == 0
    _problems(odoo, problems)
