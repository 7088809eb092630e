"""The console's way into the running gateway: status, live values, tests, queue actions, live apply.

Flask answers in the WSGI server's threads while the supervisor, its drivers
and sinks live on the gateway's asyncio loop. Everything that touches them goes
through `Bridge.call`, which runs a coroutine on that loop and waits for it
with a deadline, so a page never blocks the loop and the loop never waits for a
page. The store is thread-safe and is read directly (the CLI does the same
from another process). This module owns those calls; what they show is the
pages' and the API's business.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from drivers.base import Sample
from gateway.config import Config, LabelSinkConfig, MqttSinkConfig, OdooSinkConfig

#: seconds a page waits for the gateway loop before it answers 503
CALL_TIMEOUT = 30.0


class GatewayBusy(Exception):
    """The gateway did not answer in time."""


def _sample(s: Sample) -> dict[str, Any]:
    value = s.value
    if isinstance(value, (bytes, bytearray)):
        value = value.hex()
    elif not isinstance(value, (int, float, str, bool, type(None))):
        value = repr(value)
    return {"tag": s.tag, "value": value, "quality": s.quality.name.lower(), "ts": round(s.source_ts, 3),
            "error": s.error}


class Bridge:
    """Calls into one supervisor running on `loop`."""

    def __init__(self, supervisor: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.sup = supervisor
        self.loop = loop

    def call(self, fn: Callable[[], Awaitable[Any]], timeout: float = CALL_TIMEOUT) -> Any:
        future = asyncio.run_coroutine_threadsafe(_run(fn), self.loop)
        try:
            return future.result(timeout)
        except TimeoutError as exc:
            future.cancel()
            raise GatewayBusy(f"the gateway did not answer within {timeout:.0f} s") from exc

    @property
    def config(self) -> Config:
        return self.sup.config

    @property
    def store(self) -> Any:
        return self.sup.store

    def status(self) -> dict[str, Any]:
        async def snap() -> dict[str, Any]:
            st = self.sup.status()
            for name, sink in self.sup.sinks.items():
                info = st["sinks"].setdefault(name, {})
                info["type"] = ("mqtt" if isinstance(sink.cfg, MqttSinkConfig) else "labels" if isinstance(sink.cfg, LabelSinkConfig) else "odoo")
            st["links"] = {n: {"state": link.state, "last_error": link.last_error}
                           for n, link in getattr(self.sup, "links", {}).items()}
            hb = getattr(self.sup, "heartbeat", None)
            st["heartbeat"] = ({"sink": hb.cfg.sink, "interval": hb.cfg.interval, "sent": hb.sent,
                                "last_error": getattr(hb, "last_error", None)} if hb is not None else None)
            st["gateway"] = {"id": self.sup.config.gateway.id, "site": self.sup.config.gateway.site,
                             "environment": self.sup.config.gateway.environment}
            return st
        return self.call(snap)

    def production(self) -> list[dict[str, Any]]:
        async def snap() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = self.sup.production()
            return out
        return self.call(snap)

    def trend(self, device: str, tag: str) -> dict[str, Any] | None:
        """The tag's last hour (`gateway.trend`); None when the device or the tag has none."""
        async def snap() -> dict[str, Any] | None:
            p = self.sup.pipelines.get(device)
            return p.trend.series(tag, time.time()) if p is not None and p.trend is not None else None
        return self.call(snap)

    def oee_live(self) -> dict[str, dict[str, Any]]:
        """Each machine's running shift's OEE so far, read on the gateway's loop."""
        async def snap() -> dict[str, dict[str, Any]]:
            return self.sup.oee_live(time.time())
        return self.call(snap)

    def live_values(self) -> dict[str, list[dict[str, Any]]]:
        async def snap() -> dict[str, list[dict[str, Any]]]:
            return {name: [_sample(s) for _, s in sorted(p.last.items())]
                    for name, p in self.sup.pipelines.items()}
        return self.call(snap)

    def apply(self, cfg: Config) -> dict[str, Any]:
        """Apply a saved configuration live (only what changed restarts)."""
        return self.call(lambda: self.sup.apply(cfg), timeout=60.0)

    def test_read(self, cfg: Config, device: str, timeout: float = 10.0) -> dict[str, Any]:
        """One batch from a fresh driver for `device` of `cfg` (which need not be saved yet)."""
        spec = cfg.devices[device]

        async def read() -> dict[str, Any]:
            driver = spec.driver(f"{device}-test", spec.config)
            started = time.monotonic()
            try:
                # a driver with a connection test of its own (SQL: grants, read-only, the select list)
                probe = getattr(spec.driver, "check_connection", None)
                findings = (await asyncio.wait_for(asyncio.to_thread(probe, spec.config), timeout * 2)
                            if probe is not None else None)
                await asyncio.wait_for(driver.start(), timeout)
                it = driver.samples().__aiter__()
                batch = await asyncio.wait_for(it.__anext__(), timeout)
                out = {"device": device, "ms": round((time.monotonic() - started) * 1000, 1),
                       "samples": [_sample(s) for s in batch]}
                return out if findings is None else dict(out, findings=findings)
            except (asyncio.TimeoutError, StopAsyncIteration):
                return {"device": device, "error": f"no reading within {timeout:.0f} s", "samples": []}
            finally:
                try:
                    await asyncio.wait_for(driver.stop(), 5.0)
                except Exception:  # the answer is the reading, not the goodbye
                    pass
        return self.call(read, timeout=timeout * 2 + 10)

    def browse(self, cfg: Config, device: str, node: str | None, depth: int = 1) -> list[dict[str, Any]]:
        from drivers.opcua.browse import browse
        spec = cfg.devices[device]
        pki = self.sup.state_dir / "pki"
        return self.call(lambda: browse(spec.config, node, depth, device=device, pki_root=pki), timeout=40.0)

    def connection_test(self, cfg: Config, sink: str) -> list[dict[str, str]]:
        """The same findings as `linebridge odoo check` (Odoo), or a connect-and-disconnect (MQTT, a label
        printer: for IPP a Get-Jobs)."""
        sc = cfg.sinks[sink]
        if isinstance(sc, OdooSinkConfig):
            from gateway.sinks.odoo.check import check

            async def run_check() -> list[dict[str, str]]:
                return [{"level": f.level, "text": f.text} for f in await check(cfg, sc)]
            return self.call(run_check, timeout=max(60.0, sc.timeout * 6))
        if isinstance(sc, LabelSinkConfig):
            from gateway.sinks.labels.printer import printer_for

            async def reach() -> list[dict[str, str]]:
                error = await printer_for(sc).probe()
                if error:
                    return [{"level": "blocker", "text": f"label printer {sc.url}: {error}"}]
                return [{"level": "ok", "text": f"label printer {sc.url} answered"}]
            return self.call(reach, timeout=sc.timeout * 3 + 10)
        from gateway.sinks.mqtt.link import MqttLink

        async def probe() -> list[dict[str, str]]:
            error = await MqttLink(sc).probe()
            if error:
                return [{"level": "blocker", "text": f"MQTT broker {sc.url}: {error}"}]
            return [{"level": "ok", "text": f"MQTT broker {sc.url} accepted the connection "
                                            f"(client id {sc.client_id})"}]
        return self.call(probe, timeout=sc.timeout * 3 + 10)

    def retry_sink(self, sink: str) -> bool | None:
        """End `sink`'s retry wait now; True when it was waiting, None when there is no such sink."""
        async def retry() -> bool | None:
            s = self.sup.sinks.get(sink)
            if s is None:
                return None
            waiting = s.stats.next_retry_at is not None
            s.retry_now.set()
            s.wake.set()
            return waiting
        return self.call(retry, timeout=5.0)

    def restart(self, by: str) -> bool:
        """Ask the gateway to stop cleanly and start again; False when this host cannot restart it."""
        async def ask() -> bool:
            return bool(self.sup.request_restart(by))
        return bool(self.call(ask, timeout=5.0))

    def labels(self) -> list[dict[str, Any]]:
        """Every label printer's printed, held and waiting labels (newest printed first)."""
        async def snap() -> list[dict[str, Any]]:
            return [s.labels() for s in self.sup.sinks.values() if hasattr(s, "labels")]
        return list(self.call(snap, timeout=5.0))

    def label_preview(self, sink: str, template: str) -> tuple[str, bytes] | None:
        """A template of printer `sink` filled with sample values: (media type, ZPL or PDF); None if unknown."""
        sc = self.config.sinks.get(sink)
        if not isinstance(sc, LabelSinkConfig) or template not in sc.templates:
            return None
        from gateway.sinks.labels.printer import printer_for
        from gateway.sinks.labels.template import SAMPLE_VALUES
        printer = printer_for(sc)
        body = printer.render(sc.templates[template], SAMPLE_VALUES)
        return ("application/pdf" if printer.language == "pdf" else "text/plain; charset=utf-8"), body

    def label_action(self, sink: str, label_id: str, action: str, who: str) -> Any:
        """`reprint` (queue a printed or held label again) or `confirm` (a held label is on paper),
        journaled with `who`; None when there is no such printer or label."""
        async def act() -> Any:
            s = self.sup.sinks.get(sink)
            if s is None or not hasattr(s, "reprint"):
                return None
            if action == "reprint":
                return await s.reprint(label_id, who)
            return await s.discard(label_id, who) or None
        return self.call(act, timeout=10.0)

    def wake_sink(self, sink: str) -> None:
        """After a replay: the sink looks at its queue now rather than at its next poll."""
        async def wake() -> None:
            s = self.sup.sinks.get(sink)
            if s is not None:
                s.wake.set()
        self.call(wake, timeout=5.0)


async def _run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return await fn()
