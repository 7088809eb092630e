"""ZPL labels to a raw TCP 9100 printer: the right fields and barcodes, each label once, in order, across an outage."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.config import parse
from gateway.sinks.labels.sink import LabelSink
from store.queue import Store
from tests.labels.conftest import finished, production
from tests.labels.peers import ZplCapture, zpl_labels

TEMPLATES = """
[sinks.zebra.templates.carton]
width_mm = 100
height_mm = 60
fields = [
  {type = "text", data = "{product}  lot {lot}", x_mm = 4, y_mm = 3, size_mm = 4},
  {type = "text", data = "WO {work_order}  qty {quantity}  {date}", x_mm = 4, y_mm = 9},
  {type = "gs1_128", data = "(240){product}(10){lot}(30){quantity}", x_mm = 4, y_mm = 15, size_mm = 12},
  {type = "datamatrix", data = "{product}|{lot}|{quantity}|{label_no}", x_mm = 4, y_mm = 35, size_mm = 0.6},
  {type = "qr", data = "https://erp.example/wo/{work_order}?lot={lot}", x_mm = 60, y_mm = 35, size_mm = 0.5},
]
[sinks.zebra.templates.done]
width_mm = 50
height_mm = 30
fields = [{type = "code128", data = "DONE {work_order}", x_mm = 2, y_mm = 2, size_mm = 8}]
"""


def label_config(printer: str, extra: str = "", retry_cap: float = 0.2) -> str:
    return f"""
[gateway]
id = "gw1"
[sinks.zebra]
type = "labels"
printer = "{printer}"
timeout = 2
retry_cap = {retry_cap}
{extra}
[[sinks.zebra.labels]]
on = "production"
every = 5
template = "carton"
[[sinks.zebra.labels]]
on = "workorder_finish"
template = "done"
""" + TEMPLATES


def make_sink(tmp_path: Path, printer: str, **kw) -> tuple[LabelSink, Store]:
    cfg = parse(label_config(printer, **kw))
    store = Store(tmp_path / "store", sinks={"zebra": ["business"]})
    return LabelSink(cfg.sinks["zebra"], store), store


async def run_until(sink: LabelSink, condition, timeout: float = 20.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while not condition():
            if task.done():
                task.result()
            assert time.monotonic() < deadline, "timed out waiting for the labels"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def test_every_n_good_parts_prints_a_zpl_label_with_its_fields_and_barcodes(tmp_path, zebra):
    sink, store = make_sink(tmp_path, f"zpl://127.0.0.1:{zebra.port}")
    store.append([production(i, qty=3) for i in range(1, 8)] + [finished(100)])   # 21 parts, then done
    asyncio.run(run_until(sink, lambda: len(zebra.labels()) == 5))
    labels = zebra.labels()
    cartons, done = labels[:4], labels[4]
    for label in cartons:
        cmds = {f["command"][:3]: f for f in label["fields"]}
        assert label["fields"][0] == {"command": "^A0N,32,32", "data": "WIDGET-9  lot LOT-7"}
        assert label["fields"][1]["data"].startswith("WO WO/0042  qty 5  2025-12-0")
        assert cmds["^BC"]["command"].endswith(",D")            # GS1-128: UCC/EAN mode, FNC1 by the printer
        assert cmds["^BC"]["data"] == "(240)WIDGET-9(10)LOT-7(30)5"
        assert cmds["^BX"]["command"].startswith("^BXN,") and cmds["^BX"]["command"].endswith(",200")
        assert cmds["^BX"]["data"] == "WIDGET-9|LOT-7|5|1"     # each event of 3 parts completes at most one
        assert cmds["^BQ"]["data"] == "MA,https://erp.example/wo/WO/0042?lot=LOT-7"
    assert done["fields"] == [{"command": "^BCN,64,Y,N,N,N", "data": "DONE WO/0042"}]
    assert "^PW799" in cartons[0]["zpl"] and "^LL480" in cartons[0]["zpl"]   # 100 x 60 mm at 203 dpi
    # 21 parts made 4 labels of 5; the one left over counts towards the next label, kept with the cursor
    assert store.backlog("zebra") == 0
    store.append([production(8, qty=4)])
    asyncio.run(run_until(sink, lambda: len(zebra.labels()) == 6))
    assert zebra.labels()[5]["fields"][1]["data"].startswith("WO WO/0042  qty 5")
    store.close()


def test_field_data_with_zpl_control_characters_is_hex_escaped(tmp_path, zebra):
    sink, store = make_sink(tmp_path, f"zpl://127.0.0.1:{zebra.port}")
    store.append([production(i, qty=5, lot="A^B~C\\D") for i in range(1, 2)])
    asyncio.run(run_until(sink, lambda: len(zebra.labels()) == 1))
    (label,) = zebra.labels()
    assert "^FH\\^FD" in label["zpl"] and "A\\5EB\\7EC\\5CD" in label["zpl"]
    assert label["fields"][0]["data"] == "WIDGET-9  lot A^B~C\\D"
    store.close()


def test_a_printer_that_is_off_holds_its_labels_and_gets_each_once_in_order(tmp_path):
    printer = ZplCapture()         # not started: the printer is off
    sink, store = make_sink(tmp_path, f"zpl://127.0.0.1:{printer.port}")
    store.append([production(i, qty=5, lot=f"L{i:03d}") for i in range(1, 13)])

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        while sink.stats.retries < 3:          # the sink is retrying against the closed port
            await asyncio.sleep(0.05)
        assert sink.stats.state == "retrying" and "unreachable" in (sink.stats.last_error or "")
        assert store.backlog("zebra") == 12                  # held in the store, nothing lost
        printer.start()
        while len(printer.labels()) < 6:
            await asyncio.sleep(0.02)
        printer.stop()                                         # off again halfway
        retries = sink.stats.retries
        while sink.stats.retries < retries + 2:
            await asyncio.sleep(0.05)
        store.append([production(i, qty=5, lot=f"L{i:03d}") for i in range(13, 16)])
        printer.start()
        deadline = time.monotonic() + 20
        while len(printer.labels()) < 15:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)

    try:
        asyncio.run(scenario())
    finally:
        printer.stop()
    lots = [lb["fields"][0]["data"].split("lot ")[1] for lb in printer.labels()]
    assert lots == [f"L{i:03d}" for i in range(1, 16)]         # each once, in order
    assert store.backlog("zebra") == 0
    store.close()


def test_a_label_missing_a_value_is_a_dead_letter_naming_the_placeholder(tmp_path, zebra):
    sink, store = make_sink(tmp_path, f"zpl://127.0.0.1:{zebra.port}")
    bad = production(1, qty=5)
    del bad["context"]["lot"]
    store.append([bad, production(2, qty=5, lot="GOOD")])
    asyncio.run(run_until(sink, lambda: len(zebra.labels()) == 1))
    assert zebra.labels()[0]["fields"][0]["data"] == "WIDGET-9  lot GOOD"
    (letter,) = store.dead_letters("zebra")
    assert letter["event"]["id"] == bad["id"] and "'lot'" in letter["error"] and "{lot}" in letter["error"]
    store.close()


def test_a_restarted_sink_prints_nothing_twice(tmp_path, zebra):
    sink, store = make_sink(tmp_path, f"zpl://127.0.0.1:{zebra.port}")
    store.append([production(i, qty=5) for i in range(1, 4)])
    asyncio.run(run_until(sink, lambda: len(zebra.labels()) == 3))
    again = LabelSink(sink.cfg, store)
    assert again.ledger.printed == 3 and again.ledger.sending is None
    store.append([production(4, qty=5)])
    asyncio.run(run_until(again, lambda: len(zebra.labels()) == 4))
    assert len(zebra_jobs_labels(zebra)) == 4
    store.close()


def zebra_jobs_labels(zebra: ZplCapture) -> list[dict]:
    return [lb for job in zebra.jobs for lb in zpl_labels(job)]


def test_a_printer_out_of_paper_holds_its_labels_until_paper_is_loaded(tmp_path, zebra):
    zebra.paper_out = True
    sink, store = make_sink(tmp_path, f"zpl://127.0.0.1:{zebra.port}", extra="status_check = true")
    store.append([production(i, qty=5, lot=f"P{i}") for i in range(1, 5)])

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        while sink.stats.retries < 3:
            await asyncio.sleep(0.05)
        assert "paper out" in (sink.stats.last_error or "") and zebra.labels() == []
        assert store.backlog("zebra") == 4
        zebra.paper_out = False
        deadline = time.monotonic() + 20
        while len(zebra.labels()) < 4:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert [lb["fields"][0]["data"] for lb in zebra.labels()] == [f"WIDGET-9  lot P{i}" for i in range(1, 5)]
    assert store.backlog("zebra") == 0
    store.close()


def test_the_connection_test_says_whether_the_printer_can_print(tmp_path, zebra):
    from gateway.sinks.labels.printer import printer_for
    cfg = parse(label_config(f"zpl://127.0.0.1:{zebra.port}", extra="status_check = true")).sinks["zebra"]
    assert asyncio.run(printer_for(cfg).probe()) is None
    zebra.paper_out = True
    assert "paper out" in asyncio.run(printer_for(cfg).probe())
    zebra.stop()
    assert "unreachable" in asyncio.run(printer_for(cfg).probe())
    assert zebra.labels() == []                 # a probe prints nothing


def _crash_while_sending(sink: LabelSink, store: Store, reached_printer: bool) -> str:
    """Leave the store as a kill during a send does: the label written as `sending`, its event unacknowledged."""
    from gateway.sinks.labels.template import labels_for
    (stored,) = store.read("zebra", 1)
    (label,), _ = labels_for(stored.event, stored.seq, sink.cfg.actions, {})

    async def crash() -> None:
        await sink._write(lambda lg: setattr(lg, "sending", {"label": label.to_dict(), "where": "event",
                                                             "cls": stored.cls, "index": 0}))
        if reached_printer:
            await sink.printer.send(label.id, sink.printer.render(sink.cfg.templates[label.template], label.values))
    asyncio.run(crash())
    return label.id


def test_a_label_a_crash_left_in_doubt_on_a_raw_printer_is_held_then_confirmed_or_reprinted(tmp_path, zebra):
    sink, store = make_sink(tmp_path, f"zpl://127.0.0.1:{zebra.port}")
    store.append([production(1, qty=5, lot="A"), production(2, qty=5, lot="B")])
    doubtful = _crash_while_sending(sink, store, reached_printer=True)
    restarted = LabelSink(sink.cfg, store)
    asyncio.run(run_until(restarted, lambda: store.backlog("zebra") == 0))
    # the doubtful label is not sent again on its own; the next one is printed
    assert [lb["fields"][0]["data"] for lb in zebra.labels()] == ["WIDGET-9  lot A", "WIDGET-9  lot B"]
    (held,) = restarted.ledger.held
    assert held["label"]["id"] == doubtful and "may or may not be on paper" in held["reason"]
    assert restarted.stats.extra["labels_held"] == 1
    # a person looks at the printer: reprint it (journaled), and it prints once more
    request = asyncio.run(restarted.reprint(doubtful, "webui:ann"))
    assert request["by"] == "webui:ann" and restarted.ledger.held == []
    asyncio.run(run_until(restarted, lambda: len(zebra.labels()) == 3))
    assert zebra.labels()[2]["fields"][0]["data"] == "WIDGET-9  lot A"
    (entry,) = [e for e in store.journal_entries(100) if e.get("op") == "reprint"]
    assert entry["by"] == "webui:ann" and entry["items"][0][2] == doubtful
    store.close()


def test_a_held_label_confirmed_on_paper_leaves_the_held_list(tmp_path, zebra):
    sink, store = make_sink(tmp_path, f"zpl://127.0.0.1:{zebra.port}")
    store.append([production(1, qty=5, lot="A")])
    doubtful = _crash_while_sending(sink, store, reached_printer=False)
    restarted = LabelSink(sink.cfg, store)
    asyncio.run(run_until(restarted, lambda: store.backlog("zebra") == 0 and restarted.ledger.held))
    assert asyncio.run(restarted.discard(doubtful, "webui:bob")) is True
    assert restarted.ledger.held == [] and restarted.ledger.history[-1]["receipt"] == "confirmed on paper by webui:bob"
    assert any(e.get("op") == "label_confirmed" and e["by"] == "webui:bob" for e in store.journal_entries(100))
    assert zebra.labels() == []
    store.close()


def test_with_uncertain_reprint_the_label_in_doubt_is_sent_again(tmp_path, zebra):
    sink, store = make_sink(tmp_path, f"zpl://127.0.0.1:{zebra.port}", extra='uncertain = "reprint"')
    store.append([production(1, qty=5, lot="A")])
    _crash_while_sending(sink, store, reached_printer=False)
    restarted = LabelSink(sink.cfg, store)
    asyncio.run(run_until(restarted, lambda: store.backlog("zebra") == 0))
    assert [lb["fields"][0]["data"] for lb in zebra.labels()] == ["WIDGET-9  lot A"]
    assert restarted.ledger.held == []
    store.close()

