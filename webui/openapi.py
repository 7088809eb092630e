"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

It owns the description of every API route: parameters, request bodies and
response shapes, and the two ways in (the session cookie with the
`X-CSRF-Token` header on changes, or a bearer token for /metrics). Keep it in
step with `webui.api`; tests check that every route of the app is described
and that the API answers as described.
"""
from __future__ import annotations

from typing import Any

from gateway import __version__

_ERR = {"$ref": "#/components/schemas/Error"}
_OBJ = {"type": "object"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: dict[str, Any] | None = None, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, change: bool = False,
        errors: tuple[int, ...] = ()) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "OK", **_json(ok or _OBJ)},
                                                           "401": {"description": "no session", **_json(_ERR)}}}
    if change:
        op["responses"]["403"] = {"description": "role may not change this, or CSRF token missing", **_json(_ERR)}
        op["parameters"] = [{"$ref": "#/components/parameters/Csrf"}]
    for code in errors:
        op["responses"][str(code)] = {"description": _ERRORS[code], **_json(_ERR)}
    if params:
        op["parameters"] = op.get("parameters", []) + params
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    return op


_ERRORS = {403: "only an admin may see this", 404: "not found", 409: "conflict: it exists, or the configuration changed since it was read",
           422: "the change does not validate; `problems` names each key", 502: "the device did not answer",
           503: "the gateway did not answer in time"}


def _path(name: str, desc: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": desc, "schema": {"type": "string"}}


_SECTION_BODY = {"type": "object", "required": ["section"],
                 "properties": {"section": {"type": "object"},
                                "version": {"type": "string", "description": "the version read; 409 if stale"}}}
_NEW_BODY = {"type": "object", "required": ["name", "section"],
             "properties": {"name": {"type": "string", "minLength": 1}, "section": {"type": "object"},
                            "version": {"type": "string"}}}
_SAVED = {"type": "object", "required": ["saved", "applied", "version"],
          "properties": {"saved": {"$ref": "#/components/schemas/HistoryEntry"}, "applied": _OBJ,
                         "version": {"type": "string"}}}
_OPT = {"type": "object"}
_TIME = {"type": ["number", "null"], "description": "epoch seconds"}
_MACHINE = {"type": "object", "required": ["machine", "work_center", "devices", "work_orders", "shift",
                                           "shifts_configured", "since_start", "started", "deliveries"],
            "properties": {
                "machine": {"type": "string"}, "work_center": {"type": ["string", "null"]},
                "devices": {"type": "array", "items": {"type": "string"}},
                "work_orders": {"type": "array", "items": {"type": "object", "required": ["sink", "name", "age_s"], "properties": {
                    "sink": {"type": "string"}, "name": {"type": ["string", "null"], "description": "null: no open order"},
                    "production": {"type": ["string", "null"]}, "age_s": {"type": "number"}}}},
                "shift": {"type": ["object", "null"], "properties": {
                    "name": {"type": "string"}, "start": {"type": "number"}, "end": {"type": "number"},
                    "good": {"type": "number"}, "scrap": {"type": "number"}}},
                "shifts_configured": {"type": "boolean"},
                "since_start": {"type": "object", "required": ["good", "scrap", "last_event", "rate_per_min"], "properties": {
                    "good": {"type": "number"}, "scrap": {"type": "number"}, "last_event": _TIME,
                    "rate_per_min": {"type": ["number", "null"]}, "rate_window_s": {"type": "number"}}},
                "started": {"type": "number"},
                "deliveries": {"type": "array", "items": {"type": "object", "required": ["sink", "type", "at"], "properties": {
                    "sink": {"type": "string"}, "type": {"type": "string", "enum": ["odoo", "mqtt"]}, "at": _TIME}}}}}
_PRODUCTION = {"type": "object", "required": ["machines"],
               "properties": {"machines": {"type": "array", "items": _MACHINE}}}


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/v1/status": {"get": _op("Health: uptime, intake counters, sinks, devices, heartbeat, supervised tasks "
                                      "(state, restarts), whether all are healthy, and `light`: the worst state with its "
                                      "reason and since when (the header's status light)",
                                      errors=(503,))},
        "/api/v1/production": {"get": _op(
            "Each machine now (the overview): its work center and devices, the open work order each Odoo sink "
            "last resolved for it, good parts and scrap in the running shift (with a shift calendar) and since "
            "the gateway started, the rate in good parts per minute over the last five minutes, and when each "
            "sink last delivered one of its events", _PRODUCTION, errors=(503,))},
        "/api/v1/identity": {"get": _op("Device identity: gateway id, signing key id and public key, TLS "
                                        "certificate fingerprint", {"$ref": "#/components/schemas/Identity"})},
        "/api/v1/me": {"get": _op("The session's user, role and CSRF token")},
        "/api/v1/me/password": {"post": _op("Change one's own password", body={
            "type": "object", "required": ["current", "password"],
            "properties": {"current": {"type": "string"}, "password": {"type": "string"}}},
            change=True, errors=(422,))},
        "/api/v1/devices": {
            "get": _op("Devices with their settings (secrets masked), health and live values",
                       {"type": "object", "required": ["version", "devices"],
                        "properties": {"version": {"type": "string"},
                                       "devices": {"type": "array", "items": {"$ref": "#/components/schemas/Device"}}}},
                       errors=(503,)),
            "post": _op("Add a device (validated, saved, applied live)", _SAVED, _NEW_BODY, change=True,
                        errors=(409, 422, 503))},
        "/api/v1/shifts": {"get": _op("The shift calendar"),
                           "put": _op("Replace the shift calendar", _SAVED, {
                               "type": "object", "required": ["shifts"],
                               "properties": {"shifts": {"type": ["object", "null"],
                                                         "description": "the calendar; null removes it"},
                                              "version": {"type": "string"}}},
                               change=True, errors=(409, 422, 503))},
        "/api/v1/config": {"get": _op("The whole configuration as data, secrets masked, with its version"),
                           "put": _op("Replace the whole configuration file; a masked secret keeps the stored one. "
                                      "A technician may change only [devices], [rules], [machines] and [shifts] "
                                      "(403 names any other section touched)", _SAVED, {
                               "type": "object", "required": ["text"],
                               "properties": {"text": {"type": "string"}, "version": {"type": "string"}}},
                               change=True, errors=(409, 422, 503))},
        "/api/v1/config/export": {"get": {
            "summary": "The configuration file to download, every secret masked (import it with PUT /api/v1/config: "
                       "masked secrets keep the stored ones)",
            "responses": {"200": {"description": "the TOML file",
                                  "content": {"application/toml": {"schema": {"type": "string"}}}},
                          "401": {"description": "no session", **_json(_ERR)}}}},
        "/api/v1/backup": {"post": {**_op(
            "A backup archive (linebridge-backup/1, tar.gz): configuration and history with secrets masked, "
            "users; with a passphrase (12+ characters) also the secrets and the device key, sealed (scrypt, "
            "AES-256-GCM); admin only", body={"type": "object", "properties": {"passphrase": {"type": "string"}}},
            change=True, errors=(422,)), "responses": {
                "200": {"description": "the archive", "content": {"application/gzip": {
                    "schema": {"type": "string", "format": "binary"}}}},
                "401": {"description": "no session", **_json(_ERR)},
                "403": {"description": "role may not change this, or CSRF token missing", **_json(_ERR)},
                "422": {"description": _ERRORS[422], **_json(_ERR)}}}},
        "/api/v1/restore": {"post": {
            "summary": "Restore a backup archive (the body); checked whole before anything is written; the "
                       "passphrase in X-Backup-Passphrase opens its sealed part; device_key=1 takes the device key "
                       "too (only onto a gateway that has not delivered; a restart applies it); admin only",
            "parameters": [{"$ref": "#/components/parameters/Csrf"},
                           {"name": "X-Backup-Passphrase", "in": "header", "required": False,
                            "schema": {"type": "string"}},
                           {"name": "device_key", "in": "query", "required": False,
                            "schema": {"type": "string", "enum": ["0", "1", "true", "false"]}}],
            "requestBody": {"required": True, "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}},
            "responses": {"200": {"description": "what was restored", **_json(_OBJ)},
                          "401": {"description": "no session", **_json(_ERR)},
                          "403": {"description": "role may not change this, or CSRF token missing", **_json(_ERR)},
                          "422": {"description": "nothing was restored: `problems` names each reason",
                                  **_json(_ERR)}}}},
        "/api/v1/config/history": {"get": _op("Configuration history, newest first", {
            "type": "object", "properties": {"history": {"type": "array",
                                                         "items": {"$ref": "#/components/schemas/HistoryEntry"}}}})},
        "/api/v1/config/history/{entry}": {"get": _op("What one history entry changed (a unified diff)",
                                                      params=[_int_path("entry")], errors=(422,))},
        "/api/v1/config/history/{entry}/rollback": {"post": _op(
            "Make the configuration what it was after this entry (a new, audited change)", _SAVED,
            params=[_int_path("entry")], change=True, errors=(422, 503))},
        "/api/v1/queue": {"get": _op("Store statistics: per class and sink, counts, bytes, ages, backlog, "
                                     "dead letters")},
        "/api/v1/held": {"get": _op(
            "Events a sink holds in a lane (its work center), waiting for an open work order; the other "
            "lanes go on", {"type": "object", "required": ["held"], "properties": {"held": {
                "type": "array", "items": {"type": "object", "required": ["sink", "seq", "lane", "since", "event"],
                                           "properties": {"sink": {"type": "string"}, "seq": {"type": "integer"},
                                                          "lane": {"type": "string"}, "since": {"type": "number"},
                                                          "reason": {"type": "string"}, "event": _OBJ}}}}},
            params=[{"name": "sink", "in": "query", "schema": {"type": "string"}}])},
        "/api/v1/dead-letters": {"get": _op("Dead letters, optionally of one sink, kind or reason, a page at "
                                            "a time (`total` counts them all)", params=[
            {"name": "sink", "in": "query", "schema": {"type": "string"}},
            {"name": "kind", "in": "query", "schema": {"type": "string"}},
            {"name": "reason", "in": "query", "schema": {"type": "string"}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}])},
        "/api/v1/dead-letters/groups": {"get": _op(
            "Dead letters grouped by sink and reason (numbers as N), with counts per kind", {
                "type": "object", "required": ["groups", "total"], "properties": {
                    "groups": {"type": "array", "items": {"type": "object", "required": ["sink", "reason", "count"],
                               "properties": {"sink": {"type": "string"}, "reason": {"type": "string"},
                                              "example": {"type": "string"}, "count": {"type": "integer"},
                                              "kinds": {"type": "object"}}}},
                    "total": {"type": "integer"}}})},
        "/api/v1/dead-letters/{sink}/{seq}": {"get": _op("One dead letter: the event, the error, attempts",
                                                         params=[_path("sink", "sink name"), _int_path("seq")],
                                                         errors=(404,))},
        "/api/v1/dead-letters/{sink}/replay": {"post": _op(
            "Send dead letters back to their sink (all, some seqs, or a kind); audited in the journal",
            body=_SEQS, params=[_path("sink", "sink name")], change=True, errors=(422,))},
        "/api/v1/dead-letters/{sink}/discard": {"post": _op(
            "Discard dead letters for good; audited in the journal",
            body=_SEQS, params=[_path("sink", "sink name")], change=True, errors=(422,))},
        "/api/v1/journal": {"get": _op("The newest delivery journal entries and the chain's verdict", params=[
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}])},
        "/api/v1/logs/download": {"get": {"summary": "Every log line the console keeps, as a text file (UTC)",
                                          "responses": {"200": {"description": "the lines", "content": {
                                              "text/plain": {"schema": {"type": "string"}}}},
                                                        "401": {"description": "no session", **_json(_ERR)}}}},
        "/api/v1/logs": {"get": _op("The gateway's recent log lines", params=[
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 2000}},
            {"name": "level", "in": "query", "schema": {"type": "string",
                                                        "enum": ["DEBUG", "INFO", "WARNING", "ERROR"]}},
            {"name": "contains", "in": "query", "schema": {"type": "string"}},
            {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}}])},
        "/api/v1/users": {"get": _op("Users and roles"),
                          "post": _op("Add a user", body={
                              "type": "object", "required": ["name", "role", "password"],
                              "properties": {"name": {"type": "string"},
                                             "role": {"type": "string", "enum": ["admin", "technician", "viewer"]},
                                             "password": {"type": "string"}}}, change=True, errors=(422,))},
        "/api/v1/users/{name}": {
            "put": _op("Change a user's role or password", body={
                "type": "object", "properties": {"role": {"type": "string", "enum": ["admin", "technician", "viewer"]},
                                                 "password": {"type": "string"}}},
                params=[_path("name", "user name")], change=True, errors=(422,)),
            "delete": _op("Remove a user", params=[_path("name", "user name")], change=True, errors=(422,))},
        "/api/v1/system": {"get": _op("The appliance's NTP servers and SSH access (`managed`: false where "
                                      "the host manages them), the gateway's own clock, the SSH server's "
                                      "state on the device, and version facts", {
            "type": "object", "required": ["time", "ssh", "clock", "about", "can_restart"],
            "properties": {"time": {"$ref": "#/components/schemas/Time"},
                           "ssh": {"$ref": "#/components/schemas/Ssh"},
                           "clock": {"$ref": "#/components/schemas/Clock"},
                           "about": {"$ref": "#/components/schemas/About"},
                           "can_restart": {"type": "boolean"}}})},
        "/api/v1/devices/{name}/tags/import": {"post": _op(
            "Import tags from CSV (first row: name and the tag's keys); merged into the device's tags or replacing "
            "them; validated and applied like any change, each problem naming its row and column",
            _SAVED, {"type": "object", "required": ["csv"],
                     "properties": {"csv": {"type": "string"}, "mode": {"type": "string", "enum": ["merge", "replace"]},
                                    "version": {"type": "string"}}},
            params=[_path("name", "device name")], change=True, errors=(404, 409, 422, 503))},
        "/api/v1/devices/{name}/trend/{tag}": {"get": _op(
            "A tag's last hour from memory: one bucket per `step_s` with its first time, lowest, highest and "
            "last good value", {"type": "object", "required": ["device", "tag", "step_s", "window_s", "points"],
                                "properties": {"device": {"type": "string"}, "tag": {"type": "string"},
                                               "step_s": {"type": "number"}, "window_s": {"type": "number"},
                                               "points": {"type": "array", "items": {
                                                   "type": "array", "items": {"type": "number"},
                                                   "minItems": 4, "maxItems": 4}}}},
            params=[_path("name", "device name"), _path("tag", "tag name")], errors=(404,))},
        "/api/v1/oee": {"get": _op(
            "OEE per machine: the running shift so far (`running`, null between shifts or without [shifts]) and the "
            "kept shifts and days of the last `days` days (at most 60), oldest first",
            {"type": "object", "required": ["timezone", "shift_names", "machines"],
             "properties": {"timezone": {"type": ["string", "null"]},
                            "shift_names": {"type": "array", "items": {"type": "string"}},
                            "machines": {"type": "object", "additionalProperties": {
                                "type": "object", "required": ["running", "shifts", "days"],
                                "properties": {"running": {"oneOf": [{"$ref": "#/components/schemas/OeeRecord"},
                                                                     {"type": "null"}]},
                                               "shifts": {"type": "array",
                                                          "items": {"$ref": "#/components/schemas/OeeRecord"}},
                                               "days": {"type": "array",
                                                        "items": {"$ref": "#/components/schemas/OeeRecord"}}}}}}},
            params=[{"name": "days", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 60}}])},
        "/api/v1/oee/export.csv": {"get": {
            "summary": "The kept OEE records and each running shift so far as CSV (one row per machine and "
                       "shift or day; empty cells for figures that are not known)",
            "parameters": [{"name": "machine", "in": "query", "schema": {"type": "string"}},
                           {"name": "period", "in": "query", "schema": {"type": "string",
                                                                        "enum": ["all", "shift", "day"]}}],
            "responses": {"200": {"description": "the records", "content": {"text/csv": {"schema": {"type": "string"}}}},
                          "400": {"description": "period is not all, shift or day", **_json(_ERR)},
                          "401": {"description": "no session", **_json(_ERR)},
                          "404": {"description": "no such machine", **_json(_ERR)}}}},
        "/api/v1/about": {"get": _op("Version, host and uptime of this gateway",
                                     {"$ref": "#/components/schemas/About"})},
        "/api/v1/system/restart": {"post": {**_op(
            "Stop the gateway cleanly and start it again (same process id); admin only", change=True,
            errors=(409,)), "responses": {
                "202": {"description": "the restart begins in a moment", **_json({
                    "type": "object", "required": ["restarting"], "properties": {"restarting": {"type": "boolean"}}})},
                "401": {"description": "no session", **_json(_ERR)},
                "403": {"description": "role may not change this, or CSRF token missing", **_json(_ERR)},
                "409": {"description": "this gateway was not started by `linebridge run`", **_json(_ERR)}}}},
        "/api/v1/system/time": {"put": _op(
            "Set the NTP servers (host names or addresses; empty: DHCP's, else the fallback); admin only",
            {"$ref": "#/components/schemas/Time"},
            {"type": "object", "required": ["ntp"],
             "properties": {"ntp": {"type": "array", "items": {"type": "string"}, "maxItems": 8}}},
            change=True, errors=(409, 422))},
        "/api/v1/system/ssh": {"put": _op(
            "Set root's SSH public keys (authorized_keys lines): SSH is on while one is set; admin only",
            {"$ref": "#/components/schemas/Ssh"},
            {"type": "object", "required": ["authorized_keys"],
             "properties": {"authorized_keys": {"type": "string"}}},
            change=True, errors=(409, 422))},
        "/api/v1/openapi.json": {"get": _op("This document")},
        "/metrics": {"get": {"summary": "Prometheus metrics (session or bearer token)",
                             "security": [{"session": []}, {"bearer": []}],
                             "responses": {"200": {"description": "OK",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}},
                                           "401": {"description": "no session or token",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    }
    for what, label in (("devices", "device"), ("machines", "machine mapping"), ("rules", "rule"),
                        ("connections", "connection (Odoo or MQTT sink)")):
        item = _path("name", f"{label} name")
        if what != "devices":
            paths[f"/api/v1/{what}"] = {
                "get": _op(f"Every {label}, secrets masked", errors=(503,)),
                "post": _op(f"Add a {label} (validated, saved, applied live)", _SAVED, _NEW_BODY,
                            change=True, errors=(409, 422, 503))}
        paths[f"/api/v1/{what}/{{name}}"] = {
            "get": _op(f"One {label}, secrets masked", params=[item], errors=(404,)),
            "put": _op(f"Replace a {label}; a masked secret sent back keeps the stored one"
                       + ("; admin only" if what == "connections" else ""), _SAVED,
                       _SECTION_BODY, params=[item], change=True, errors=(409, 422, 503)),
            "delete": _op(f"Delete a {label}", _SAVED, params=[item, {"name": "version", "in": "query",
                                                                     "schema": {"type": "string"}}],
                          change=True, errors=(404, 409, 422, 503))}
    paths["/api/v1/devices/{name}/test-read"] = {"post": _op(
        "Read the device once, with its saved settings or the unsaved `section` given (an SQL device: its "
        "query once, and its connection test's `findings`: missing grants, write rights, the select list)",
        {"type": "object", "properties": {"device": {"type": "string"}, "samples": {"type": "array"},
                                          "error": {"type": "string"},
                                          "findings": {"type": "array", "items": {"type": "string"}}}},
        _OPT, params=[_path("name", "device name")], change=True, errors=(404, 422, 503))}
    paths["/api/v1/devices/{name}/browse"] = {"post": _op(
        "Browse an OPC-UA device's address space (a tag picker)", body={
            "type": "object", "properties": {"node": {"type": "string"}, "depth": {"type": "integer", "minimum": 1,
                                                                                   "maximum": 3},
                                             "section": {"type": "object"}}},
        params=[_path("name", "device name")], change=True, errors=(404, 422, 502, 503))}
    paths["/api/v1/connections/{name}/retry"] = {"post": _op(
        "Retry now: the connection's retry wait ends and it tries again at once", {
            "type": "object", "properties": {"connection": {"type": "string"}, "waiting": {"type": "boolean"}}},
        params=[_path("name", "connection name")], change=True, errors=(404, 503))}
    paths["/api/v1/labels"] = {"get": _op(
        "Label printers: printed labels (newest first), labels held for a person, waiting reprints", {
            "type": "object", "properties": {"printers": {"type": "array", "items": {"type": "object"}}}})}
    paths["/api/v1/labels/{sink}/templates/{template}/preview"] = {"get": {
        "summary": "A label template filled with sample values, as its printer gets it (ZPL text or PDF)",
        "parameters": [_path("sink", "label printer (sink) name"), _path("template", "template name")],
        "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}},
                                                               "application/pdf": {"schema": {"type": "string",
                                                                                              "format": "binary"}}}},
                      "401": {"description": "no session", **_json(_ERR)},
                      "404": {"description": _ERRORS[404], **_json(_ERR)}}}}
    for action, summary in (("reprint", "Reprint a printed or held label (journaled with who and when)"),
                            ("confirm", "A held label is on paper: it leaves the held list (journaled)")):
        paths[f"/api/v1/labels/{{sink}}/{{label_id}}/{action}"] = {"post": _op(summary, {
            "type": "object", "properties": {"sink": {"type": "string"}, "label": {"type": "string"},
                                             "action": {"type": "string"}, "queued": {}}},
            params=[_path("sink", "label printer (sink) name"), _path("label_id", "label id")],
            change=True, errors=(404, 409, 503))}
    paths["/api/v1/connections/{name}/rotate-key"] = {"post": _op(
        "Admin: check a new Odoo API key against the configured Odoo, store it where the configuration keeps "
        "it (atomically) and use it from the running sink's next call; the old key is named by fingerprint "
        "for revocation. Keys never appear in an answer", {
            "type": "object", "properties": {"old": {"type": "string"}, "new": {"type": "string"},
                                             "stored_in": {"type": "string"}, "in_use": {"type": "boolean"},
                                             "findings": {"type": "array"}, "revoke": {"type": "string"}}},
        {"type": "object", "required": ["api_key"], "properties": {"api_key": {"type": "string", "minLength": 1}}},
        params=[_path("name", "Odoo connection name")], change=True, errors=(404, 422, 503))}
    paths["/api/v1/fleet"] = {"get": _op(
        "Admin: every gateway's retained status on the heartbeat's broker (state, backlog, service levels, OEE)",
        {"type": "object", "properties": {"configured": {"type": "boolean"}, "gateways": {"type": "array"},
                                          "counts": _OBJ}}, errors=(403, 503))}
    paths["/api/v1/credentials"] = {"get": _op(
        "Admin: where each Odoo API key is kept and its fingerprint; each client certificate's expiry",
        {"type": "object", "properties": {"odoo": {"type": "array"}, "certificates": _OBJ}}, errors=(403,))}
    paths["/api/v1/connections/{name}/test"] = {"post": _op(
        "Connection test: the checks of `linebridge odoo check`, or an MQTT connect. An unsaved `section` "
        "uses a stored secret only towards its saved destination; otherwise the secret must be typed (422)", {
            "type": "object", "properties": {"findings": {"type": "array"}, "blockers": {"type": "integer"}}},
        _OPT, params=[_path("name", "connection name")], change=True, errors=(404, 422, 503))}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Linebridge gateway console API", "version": __version__,
                 "description": "The JSON API the console's pages use. Log in through the console to get a "
                                "session cookie; send the session's CSRF token (GET /api/v1/me) in "
                                "X-CSRF-Token on every change."},
        "servers": [{"url": "/"}],
        "security": [{"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "lb_session"},
                                "bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": {"Csrf": {"name": "X-CSRF-Token", "in": "header", "required": True,
                                    "schema": {"type": "string"}}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string"},
                                         "problems": {"type": "array", "items": {"type": "string"}}}},
                "HistoryEntry": {"type": "object", "required": ["id", "who", "when", "what", "version"],
                                 "properties": {"id": {"type": "integer"}, "who": {"type": "string"},
                                                "when": {"type": "number"}, "what": {"type": "string"},
                                                "version": {"type": "string"}}},
                "Identity": {"type": "object", "required": ["gateway", "key_id", "public_key"],
                             "properties": {"gateway": {"type": "string"}, "site": {"type": "string"},
                                            "environment": {"type": "string", "enum": ["dev", "test", "prod"]},
                                            "key_id": {"type": "string"}, "public_key": {"type": "string"},
                                            "tls_fingerprint_sha256": {"type": ["string", "null"]}}},
                "Time": {"type": "object", "required": ["managed", "ntp", "synchronized"],
                         "properties": {"managed": {"type": "boolean"},
                                        "ntp": {"type": "array", "items": {"type": "string"}},
                                        "fallback": {"type": "array", "items": {"type": "string"}},
                                        "synchronized": {"type": ["boolean", "null"]}}},
                "Clock": {"type": "object", "required": ["now", "utc", "local", "zone", "utc_offset_s",
                                                         "synchronized", "daemons"],
                          "properties": {"now": {"type": "number"}, "utc": {"type": "string"},
                                         "local": {"type": "string"}, "zone": {"type": "string"},
                                         "utc_offset_s": {"type": "integer"},
                                         "synchronized": {"type": ["boolean", "null"]},
                                         "esterror_us": {"type": ["integer", "null"]},
                                         "maxerror_us": {"type": ["integer", "null"]},
                                         "reason": {"type": "string"},
                                         "daemons": {"type": "array", "items": {"type": "string"}}}},
                "OeeRecord": {"type": "object", "required": [
                    "machine", "period", "day", "shift", "start", "end", "planned_s", "downtime_s", "running_s",
                    "good", "scrap", "availability", "performance", "quality", "oee"], "properties": {
                    "machine": {"type": "string"}, "period": {"type": "string", "enum": ["shift", "day", "running"]},
                    "day": {"type": "string"}, "shift": {"type": "string"}, "start": {"type": "string"},
                    "end": {"type": "string"}, "planned_s": {"type": "number"}, "downtime_s": {"type": "number"},
                    "running_s": {"type": "number"}, "good": {"type": "number"}, "scrap": {"type": "number"},
                    "ideal_cycle_s": {"type": ["number", "null"]},
                    **{k: {"type": ["number", "null"]} for k in ("availability", "performance", "quality", "oee")},
                    "down": {"type": "boolean"}}},
                "About": {"type": "object", "required": ["version", "gateway", "python", "os", "uptime_s"],
                          "properties": {"version": {"type": "string"}, "gateway": {"type": "string"},
                                         "hostname": {"type": "string"}, "python": {"type": "string"},
                                         "implementation": {"type": "string"}, "os": {"type": "string"},
                                         "machine": {"type": "string"}, "started": {"type": "number"},
                                         "uptime_s": {"type": "number"}, "pid": {"type": "integer"}}},
                "Ssh": {"type": "object", "required": ["managed", "enabled", "keys"],
                        "properties": {"managed": {"type": "boolean"}, "enabled": {"type": "boolean"},
                                       "keys": {"type": "array", "items": {
                                           "type": "object", "properties": {
                                               "type": {"type": "string"}, "comment": {"type": "string"},
                                               "fingerprint": {"type": "string"},
                                               "line": {"type": "string"}}}},
                                       "device": {"type": "object", "properties": {
                                           "server_running": {"type": "boolean"},
                                           "daemons": {"type": "array", "items": {"type": "string"}},
                                           "port_22_listening": {"type": "boolean"}}}}},
                "Device": {"type": "object", "required": ["name", "section", "values"],
                           "properties": {"name": {"type": "string"}, "type": {"type": ["string", "null"]},
                                          "machine": {"type": ["string", "null"]}, "section": {"type": "object"},
                                          "health": {"type": ["object", "null"]},
                                          "values": {"type": "array", "items": {"$ref": "#/components/schemas/Value"}}}},
                "Value": {"type": "object", "required": ["tag", "quality"],
                          "properties": {"tag": {"type": "string"}, "value": {},
                                         "quality": {"type": "string"}, "ts": {"type": "number"},
                                         "error": {"type": ["string", "null"]}}},
            },
        },
    }


def _int_path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}


_SEQS = {"type": "object", "properties": {"seqs": {"type": "array", "items": {"type": "integer"}},
                                          "kind": {"type": "string"}, "reason": {"type": "string"}}}
