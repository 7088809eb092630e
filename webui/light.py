"""The status light in every page's header: the worst state of the gateway's connections, devices and
tasks, with its reason and since when.

It owns one pure function over the status snapshot the API already serves (`/api/v1/status`), so the
light costs nothing beyond that snapshot and says the same thing as the pages it links to. Levels:

- `bad`: something does not work now — a connection waiting to retry or dead-lettering, a device not
  connected, a supervised task dead or past its restart budget;
- `warn`: it works, but a person has something to do or watch — dead letters or held values waiting, a
  device that answered with an error since it connected, a task restarting, a connection starting, a
  client certificate that expires within 30 days;
- `ok`: every connection and device works and nothing waits for a person.
"""
from __future__ import annotations

from typing import Any

LEVELS = ("ok", "warn", "bad")
#: sink states that mean delivery does not happen now
SINK_BAD = {"retrying", "dead-lettering", "disconnected", "error"}
SINK_WARN = {"starting", "connecting", "paused", "pending"}


def _item(level: str, what: str, reason: str, since: float | None, page: str) -> dict[str, Any]:
    return {"level": level, "what": what, "reason": reason, "since": since, "page": page}


def light(status: dict[str, Any]) -> dict[str, Any]:
    """`{"level", "reason", "since", "problems": [...]}` for a `/api/v1/status` snapshot."""
    items: list[dict[str, Any]] = []
    for name, s in sorted((status.get("sinks") or {}).items()):
        label = f"{'MQTT' if s.get('type') == 'mqtt' else 'Odoo'} connection {name}"
        state = s.get("state", "")
        if state in SINK_BAD:
            items.append(_item("bad", label, f"{state}: {s.get('last_error') or 'no answer'}",
                               s.get("last_error_at"), "connections"))
        elif state in SINK_WARN:
            items.append(_item("warn", label, state + (f": {s['last_error']}" if s.get("last_error") else ""),
                               s.get("last_error_at"), "connections"))
        if s.get("dead_letters"):
            items.append(_item("warn", label, f"{s['dead_letters']} dead letter(s) wait for a person", None, "queue"))
        if s.get("held_for_person"):
            items.append(_item("warn", label, f"{s['held_for_person']} event(s) held for a person", None, "queue"))
    for name, d in sorted((status.get("devices") or {}).items()):
        if not d.get("connected"):
            items.append(_item("bad", f"device {name}", "not connected" + (f": {d['last_error']}" if d.get("last_error")
                                                                           else ""), d.get("last_error_at"), "devices"))
        elif d.get("last_error"):
            items.append(_item("warn", f"device {name}", d["last_error"], d.get("last_error_at"), "devices"))
    for name, t in sorted((status.get("tasks") or {}).items()):
        if t.get("state") == "dead":
            items.append(_item("bad", f"task {name}", f"dead: {t.get('last_error') or 'ended'}", t.get("last_death"),
                               "logs"))
        elif t.get("state") == "restarting":
            items.append(_item("warn", f"task {name}", f"restarting after: {t.get('last_error') or 'it ended'}",
                               t.get("last_death"), "logs"))
    for name, cert in sorted((status.get("certificates") or {}).items()):
        if cert.get("expiring"):
            reason = (cert["error"] if cert.get("error") else
                      f"client certificate expires {cert.get('not_after')} ({cert.get('days_left')} day(s) left)")
            items.append(_item("warn", f"connection {name}", reason, None, "fleet"))
    if status.get("healthy") is False and not any(i["level"] == "bad" and i["what"].startswith("task ") for i in items):
        items.append(_item("bad", "gateway", "a task keeps failing past its restart window: the watchdog will "
                                              "restart the gateway", None, "logs"))
    if not items:
        return {"level": "ok", "reason": "every connection and device works", "since": None, "problems": []}
    worst = max(LEVELS.index(i["level"]) for i in items)
    top = [i for i in items if LEVELS.index(i["level"]) == worst]
    times = [i["since"] for i in top if i["since"]]
    first = top[0]
    more = f" (and {len(top) - 1} more)" if len(top) > 1 else ""
    ranked = sorted(items, key=lambda i: -LEVELS.index(i["level"]))
    return {"level": LEVELS[worst], "reason": f"{first['what']}: {first['reason']}{more}",
            "since": min(times) if times else None, "page": first["page"], "problems": ranked[:8]}
