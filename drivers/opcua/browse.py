"""Browsing a server's address space for the web UI's tag picker.

This module owns `browse()`: connect with the device's security and login (or
anonymously to a bare endpoint), list the objects and variables below a node
(the Objects folder by default) down to `depth` levels, with each node's id,
browse name, display name, node class, data type and whether it has children,
and disconnect. Requests are batched per level: one Browse for the level, one
for the children's children, one Read for data types. It does not read values.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from asyncua import Client, ua

from drivers.base import ConfigCollector
from drivers.opcua.config import OpcUaDeviceConfig, parse_device, parse_node
from drivers.opcua.connection import (ConnectFailure, classify, discard, open_client,
                                      prepare_identity)

MAX_DEPTH = 5
_CLASSES = ua.NodeClass.Object | ua.NodeClass.Variable


class BrowseError(Exception):
    """Browsing failed; the message says why in the operator's words."""


async def browse(endpoint_or_config: str | OpcUaDeviceConfig, node: str | None = None,
                 depth: int = 1, *, device: str = "browse",
                 pki_root: str | Path = "pki") -> list[dict[str, Any]]:
    """The objects and variables below `node` (default: the Objects folder).

    Each entry: `node_id`, `browse_name`, `display_name`, `node_class`
    ("Object" or "Variable"), `data_type` (e.g. "Double"; None for objects),
    `has_children`, and, when `depth` > 1 and it has children, `children`
    (the same shape, one level further). Raises `BrowseError`. With security
    on, the client certificate is the device's (`pki_dir`, or `<pki_root>/<device>`).
    """
    cfg = _config(endpoint_or_config)
    if not 1 <= depth <= MAX_DEPTH:
        raise BrowseError(f"depth must be 1..{MAX_DEPTH}, got {depth}")
    try:
        start = (parse_node(node).node_id if node else ua.NodeId(ua.ObjectIds.ObjectsFolder))
    except ValueError as exc:
        raise BrowseError(f"node {node!r} {exc}") from None
    if start is None:
        raise BrowseError(f"node {node!r}: give the namespace by index (ns=) to browse")
    budget = cfg.timeout * (2 + 3 * depth)
    try:
        identity = await prepare_identity(cfg, device, pki_root)
        client = await asyncio.wait_for(open_client(cfg, device, identity), cfg.timeout * 4)
    except ConnectFailure as exc:
        raise BrowseError(f"cannot connect to {cfg.endpoint}: {exc.reason}") from None
    except asyncio.TimeoutError:
        raise BrowseError(f"cannot connect to {cfg.endpoint}: no answer within "
                          f"{cfg.timeout * 4:g} s") from None
    try:
        return await asyncio.wait_for(_tree(client, start, depth), budget)
    except BrowseError:
        raise
    except asyncio.TimeoutError:
        raise BrowseError(f"browsing {cfg.endpoint} took longer than {budget:g} s") from None
    except (OSError, ua.UaError) as exc:
        raise BrowseError(f"browsing {cfg.endpoint} failed: {classify(exc, cfg).reason}") from None
    finally:
        await discard(client, graceful=True, timeout=min(cfg.timeout, 2.0))


def _config(endpoint_or_config: str | OpcUaDeviceConfig) -> OpcUaDeviceConfig:
    if isinstance(endpoint_or_config, OpcUaDeviceConfig):
        return endpoint_or_config
    issues = ConfigCollector()
    cfg = parse_device({"endpoint": endpoint_or_config}, "endpoint", issues, require_tags=False)
    if cfg is None:
        raise BrowseError("; ".join(str(i) for i in issues.issues))
    return cfg


async def _tree(client: Client, start: ua.NodeId, depth: int) -> list[dict[str, Any]]:
    (first,) = await _references(client, [start])
    if first is None:
        raise BrowseError(f"node {start.to_string()!r} is not on this server")
    level = await _describe(client, first)
    top = [entry for entry, _ in level]
    for _ in range(depth - 1):
        parents = [(entry, node_id) for entry, node_id in level if entry["has_children"]]
        if not parents:
            break
        refs = await _references(client, [node_id for _, node_id in parents])
        flat = [ref for children in refs for ref in children or []]
        described = await _describe(client, flat)
        level, at = [], 0
        for (parent, _), children in zip(parents, refs):
            count = len(children or [])
            parent["children"] = [entry for entry, _ in described[at:at + count]]
            level.extend(described[at:at + count])
            at += count
    return top


async def _describe(client: Client, refs: list[ua.ReferenceDescription]
                    ) -> list[tuple[dict[str, Any], ua.NodeId]]:
    """Entries for `refs` with their node ids: children flags and data types, batched."""
    ids = [_local(ref.NodeId) for ref in refs]
    grandchildren = await _references(client, ids)
    variables = [i for i, ref in enumerate(refs) if ref.NodeClass == ua.NodeClass.Variable]
    types: dict[int, str | None] = {}
    if variables:
        values = await client.uaclient.read_attributes([ids[i] for i in variables],
                                                       ua.AttributeIds.DataType)
        names = await _type_names(client, [v.Value.Value if v.Value is not None else None
                                           for v in values])
        types = dict(zip(variables, names))
    return [({"node_id": ids[i].to_string(),
              "browse_name": ref.BrowseName.to_string(),
              "display_name": ref.DisplayName.Text or ref.BrowseName.Name,
              "node_class": ref.NodeClass.name,
              "data_type": types.get(i),
              "has_children": bool(grandchildren[i])}, ids[i])
            for i, ref in enumerate(refs)]


async def _references(client: Client,
                      nodes: list[ua.NodeId]) -> list[list[ua.ReferenceDescription] | None]:
    """Forward hierarchical references to objects and variables, per node (None: unknown)."""
    if not nodes:
        return []
    params = ua.BrowseParameters()
    params.RequestedMaxReferencesPerNode = 0
    for node_id in nodes:
        desc = ua.BrowseDescription()
        desc.NodeId = node_id
        desc.BrowseDirection = ua.BrowseDirection.Forward
        desc.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HierarchicalReferences)
        desc.IncludeSubtypes = True
        desc.NodeClassMask = int(_CLASSES)
        desc.ResultMask = ua.BrowseResultMask.All
        params.NodesToBrowse.append(desc)
    results = await client.uaclient.browse(params)
    out: list[list[ua.ReferenceDescription] | None] = []
    for result in results:
        if not result.StatusCode.is_good():
            out.append(None)
            continue
        refs = list(result.References)
        point = result.ContinuationPoint
        while point:
            more = ua.BrowseNextParameters()
            more.ContinuationPoints = [point]
            more.ReleaseContinuationPoints = False
            (next_result,) = await client.uaclient.browse_next(more)
            refs.extend(next_result.References)
            point = next_result.ContinuationPoint
        out.append(refs)
    return out


async def _type_names(client: Client, type_ids: list[Any]) -> list[str | None]:
    """`Double` for i=11; for a server's own types, their display name."""
    names: list[str | None] = []
    custom: list[tuple[int, ua.NodeId]] = []
    for i, type_id in enumerate(type_ids):
        if not isinstance(type_id, ua.NodeId):
            names.append(None)
        elif type_id.NamespaceIndex == 0 and isinstance(type_id.Identifier, int):
            names.append(ua.ObjectIdNames.get(type_id.Identifier, type_id.to_string()))
        else:
            names.append(type_id.to_string())
            custom.append((i, type_id))
    if custom:
        values = await client.uaclient.read_attributes([t for _, t in custom],
                                                       ua.AttributeIds.DisplayName)
        for (i, _), value in zip(custom, values):
            text = getattr(value.Value.Value, "Text", None) if value.Value is not None else None
            if text:
                names[i] = text
    return names


def _local(node_id: ua.ExpandedNodeId | ua.NodeId) -> ua.NodeId:
    return ua.NodeId(node_id.Identifier, node_id.NamespaceIndex, node_id.NodeIdType)

