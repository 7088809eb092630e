"""The registry reads entry points as importlib.metadata does, without importing it: the same entries for
every installed distribution, the first distribution of a name on sys.path wins, and a third-party
driver's missing library names its own distribution and extra."""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap

from gateway import registry


def test_the_scan_finds_exactly_what_importlib_metadata_finds():
    want = sorted((e.group, e.name, e.value.replace(" ", ""))
                  for _, eps in importlib.metadata.entry_points().items() for e in eps)
    got = sorted((e.group, e.name, e.spec + (f"[{','.join(e.extras)}]" if e.extras else ""))
                 for e in registry._installed())
    assert got == want
    assert {"modbus_tcp", "opcua", "sql"} <= set(registry.driver_types())
    assert [e.name for e in registry.group("linebridge.services")] == ["webui"]


def test_parse_follows_the_entry_points_format():
    text = textwrap.dedent("""
        # a comment
        [linebridge.drivers]
        acme = acme_driver.core:AcmeDriver [acme, fast]
        plain=acme_driver
        ; another comment
        [console_scripts]
        acme-tool = acme_driver.cli:main
    """)
    eps = registry.parse(text, "acme-driver")
    assert [(e.group, e.name, e.module, e.attr, e.extras) for e in eps] == [
        ("linebridge.drivers", "acme", "acme_driver.core", "AcmeDriver", ("acme", "fast")),
        ("linebridge.drivers", "plain", "acme_driver", "", ()),
        ("console_scripts", "acme-tool", "acme_driver.cli", "main", ()),
    ]


def test_a_third_party_driver_is_found_first_wins_and_its_missing_library_names_its_extra(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for root, cls in ((first, "AcmeDriver"), (second, "Shadowed")):
        info = root / "acme_driver-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "entry_points.txt").write_text(f"[linebridge.drivers]\nacme = acme_driver:{cls} [acme]\n")
    (first / "acme_driver.py").write_text("import acme_vendor_lib\nclass AcmeDriver: pass\n")
    code = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(first)!r}, {str(second)!r}]
        from gateway import registry
        assert registry.driver_types()["acme"] == "acme_driver:AcmeDriver", registry.driver_types()
        try:
            registry.driver_class("acme")
        except registry.MissingExtra as exc:
            print(exc)
        assert registry.driver_class("no_such_type") is None
        assert "importlib.metadata" not in sys.modules
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("needs the Python package 'acme_vendor_lib', which is not installed: "
                                  "pip install 'acme_driver[acme]'")
