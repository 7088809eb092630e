"""The labels sink's configuration: a valid section loads; each mistake is named by its key path."""
from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import LabelSinkConfig, load, parse
from gateway.errors import ConfigError
from tests.labels.test_zpl import label_config

SAMPLE = Path(__file__).resolve().parents[2] / "gateway" / "sinks" / "labels" / "sample.toml"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse(text)
    return exc.value.problems


def test_a_label_printer_section_loads_with_its_templates_and_actions():
    cfg = parse(label_config("zpl://10.0.0.5"))
    sink = cfg.sinks["zebra"]
    assert isinstance(sink, LabelSinkConfig)
    assert (sink.protocol, sink.host, sink.port, sink.url) == ("zpl", "10.0.0.5", 9100, "zpl://10.0.0.5:9100")
    assert [a.on for a in sink.actions] == ["production", "workorder_finish"] and sink.actions[0].every == 5
    assert [f.type for f in sink.templates["carton"].fields] == ["text", "text", "gs1_128", "datamatrix", "qr"]
    ipp = parse(label_config("ipp://cups.plant:631/printers/line2")).sinks["zebra"]
    assert (ipp.protocol, ipp.port, ipp.path) == ("ipp", 631, "/printers/line2")


def test_the_sample_configuration_is_valid():
    cfg = load(SAMPLE)
    assert {type(s).__name__ for s in cfg.sinks.values()} == {"LabelSinkConfig"}


@pytest.mark.parametrize("change, path, words", [
    (("zpl://127.0.0.1", "lpr://10.0.0.5"), "sinks.zebra.printer", "must be zpl://"),
    (("zpl://127.0.0.1", "ipp://10.0.0.5"), "sinks.zebra.printer", "needs its resource"),
    (('template = "carton"', 'template = "crate"'), "sinks.zebra.labels[0].template", "no template 'crate'"),
    (('on = "workorder_finish"', 'on = "alarm"'), "sinks.zebra.labels[1].on", "must be one of"),
    (('on = "workorder_finish"', 'on = "workorder_finish"\nevery = 3'), "sinks.zebra.labels[1].every",
     "only for on = \"production\""),
    (('data = "DONE {work_order}"', 'data = "DONE {order}"'), "sinks.zebra.templates.done.fields[0].data",
     "unknown placeholder {order}"),
    (('type = "gs1_128", data = "(240)', 'type = "gs1_128", data = "240)'),
     "sinks.zebra.templates.carton.fields[2].data", "application identifiers in parentheses"),
    (('type = "qr"', 'type = "pdf417"'), "sinks.zebra.templates.carton.fields[4].type", "must be one of"),
    (("x_mm = 60", "x_mm = 160"), "sinks.zebra.templates.carton.fields[4].x_mm", "must be 0..100"),
    (("retry_cap = 0.2", "retry_cap = 0.2\ncolour = \"red\""), "sinks.zebra.colour", "unknown key"),
    (("zpl://127.0.0.1\"", "ipp://127.0.0.1/printers/x\"\nstatus_check = true"), "sinks.zebra.status_check",
     "only for zpl://"),
])
def test_each_mistake_is_named_by_its_key_path(change, path, words):
    old, new = change
    text = label_config("zpl://127.0.0.1")
    assert old in text
    found = problems(text.replace(old, new, 1))
    assert any(p.startswith(f"<config>: {path}: ") and words in p for p in found), found
