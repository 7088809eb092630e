"""PDF labels through a real CUPS over IPP: barcodes decode to the right content; a crash never doubles a label."""
from __future__ import annotations

import asyncio
import io
import subprocess
from pathlib import Path

import zxingcpp
from PIL import Image

from gateway.config import parse
from gateway.sinks.labels import ipp
from gateway.sinks.labels.sink import LabelSink
from gateway.sinks.labels.template import labels_for
from store.queue import Store
from tests.labels.conftest import finished, production
from tests.labels.test_zpl import TEMPLATES, run_until

CONFIG = """
[gateway]
id = "gw1"
[sinks.zebra]
type = "labels"
printer = "ipp://127.0.0.1:PORT/printers/labels"
timeout = 5
retry_cap = 0.3
[[sinks.zebra.labels]]
on = "production"
every = 5
template = "carton"
[[sinks.zebra.labels]]
on = "workorder_finish"
template = "done"
""" + TEMPLATES


def decode_pdf(pdf: bytes, tmp: Path) -> list[tuple[str, str, str]]:
    """Each barcode on the PDF's page rendered at 300 dpi by poppler: (format, text, symbology id)."""
    assert pdf.startswith(b"%PDF-")
    out = subprocess.run(["pdftoppm", "-r", "300", "-gray", "-png", "-singlefile", "-", str(tmp / "page")],
                         input=pdf, capture_output=True, timeout=60, check=True)
    assert out.returncode == 0
    image = Image.open(io.BytesIO((tmp / "page.png").read_bytes()))
    found = zxingcpp.read_barcodes(image)
    return sorted((str(b.format).split(".")[-1].replace(" ", ""), b.text, b.symbology_identifier) for b in found)


def make(tmp_path: Path, port: int) -> tuple[LabelSink, Store]:
    cfg = parse(CONFIG.replace("PORT", str(port)))
    store = Store(tmp_path / "store", sinks={"zebra": ["business"]})
    return LabelSink(cfg.sinks["zebra"], store), store


def test_pdf_labels_printed_by_cups_carry_barcodes_that_decode_to_the_event(tmp_path, cups):
    sink, store = make(tmp_path, cups.port)
    store.append([production(1, qty=5, lot="LOT-7"), production(2, qty=5, lot="LOT-8"), finished(3)])
    asyncio.run(run_until(sink, lambda: sink.ledger.printed == 3, timeout=60))
    cups.completed(3)
    docs = cups.documents()
    assert len(docs) == 3
    first, second, done = (decode_pdf(d, tmp_path) for d in docs)
    assert first == sorted([
        ("Code128", "(240)WIDGET-9(10)LOT-7(30)5", "]C1"),          # GS1-128: FNC1 first, AIs as encoded
        ("DataMatrix", "WIDGET-9|LOT-7|5|1", "]d1"),
        ("QRCode", "https://erp.example/wo/WO/0042?lot=LOT-7", "]Q1")])
    assert ("Code128", "(240)WIDGET-9(10)LOT-8(30)5", "]C1") in second
    assert done == [("Code128", "DONE WO/0042", "]C0")]
    # CUPS knows each job by the label's id: the name the gateway asks for after a crash
    jobs = ipp.job_names("127.0.0.1", cups.port, "/printers/labels", cups.uri, 5)
    assert sorted(jobs) == sorted(e["label"]["id"] for e in sink.ledger.history)
    assert store.backlog("zebra") == 0
    store.close()


def _crash_while_sending(sink: LabelSink, store: Store, reached_printer: bool) -> str:
    """Leave the store as a kill during a send does: the label written as `sending`, the cursor before its event;
    the printer has the label when `reached_printer`."""
    (stored,) = store.read("zebra", 1)
    (label,), _ = labels_for(stored.event, stored.seq, sink.cfg.actions, {})

    async def crash() -> None:
        await sink._write(lambda lg: setattr(lg, "sending", {"label": label.to_dict(), "where": "event",
                                                             "cls": stored.cls, "index": 0}))
        if reached_printer:
            await sink.printer.send(label.id, sink.printer.render(sink.cfg.templates[label.template], label.values))
    asyncio.run(crash())
    return label.id


def test_after_a_crash_a_label_cups_already_has_is_not_printed_again(tmp_path, cups):
    sink, store = make(tmp_path, cups.port)
    store.append([production(1, qty=5), production(2, qty=5, lot="NEXT")])
    label_id = _crash_while_sending(sink, store, reached_printer=True)
    restarted = LabelSink(sink.cfg, store)
    asyncio.run(run_until(restarted, lambda: restarted.ledger.printed == 2 and store.backlog("zebra") == 0,
                          timeout=60))
    cups.completed(2)
    jobs = ipp.job_names("127.0.0.1", cups.port, "/printers/labels", cups.uri, 5)
    assert len(cups.documents()) == 2 and label_id in jobs    # the first label once, the second once
    assert restarted.ledger.history[0]["receipt"] == "found at the printer"
    store.close()


def test_after_a_crash_a_label_cups_does_not_have_is_printed(tmp_path, cups):
    sink, store = make(tmp_path, cups.port)
    store.append([production(1, qty=5)])
    label_id = _crash_while_sending(sink, store, reached_printer=False)
    restarted = LabelSink(sink.cfg, store)
    asyncio.run(run_until(restarted, lambda: restarted.ledger.printed == 1 and store.backlog("zebra") == 0,
                          timeout=60))
    cups.completed(1)
    assert list(ipp.job_names("127.0.0.1", cups.port, "/printers/labels", cups.uri, 5)) == [label_id]
    assert len(cups.documents()) == 1
    store.close()


def test_the_connection_test_reaches_cups_and_names_a_missing_queue(tmp_path, cups):
    from gateway.sinks.labels.printer import printer_for
    good = parse(CONFIG.replace("PORT", str(cups.port))).sinks["zebra"]
    assert asyncio.run(printer_for(good).probe()) is None
    wrong = parse(CONFIG.replace("PORT", str(cups.port)).replace("/printers/labels", "/printers/nope")).sinks["zebra"]
    assert "0x0406" in asyncio.run(printer_for(wrong).probe())        # client-error-not-found
    cups.stop()
    assert asyncio.run(printer_for(good).probe()) is not None


def test_a_print_job_whose_answer_is_lost_is_not_printed_twice(tmp_path, cups, caplog):
    from tests.labels.peers import CutAnswers
    relay = CutAnswers(cups.port, cuts=1)
    try:
        sink, store = make(tmp_path, relay.port)
        store.append([production(1, qty=5), production(2, qty=5, lot="NEXT")])
        asyncio.run(run_until(sink, lambda: sink.ledger.printed == 2 and store.backlog("zebra") == 0, timeout=60))
    finally:
        relay.close()
    assert sink.stats.retries == 1 and "no answer to Print-Job" in caplog.text
    cups.completed(2)
    assert len(cups.documents()) == 2                      # the first label reached CUPS once, not twice
    assert [e["receipt"] for e in sink.ledger.history][0] == "found at the printer"
    store.close()


def test_a_barcode_that_cannot_encode_its_data_is_a_dead_letter_naming_why(tmp_path):
    bad = CONFIG.replace("PORT", "9").replace('data = "(240){product}(10){lot}(30){quantity}"',
                                              'data = "(01){product}(10){lot}"')
    cfg = parse(bad)
    store = Store(tmp_path / "store", sinks={"zebra": ["business"]})
    sink = LabelSink(cfg.sinks["zebra"], store)
    store.append([production(1, qty=5)])
    asyncio.run(run_until(sink, lambda: store.backlog("zebra") == 0))
    (letter,) = store.dead_letters("zebra")
    assert letter["error"].startswith("label not rendered: ") and "AI (01)" in letter["error"]
    store.close()
