"""What the driver sets up on one connected client: nodes, subscription, monitored items.

This module owns one connection's worth of tag plumbing: resolving `nsu=` node
ids to this server's namespace indexes, reading EURange for percent deadbands,
creating the subscription and one monitored item per tag (sampling interval,
queue size, deadband filter), deciding per tag whether it is subscribed, polled
(the server refused the subscription or the item) or failed (a node or
configuration problem), reading the polled tags, and receiving the server's
notifications. Notifications and loss of the session are passed to the driver
through two callbacks. It does not reconnect or build samples.
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from asyncua import Client, ua
from asyncua.common.subscription import DataChangeNotif, Subscription

from drivers.base import Quality
from drivers.opcua.config import OpcUaDeviceConfig, OpcUaTagConfig
from drivers.opcua.quality import (FILTER_REFUSED_CODES, MONITORING_REFUSED_CODES,
                                   quality_for_status, status_text)

#: a data change: (tag name, the value with its status and timestamps)
DataSink = Callable[["TagSession", str, ua.DataValue], None]
#: the session is gone: (reason)
LossSink = Callable[["TagSession", str], None]


@dataclass
class Failed:
    """A tag that cannot be read on this server, and why."""

    quality: Quality
    reason: str


@dataclass
class TagSession:
    """The tags of one device on one connected client."""

    client: Client
    cfg: OpcUaDeviceConfig
    on_data: DataSink
    on_loss: LossSink
    nodes: dict[str, ua.NodeId] = field(default_factory=dict)
    subscribed: list[str] = field(default_factory=list)
    polled: list[str] = field(default_factory=list)
    failed: dict[str, Failed] = field(default_factory=dict)
    #: absolute deadband per tag (a percent deadband turned into units via EURange)
    deadbands: dict[str, float] = field(default_factory=dict)
    fallback: str | None = None   # why tags are polled in subscribe mode
    subscription: Subscription | None = None
    closed: bool = False
    _handles: dict[int, str] = field(default_factory=dict)
    _next_handle: int = 1
    _poll_nodes: list[Any] = field(default_factory=list)

    # -- setup ------------------------------------------------------------------------

    async def setup(self) -> None:
        """Resolve nodes, then subscribe (or prepare polling); raises on a lost link."""
        await self._resolve_nodes()
        await self._resolve_deadbands()
        usable = [name for name in self.cfg.tags if name in self.nodes and name not in self.failed]
        if self.cfg.mode == "poll":
            self.polled = usable
        elif usable:
            await self._subscribe(usable)
        self._poll_nodes = [self.client.get_node(self.nodes[name]) for name in self.polled]

    async def _resolve_nodes(self) -> None:
        tags = self.cfg.tags.values()
        namespaces: list[str] = []
        if any(tag.node.node_id is None for tag in tags):
            namespaces = list(await self.client.get_namespace_array())
        for tag in tags:
            node_id = tag.node.resolve(namespaces)
            if node_id is None:
                self.failed[tag.name] = Failed(
                    Quality.BAD_CONFIG,
                    f"namespace {tag.node.namespace_uri} is not on this server "
                    f"(it has: {', '.join(namespaces)})")
            else:
                self.nodes[tag.name] = node_id

    async def _resolve_deadbands(self) -> None:
        for tag in self.cfg.tags.values():
            if tag.name not in self.nodes:
                continue
            if tag.deadband is not None:
                self.deadbands[tag.name] = tag.deadband
            elif tag.deadband_percent is not None:
                span = await self._eu_span(tag)
                if span is not None:
                    self.deadbands[tag.name] = span * tag.deadband_percent / 100.0

    async def _eu_span(self, tag: OpcUaTagConfig) -> float | None:
        node = self.client.get_node(self.nodes[tag.name])
        try:
            prop = await node.get_child([ua.QualifiedName("EURange", 0)])
            value = await prop.read_value()
        except ua.UaStatusCodeError as exc:
            self.failed[tag.name] = Failed(Quality.BAD_CONFIG,
                                           f"deadband_percent needs the node's EURange property: "
                                           f"{status_text(exc.code)}")
            return None
        low, high = getattr(value, "Low", None), getattr(value, "High", None)
        if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) \
                or not math.isfinite(high - low) or high <= low:
            self.failed[tag.name] = Failed(Quality.BAD_CONFIG,
                                           f"deadband_percent needs a valid EURange, got {value!r}")
            return None
        return float(high - low)

    async def _subscribe(self, names: list[str]) -> None:
        cfg = self.cfg
        try:
            self.subscription = await self.client.create_subscription(
                _subscription_parameters(cfg), handler=self)
        except ua.UaStatusCodeError as exc:
            self._poll_instead(names, f"the server refused a subscription: {status_text(exc.code)}")
            return
        remaining = await self._create_items(names, with_filter=True)
        if remaining:  # the server does not take our deadband filter: filter on our side only
            await self._create_items(remaining, with_filter=False)
        if not self.subscribed and self.subscription is not None:
            await self._drop_subscription()

    async def _create_items(self, names: list[str], with_filter: bool) -> list[str]:
        """Create monitored items; returns the tags to retry without a filter."""
        assert self.subscription is not None
        requests = []
        for name in names:
            requests.append(self._item_request(name, self._next_handle, with_filter))
            self._next_handle += 1
        try:
            results = await self.subscription.create_monitored_items(requests)
        except ua.UaStatusCodeError as exc:
            self._poll_instead(names, f"the server refused monitored items: "
                                      f"{status_text(exc.code)}")
            return []
        retry: list[str] = []
        for name, request, result in zip(names, requests, results):
            if not isinstance(result, ua.StatusCode):
                self._handles[request.RequestedParameters.ClientHandle] = name
                self.subscribed.append(name)
                continue
            code = result.value & 0xFFFF0000
            if with_filter and code in FILTER_REFUSED_CODES:
                retry.append(name)
            elif code in MONITORING_REFUSED_CODES or quality_for_status(code) != Quality.BAD_CONFIG:
                self._poll_instead([name], f"the server refused to monitor it: "
                                           f"{status_text(result.value)}")
            else:
                self.failed[name] = Failed(Quality.BAD_CONFIG, status_text(result.value))
        return retry

    def _item_request(self, name: str, handle: int,
                      with_filter: bool) -> ua.MonitoredItemCreateRequest:
        tag = self.cfg.tags[name]
        item = ua.MonitoredItemCreateRequest()
        item.ItemToMonitor = ua.ReadValueId(NodeId=self.nodes[name],
                                            AttributeId=ua.AttributeIds.Value)
        item.MonitoringMode = ua.MonitoringMode.Reporting
        params = ua.MonitoringParameters()
        params.ClientHandle = handle
        params.SamplingInterval = (tag.sampling_interval * 1000.0
                                   if tag.sampling_interval is not None else -1.0)
        params.QueueSize = tag.queue_size
        params.DiscardOldest = True
        if with_filter and (tag.deadband is not None or tag.deadband_percent is not None):
            flt = ua.DataChangeFilter()
            flt.Trigger = ua.DataChangeTrigger.StatusValue
            if tag.deadband is not None:
                flt.DeadbandType = ua.DeadbandType.Absolute
                flt.DeadbandValue = float(tag.deadband)
            else:
                flt.DeadbandType = ua.DeadbandType.Percent
                flt.DeadbandValue = float(tag.deadband_percent or 0.0)
            params.Filter = flt
        item.RequestedParameters = params
        return item

    def _poll_instead(self, names: list[str], reason: str) -> None:
        self.polled.extend(n for n in names if n not in self.polled)
        self.fallback = reason

    async def _drop_subscription(self) -> None:
        sub, self.subscription = self.subscription, None
        if sub is not None:
            try:
                await sub.delete()
            except ua.UaStatusCodeError:
                pass  # the server has no use for it either

    # -- polling --------------------------------------------------------------------------

    async def read_polled(self) -> list[ua.DataValue]:
        """One Read request for every polled tag, in `polled` order."""
        if not self._poll_nodes:
            return []
        values = await self.client.read_attributes(self._poll_nodes, ua.AttributeIds.Value)
        if len(values) != len(self._poll_nodes):
            raise ua.UaError(f"the server answered {len(values)} values for "
                             f"{len(self._poll_nodes)} nodes")
        return values

    # -- notifications (asyncua calls these, each in its own task) -------------------------

    def datachange_notification(self, node: Any, val: Any, data: DataChangeNotif) -> None:
        if self.closed:
            return
        name = self._handles.get(data.subscription_data.client_handle or -1)
        if name is not None and data.monitored_item.Value is not None:
            self.on_data(self, name, data.monitored_item.Value)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        if self.closed:
            return
        code = status.Status.value if status.Status is not None else 0
        if code >> 31:  # bad: the subscription is gone (timed out, or the link is down)
            self.on_loss(self, f"subscription ended: {status_text(code)}")

    async def close(self, graceful: bool, timeout: float) -> None:
        """Stop receiving; delete the subscription on the server when the link is still up."""
        self.closed = True
        if graceful and self.subscription is not None:
            try:
                await asyncio.wait_for(self.subscription.delete(), timeout)
            except (asyncio.TimeoutError, OSError, ua.UaError):
                pass  # CloseSession deletes it too
        self.subscription = None


def loss_text(exc: BaseException | None) -> str:
    """The reason asyncua's connection watchdog gave, in the operator's words."""
    if exc is None:
        return "connection lost"
    if isinstance(exc, ua.UaStatusCodeError):
        return f"connection lost: {status_text(exc.code)}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "connection lost: the server stopped answering the keep-alive check"
    if isinstance(exc, ConnectionError) and str(exc) == "transport lost":
        return "connection lost: the connection was closed"
    text = str(exc) or type(exc).__name__
    return f"connection lost: {text}"


def _subscription_parameters(cfg: OpcUaDeviceConfig) -> ua.CreateSubscriptionParameters:
    interval_ms = cfg.publishing_interval * 1000.0
    keepalive = max(1, math.ceil(cfg.keepalive_interval / cfg.publishing_interval))
    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = interval_ms
    params.RequestedMaxKeepAliveCount = keepalive
    params.RequestedLifetimeCount = keepalive * 6  # the spec asks for at least 3x
    params.MaxNotificationsPerPublish = 0           # no limit
    params.PublishingEnabled = True
    params.Priority = 0
    return params
