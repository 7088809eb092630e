"""What the soak compares at the end: the plant's ground truth against Odoo and against the broker.

It owns the Odoo master data the extra machines need (a work center, a
manufacturing order with its work order in progress and an equipment each,
made over JSON-RPC like an integrator would), the reconciliation of Odoo's
records with the ground truth in units (`lost`, `doubled`), and the MQTT
auditor: a persistent QoS 1 subscription that records every envelope, counts
at-least-once repeats apart, sums production and scrap per machine over
distinct event ids, and checks that events of each class arrive in store
order (first deliveries only: a repeat after a reconnect may come late).
"""
from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def _rpc(port: int, model: str, method: str, args: list[Any], kw: dict[str, Any] | None = None) -> Any:
    body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw",
        "args": ["sandbox", 2, "admin", model, method, args] + ([kw] if kw else [])}}
    reply = httpx.post(f"http://127.0.0.1:{port}/jsonrpc", json=body, timeout=30).json()
    if "error" in reply:
        raise RuntimeError(f"Odoo {model}.{method}: {reply['error'].get('data', {}).get('message', reply['error'])}")
    return reply["result"]


def prepare_odoo(port: int, machines: list[str]) -> None:
    """Work center, order in progress, work order and equipment for every machine the demo lacks."""
    (part,) = _rpc(port, "product.product", "search", [[["default_code", "=", "PART-01"]]])
    quants = _rpc(port, "stock.quant", "search", [[["product_id", "=", part]]])
    _rpc(port, "stock.quant", "write", [quants, {"quantity": 100_000_000.0}])  # scrap never runs dry
    for name in machines:
        if _rpc(port, "mrp.workcenter", "search", [[["code", "=", name]]]):
            continue
        wc = _rpc(port, "mrp.workcenter", "create", [{"name": f"{name} Machining", "code": name,
                                                      "resource_calendar_id": 1}])
        mo = _rpc(port, "mrp.production", "create", [{"product_id": part, "product_qty": 100_000_000,
                                                      "qty_producing": 0, "state": "progress"}])
        _rpc(port, "mrp.workorder", "create", [{"name": "Machining", "production_id": mo, "workcenter_id": wc,
                                                "state": "progress"}])
        _rpc(port, "maintenance.equipment", "create", [{"name": name, "serial_no": name, "workcenter_id": wc}])


def units(truth: dict[str, Any], odoo: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`lost` and `doubled` in units (parts, scrapped parts, downtimes), and where they are."""
    lost = doubled = 0
    detail: dict[str, dict[str, float]] = {}
    for machine, t in (truth.get("machines") or {}).items():
        o = odoo.get(machine) or {"qty_producing": 0.0, "scrap": 0.0, "downtimes": 0, "open_downtimes": 0}
        diffs = {"parts": o["qty_producing"] - t["parts"], "scrap": o["scrap"] - t["scrap"],
                 "downtimes": o["downtimes"] - t["alarms"], "open_downtimes": o["open_downtimes"]}
        lost += int(max(0, -diffs["parts"]) + max(0, -diffs["scrap"]) + max(0, -diffs["downtimes"])
                    + diffs["open_downtimes"])
        doubled += int(max(0, diffs["parts"]) + max(0, diffs["scrap"]) + max(0, diffs["downtimes"]))
        if any(diffs.values()):
            detail[machine] = diffs
    return {"lost": lost, "doubled": doubled, "detail": detail}


class MqttAudit:
    """A persistent subscriber to everything the gateway publishes under `prefix`."""

    def __init__(self, port: int, prefix: str, client_id: str) -> None:
        self.prefix = prefix
        self.lock = threading.Lock()
        self.seen_ids: dict[str, int] = {}          # business event id -> deliveries
        self.sums: dict[tuple[str, str], float] = {}  # (kind, machine) -> quantity over distinct ids
        self.alarms: dict[str, int] = {}            # machine -> distinct downtime starts
        self.alarm_mismatch: dict[str, list[int]] = {}   # machine -> [plant alarms, downtime starts received]
        self.telemetry_seen = bytearray()            # bit per seq
        self.telemetry = 0
        self.repeats = 0
        self.out_of_order = 0
        self.last_new: dict[str, int] = {"business": 0, "telemetry": 0}
        self.status_messages = 0
        self.bad = 0
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                                  protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(0.1, 1.0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.max_inflight_messages_set(1000)
        self.client.connect_async("127.0.0.1", port, keepalive=20)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if not rc.is_failure:
            client.subscribe(f"{self.prefix}/#", qos=1)
            self.connected.set()

    def _seen_telemetry(self, seq: int) -> bool:
        byte, bit = divmod(seq, 8)
        if byte >= len(self.telemetry_seen):
            self.telemetry_seen.extend(bytes(max(byte + 1 - len(self.telemetry_seen), 1 << 16)))
        was = bool(self.telemetry_seen[byte] & (1 << bit))
        self.telemetry_seen[byte] |= 1 << bit
        return was

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        rest = msg.topic[len(self.prefix) + 1:]
        if rest == "status":
            self.status_messages += 1
            return
        try:
            ev = json.loads(msg.payload)
            seq = int(ev["seq"])
        except (ValueError, KeyError, TypeError):
            self.bad += 1
            return
        with self.lock:
            if rest.startswith("telemetry/"):
                cls = "telemetry"
                repeat = self._seen_telemetry(seq)
                if not repeat:
                    self.telemetry += 1
            else:
                cls = "business"
                n = self.seen_ids.get(ev["id"], 0)
                self.seen_ids[ev["id"]] = n + 1
                repeat = n > 0
                if not repeat:
                    machine = (ev.get("context") or {}).get("machine") or "?"
                    kind = ev.get("kind")
                    if kind in ("production", "scrap"):
                        key = (kind, machine)
                        self.sums[key] = self.sums.get(key, 0.0) + float((ev.get("data") or {}).get("quantity", 0))
                    elif kind == "downtime_start":
                        self.alarms[machine] = self.alarms.get(machine, 0) + 1
            if repeat:
                self.repeats += 1
                return
            if seq < self.last_new[cls]:
                self.out_of_order += 1
            self.last_new[cls] = max(self.last_new[cls], seq)

    def compare(self, truth: dict[str, Any]) -> dict[str, Any]:
        """Production and scrap received over MQTT against the ground truth, in units."""
        lost = doubled = 0
        with self.lock:
            for machine, t in (truth.get("machines") or {}).items():
                for kind, want in (("production", t["parts"]), ("scrap", t["scrap"])):
                    got = self.sums.get((kind, machine), 0.0)
                    lost += int(max(0, want - got))
                    doubled += int(max(0, got - want))
                if self.alarms.get(machine, 0) != t["alarms"]:
                    self.alarm_mismatch[machine] = [t["alarms"], self.alarms.get(machine, 0)]
            return {"mqtt_lost": lost, "mqtt_alarm_mismatch": dict(self.alarm_mismatch), "mqtt_doubled": doubled, "mqtt_repeats": self.repeats,
                    "mqtt_out_of_order": self.out_of_order, "mqtt_business": len(self.seen_ids),
                    "mqtt_telemetry": self.telemetry, "mqtt_status": self.status_messages,
                    "mqtt_unreadable": self.bad}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
