"""browse() for the web UI's tag picker, against asyncua's own server."""
from __future__ import annotations

import asyncio

import pytest

from drivers.opcua import BrowseError, browse
from tests.drivers.opcua import free_port


def test_browse_lists_the_objects_folder_one_level_deep(plant):
    entries = asyncio.run(browse(plant.endpoint))
    by_name = {e["display_name"]: e for e in entries}
    machine = by_name["Machine1"]
    assert machine == {"node_id": "ns=2;s=Machine1", "browse_name": "2:Machine1",
                       "display_name": "Machine1", "node_class": "Object", "data_type": None,
                       "has_children": True}
    assert by_name["Line1"]["has_children"] is True
    assert by_name["Server"]["node_class"] == "Object"  # the server's own diagnostics object
    assert all("children" not in e for e in entries)


def test_browse_a_node_gives_variables_with_their_data_types(plant):
    entries = asyncio.run(browse(plant.endpoint, "ns=2;s=Machine1"))
    got = {e["display_name"]: (e["node_id"], e["node_class"], e["data_type"], e["has_children"])
           for e in entries}
    assert got == {
        "Counter": ("ns=2;s=Machine1.Counter", "Variable", "UInt32", False),
        "Temperature": ("ns=2;s=Machine1.Temperature", "Variable", "Double", False),
        "Running": ("ns=2;s=Machine1.Running", "Variable", "Boolean", False),
        "Recipe": ("ns=2;s=Machine1.Recipe", "Variable", "String", False),
        "Level": ("ns=2;s=Machine1.Level", "Variable", "Double", False),
        "Pressure": ("ns=2;s=Machine1.Pressure", "Variable", "Double", True),  # has EURange
    }


def test_browse_deeper_nests_children(plant):
    entries = asyncio.run(browse(plant.endpoint, depth=3))
    line = next(e for e in entries if e["display_name"] == "Line1")
    assert [(c["display_name"], c["data_type"]) for c in line["children"]] == [("Speed", "Int16")]
    machine = next(e for e in entries if e["display_name"] == "Machine1")
    pressure = next(c for c in machine["children"] if c["display_name"] == "Pressure")
    assert [(c["display_name"], c["data_type"]) for c in pressure["children"]] == [
        ("EURange", "Range")]


def test_browse_errors_say_what_is_wrong(plant):
    with pytest.raises(BrowseError, match=r"node 'ns=2;s=Nowhere' is not on this server"):
        asyncio.run(browse(plant.endpoint, "ns=2;s=Nowhere"))
    with pytest.raises(BrowseError, match=r"node 'ns=x;i=1' is not a valid OPC-UA node id"):
        asyncio.run(browse(plant.endpoint, "ns=x;i=1"))
    with pytest.raises(BrowseError, match="connection refused"):
        asyncio.run(browse(f"opc.tcp://127.0.0.1:{free_port()}/"))
    with pytest.raises(BrowseError, match="must start with opc.tcp://"):
        asyncio.run(browse("http://127.0.0.1:4840/"))
