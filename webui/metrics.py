"""Prometheus text exposition (format 0.0.4) of the gateway's figures, for /metrics.

It owns the metric names and their help text: queue depth per sink and class,
events delivered and dead-lettered per sink, dead letters waiting, intake
counters, driver state and poll latency per device, and the Odoo call latency
histogram per sink, and each supervised task's restarts. Built by hand from
`Supervisor.status()` and the store's stats: the format is small and a client
library would be one more dependency on the appliance (prometheus_client is
only a test dependency, whose parser reads this back). Values are printed
exactly: integers as integers at any size, floats in their shortest exact
form, so a counter above 999,999 does not move in steps.
"""
from __future__ import annotations

import math
from typing import Any


def exact(value: Any) -> str:
    """A sample value as the exposition format writes it, without losing a digit."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    x = float(value)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(x)  # the shortest text that reads back as exactly this float


def _esc(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._seen: set[str] = set()

    def metric(self, name: str, kind: str, help_: str, value: Any, **labels: Any) -> None:
        if name not in self._seen:
            self._seen.add(name)
            self.lines.append(f"# HELP {name} {help_}")
            self.lines.append(f"# TYPE {name} {kind}")
        self.sample(name, value, **labels)

    def sample(self, name: str, value: Any, **labels: Any) -> None:
        if value is None:
            return
        lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{lab}}} {exact(value)}" if lab else f"{name} {exact(value)}")


def render(status: dict[str, Any], stats: dict[str, Any]) -> str:
    out = _Out()
    out.metric("linebridge_uptime_seconds", "gauge", "Seconds since the gateway started.", status.get("uptime"))
    for key, help_ in (("read", "Samples read from devices."), ("bad_samples", "Samples with a bad quality."),
                       ("events", "Business events made by the rules."), ("stored", "Events stored durably."),
                       ("refused", "Batches the store refused (full); held and retried.")):
        out.metric(f"linebridge_intake_{key}_total", "counter", help_, status.get(key, 0))
    for cls, c in stats.get("classes", {}).items():
        out.metric("linebridge_store_events", "gauge", "Events held in the store per class.", c["events"], cls=cls)
        out.metric("linebridge_store_bytes", "gauge", "Bytes held in the store per class.", c["bytes"], cls=cls)
        out.metric("linebridge_store_evicted_total", "counter", "Telemetry evicted at its cap.",
                   c.get("evicted", 0), cls=cls)
    out.metric("linebridge_store_map_used_bytes", "gauge", "Bytes of the LMDB map in use.", stats.get("map_used"))
    out.metric("linebridge_store_map_size_bytes", "gauge", "Current LMDB map size.", stats.get("map_size"))
    for name, s in stats.get("sinks", {}).items():
        out.metric("linebridge_queue_depth", "gauge", "Events waiting for a sink.", s.get("backlog", 0), sink=name)
        out.metric("linebridge_dead_letters", "gauge", "Dead letters waiting for a person.",
                   s.get("dead_letters", 0), sink=name)
        out.metric("linebridge_held", "gauge", "Events a sink holds in a lane, waiting for context (a work order).",
                   s.get("held", 0), sink=name)
    for name, s in status.get("sinks", {}).items():
        out.metric("linebridge_delivered_total", "counter", "Events a sink delivered (acknowledged).",
                   s.get("delivered", 0), sink=name)
        out.metric("linebridge_failed_total", "counter", "Events a sink dead-lettered.",
                   s.get("dead_lettered", 0), sink=name)
        out.metric("linebridge_sink_retries_total", "counter", "Batches a sink retried.", s.get("retries", 0),
                   sink=name)
        out.metric("linebridge_sink_up", "gauge", "1 when the sink is delivering or idle, else 0.",
                   1 if s.get("state") in ("idle", "running") else 0, sink=name, state=s.get("state"))
    for name, s in status.get("sinks", {}).items():
        lat = s.get("call_latency")
        if not lat:
            continue
        metric = "linebridge_odoo_call_seconds"
        if metric not in out._seen:
            out._seen.add(metric)
            out.lines += [f"# HELP {metric} Latency of Odoo calls.", f"# TYPE {metric} histogram"]
        for bound, n in lat["buckets"].items():
            out.sample(f"{metric}_bucket", n, sink=name, le=bound)
        out.sample(f"{metric}_bucket", lat["count"], sink=name, le="+Inf")
        out.sample(f"{metric}_sum", lat["sum"], sink=name)
        out.sample(f"{metric}_count", lat["count"], sink=name)
    for name, d in status.get("devices", {}).items():
        out.metric("linebridge_device_connected", "gauge", "1 when the driver is connected.",
                   1 if d.get("connected") else 0, device=name)
        out.metric("linebridge_device_reads_total", "counter", "Successful polls or notifications.",
                   d.get("reads", 0), device=name)
        out.metric("linebridge_device_errors_total", "counter", "Failed reads.", d.get("errors", 0), device=name)
        latency = d.get("poll_latency_ms")
        out.metric("linebridge_device_poll_latency_seconds", "gauge", "Latency of the last poll.",
                   None if latency is None else latency / 1000.0, device=name)
    for name, t in status.get("tasks", {}).items():
        out.metric("linebridge_task_restarts_total", "counter",
                   "Times a supervised task died and was restarted (since it was started or reconfigured).",
                   t.get("restarts", 0), task=name)
        out.metric("linebridge_task_up", "gauge", "1 while the supervised task runs, 0 while it waits to restart.",
                   1 if t.get("state") == "running" else 0, task=name)
    if "healthy" in status:
        out.metric("linebridge_healthy", "gauge",
                   "0 once a task has kept failing past [gateway] restart_window_s (the watchdog stops).",
                   1 if status["healthy"] else 0)
    return "\n".join(out.lines) + "\n"
