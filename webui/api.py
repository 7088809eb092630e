"""The JSON API under /api/v1 that the pages use, and /metrics.

Every route answers JSON; errors are `{"error": ..., "problems": [...]}` with
401 (no session), 403 (role or CSRF, or a section the role may not change),
404, 409 (the configuration changed since it was read), 422 (the change does
not validate: every problem, each naming its key) or 503 (the gateway did not answer in time). Changes to the
configuration go through `ConfigFile` (validated, saved atomically, recorded
in the history with who did it) and are then applied live by the supervisor.
Which role may change which section, and where a stored secret may be sent,
is `webui.guard`'s to say. The routes are described by `webui.openapi` at
/api/v1/openapi.json.
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from gateway import __version__
from gateway.config import name_problem
from gateway.errors import TransientDeliveryError
from webui import metrics as metrics_mod
from webui import openapi
from webui import hoststate, system, tagcsv
from webui.accounts import AccountError
from webui.app import console
from webui.bridge import GatewayBusy
from webui.configfile import ConfigConflict, ConfigRejected, redact
from webui.light import light
from webui.guard import Refused, moved_secret_problems, technician_check
from webui.security import may, requires, who

api = Blueprint("api", __name__)
log = logging.getLogger("linebridge.webui")
V1 = "/api/v1"
KINDS = {"devices": "devices", "machines": "machines", "rules": "rules", "connections": "sinks"}


def _error(status: int, message: str, problems: list[str] | None = None) -> Response:
    resp = jsonify({"error": message, "problems": problems or []})
    resp.status_code = status
    return resp


@api.errorhandler(ConfigRejected)
def _rejected(exc: ConfigRejected) -> Response:
    return _error(422, "the change was not saved: it does not validate", exc.problems)


@api.errorhandler(ConfigConflict)
def _conflict(exc: ConfigConflict) -> Response:
    return _error(409, str(exc))


@api.errorhandler(Refused)
def _refused(exc: Refused) -> Response:
    log.warning("event=webui_change_refused user=%s path=%s reason=%r", who(), request.path, str(exc))
    return _error(403, str(exc))


@api.errorhandler(GatewayBusy)
def _busy(exc: GatewayBusy) -> Response:
    return _error(503, str(exc))


@api.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    from werkzeug.exceptions import HTTPException
    if isinstance(exc, HTTPException):
        return _error(exc.code or 500, exc.description or exc.name)
    # the exception's text stays in the log: it may quote a file or a setting the person may not see
    log.error("event=webui_api_error path=%s error=%s", request.path, type(exc).__name__, exc_info=exc)
    return _error(500, "the gateway failed to do this; the log has the details (event=webui_api_error)")


@api.app_errorhandler(404)
@api.app_errorhandler(405)
def _no_route(exc: Any) -> Any:
    """Under /api/ a path or method that does not exist answers JSON too; a page that does not
    exist answers a styled page with a way back (not the server's bare text)."""
    if request.path.startswith("/api/"):
        return _error(exc.code, exc.description or exc.name)
    if exc.code == 404:
        from flask import render_template
        return render_template("notfound.html", identity=console().identity(), path=request.path), 404
    return exc


@api.errorhandler(system.SettingRejected)
def _setting_rejected(exc: system.SettingRejected) -> Response:
    return _error(422, "the setting was not saved: it does not validate", exc.problems)


@api.errorhandler(system.NotManaged)
def _not_managed(exc: system.NotManaged) -> Response:
    return _error(409, str(exc))


@api.errorhandler(AccountError)
def _account(exc: AccountError) -> Response:
    return _error(422, str(exc), [str(exc)])


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ConfigRejected(["the request body must be a JSON object"])
    return data


def _optional_body() -> dict[str, Any]:
    """The JSON object sent, or {} when nothing was sent (never a list or a scalar)."""
    if not request.get_data(cache=True):
        return {}
    return _body()


def _section(body: dict[str, Any]) -> dict[str, Any]:
    section = body.get("section")
    if not isinstance(section, dict):
        raise ConfigRejected(["section: required, a JSON object (the section's keys as in the TOML file)"])
    return section


def _toml_problems(value: Any, path: str) -> list[str]:
    """Why `value`, read from JSON, cannot go into the TOML file: a null, or text that is not valid Unicode."""
    if value is None:
        return [f"{path}: null has no TOML form; leave the key out"]
    if isinstance(value, str):
        return [] if _is_text(value) else [f"{path}: not valid text"]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _toml_problems(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [p for k, v in value.items()
                for p in (_toml_problems(v, f"{path}.{k}") if _is_text(k) else [f"{path}: a key is not valid text"])]
    return []


def _is_text(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry and a UTF-8 file cannot
        return False
    return True


def _writable(kind: str, name: str, table: Any) -> None:
    """Refuse (422) what tomlkit could not write, before it is tried: the answer is a problem, not a 500."""
    problems = ([] if _is_text(name) else [f"{kind}: the name is not valid text"])
    if table is not None:
        problems += _toml_problems(table, f"{kind}.{name}" if name else kind)
    if problems:
        raise ConfigRejected(problems)


def _preview(kind: str, name: str, section: Any) -> Any:
    """The Config with an unsaved section, for a test: a stored secret only towards its saved destination."""
    _writable(kind, name, section)
    problems = moved_secret_problems(kind, name, section, console().config_file.stored(kind, name))
    if problems:
        raise ConfigRejected(problems)
    return console().config_file.preview(kind, name, section)


def _may_change(kind: str, name: str, table: Any) -> None:
    """Refuse what the session's role may not change: sinks are the admin's; a technician's device
    keeps its stored secrets only towards the saved destination."""
    if kind == "sinks" and not may("connections"):
        raise Refused(f"only an admin may change connections (sinks.{name}): destinations and credentials")
    if kind == "devices" and table is not None and not may("connections"):
        problems = moved_secret_problems(kind, name, table, console().config_file.stored(kind, name))
        if problems:
            raise ConfigRejected(problems)


def _file_check() -> Any:
    """What a whole-file change must pass for this session (None for an admin)."""
    return None if may("connections") else technician_check


# -- status and identity --------------------------------------------------------------------

@api.get(f"{V1}/status")
def status() -> Response:
    c = console()
    st = c.bridge.status()
    stored = c.bridge.store.stats()["sinks"]
    st["dead_letters"] = sum(s.get("dead_letters", 0) for s in stored.values())
    # the dead letters each sink has now (what the card sums), beside its count since the start
    for name, sink in st["sinks"].items():
        sink["dead_letters"] = (stored.get(name) or {}).get("dead_letters", 0)
        sink["held_for_person"] = (stored.get(name) or {}).get("held", 0)
    st["light"] = light(st)
    return jsonify(st)


@api.get(f"{V1}/production")
def production() -> Response:
    """Each machine now: work order, parts and scrap this shift and since the start, rate, last deliveries."""
    return jsonify({"machines": console().bridge.production()})


@api.get(f"{V1}/identity")
def identity() -> Response:
    return jsonify(console().identity())


@api.get(f"{V1}/me")
def me() -> Response:
    s = g.session
    return jsonify({"user": s.user, "role": s.role, "csrf_token": s.csrf})


@api.post(f"{V1}/me/password")
def change_own_password() -> Response:
    body = _body()
    c = console()
    if c.accounts.authenticate(g.session.user, str(body.get("current", ""))) is None:
        return _error(403, "the current password is not right")
    c.accounts.update(g.session.user, who(), password=str(body.get("password", "")))
    return jsonify({"ok": True})


# -- configuration sections: devices, machines, rules, connections ------------------------

def _section_list(kind: str) -> list[dict[str, Any]]:
    data = console().config_file.view()["config"].get(kind) or {}
    return [{"name": name, "section": section} for name, section in data.items()]


def _change(kind: str, name: str, table: dict[str, Any] | None, version: str | None = None) -> Response:
    c = console()
    _writable(kind, name, table)
    _may_change(kind, name, table)
    cfg, entry = c.config_file.put(kind, name, table, who(), version)
    applied = c.bridge.apply(cfg)
    return jsonify({"saved": entry, "applied": applied, "version": entry["version"]})


@api.get(f"{V1}/devices")
def devices() -> Response:
    c = console()
    values = c.bridge.live_values()
    health = c.bridge.status()["devices"]
    out = []
    for item in _section_list("devices"):
        name = item["name"]
        out.append(dict(item, type=item["section"].get("type"), machine=item["section"].get("machine"),
                        health=health.get(name), values=values.get(name, [])))
    return jsonify({"version": c.config_file.version(), "devices": out})


@api.post(f"{V1}/devices/<name>/tags/import")
@requires("config")
def import_tags(name: str) -> Response:
    """Tags from CSV text (`csv`), merged into the device's tags (`mode` "merge", the default) or
    replacing them ("replace"); every problem names its row and column."""
    body = _body()
    text, mode = body.get("csv"), body.get("mode", "merge")
    if not isinstance(text, str) or not _is_text(text):
        raise ConfigRejected(["csv: required, the file's text"])
    if mode not in ("merge", "replace"):
        raise ConfigRejected(["mode: merge or replace"])
    c = console()
    section = c.config_file.stored("devices", name)
    if section is None:
        return _error(404, f"no device {name!r}")
    try:
        tags, rows = tagcsv.parse(text)
    except tagcsv.CsvRejected as exc:
        return _error(422, "no tag was imported", exc.problems)
    merged = ({} if mode == "replace" else dict(section.get("tags") or {})) | tags
    try:
        resp = _change("devices", name, dict(section, tags=merged), body.get("version"))
    except ConfigRejected as exc:
        return _error(422, "no tag was imported: the device does not validate with them",
                      tagcsv.locate(exc.problems, name, rows))
    data = resp.get_json()
    data["imported"] = sorted(tags)
    return jsonify(data)


@api.get(f"{V1}/devices/<name>/trend/<tag>")
def trend(name: str, tag: str) -> Response:
    c = console()
    if name not in c.bridge.config.devices:
        return _error(404, f"no device {name!r}")
    series = c.bridge.trend(name, tag)
    if series is None:
        return _error(404, f"device {name}: tag {tag!r} has shown no number since the gateway started")
    return jsonify({"device": name, **series})


@api.get(f"{V1}/<any(devices, machines, rules, connections):what>/<name>")
def get_section(what: str, name: str) -> Response:
    section = console().config_file.section(KINDS[what], name)
    if section is None:
        return _error(404, f"no {what[:-1]} {name!r}")
    return jsonify({"name": name, "section": section, "version": console().config_file.version()})


@api.get(f"{V1}/<any(machines, rules, connections):what>")
def list_sections(what: str) -> Response:
    c = console()
    items = _section_list(KINDS[what])
    if what == "connections":
        sinks = c.bridge.status()["sinks"]
        items = [dict(i, status=sinks.get(i["name"])) for i in items]
    return jsonify({"version": c.config_file.version(), what: items})


@api.post(f"{V1}/<any(devices, machines, rules, connections):what>")
@requires("config")
def add_section(what: str) -> Response:
    body = _body()
    name = body.get("name")
    if not name or not isinstance(name, str):
        raise ConfigRejected([f"{what[:-1]}: a name is required"])
    problem = name_problem(name)
    if problem:
        raise ConfigRejected([f"{what[:-1]}: {problem}"])
    if console().config_file.section(KINDS[what], name) is not None:
        return _error(409, f"{what[:-1]} {name!r} exists; edit it instead")
    return _change(KINDS[what], name, _section(body), body.get("version"))


@api.put(f"{V1}/<any(devices, machines, rules, connections):what>/<name>")
@requires("config")
def put_section(what: str, name: str) -> Response:
    body = _body()
    return _change(KINDS[what], name, _section(body), body.get("version"))


@api.delete(f"{V1}/<any(devices, machines, rules, connections):what>/<name>")
@requires("config")
def delete_section(what: str, name: str) -> Response:
    if console().config_file.section(KINDS[what], name) is None:
        return _error(404, f"no {what[:-1]} {name!r}")
    return _change(KINDS[what], name, None, request.args.get("version"))


@api.get(f"{V1}/shifts")
def shifts() -> Response:
    c = console()
    return jsonify({"version": c.config_file.version(), "shifts": c.config_file.view()["config"].get("shifts")})


@api.put(f"{V1}/shifts")
@requires("config")
def put_shifts() -> Response:
    body = _body()
    if "shifts" not in body:  # an explicit null removes the calendar; a forgotten key must not
        raise ConfigRejected(["shifts: required, the calendar as a JSON object (null removes it)"])
    return _change("shifts", "", body["shifts"], body.get("version"))


@api.post(f"{V1}/devices/<name>/test-read")
@requires("config")
def test_read(name: str) -> Response:
    """Read once with the saved settings, or with the unsaved `section` in the body."""
    c = console()
    body = request.get_json(silent=True) or {}
    section = body.get("section") if isinstance(body, dict) else None
    if section is not None:
        cfg = _preview("devices", name, section)
    else:
        cfg = c.bridge.config
        if name not in cfg.devices:
            return _error(404, f"no device {name!r}")
    return jsonify(c.bridge.test_read(cfg, name))


@api.post(f"{V1}/devices/<name>/browse")
@requires("config")
def browse(name: str) -> Response:
    c = console()
    body = _optional_body()
    depth = body.get("depth", 1)
    if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= 3:
        raise ConfigRejected(["depth: must be 1, 2 or 3"])
    node = body.get("node")
    if node is not None and not isinstance(node, str):
        raise ConfigRejected(["node: must be a node id (a string)"])
    section = body.get("section")
    cfg = _preview("devices", name, section) if section is not None else c.bridge.config
    spec = cfg.devices.get(name)
    if spec is None:
        return _error(404, f"no device {name!r}")
    if spec.type != "opcua":
        return _error(422, f"device {name!r} is {spec.type}; only OPC-UA devices can be browsed")
    from drivers.opcua.browse import BrowseError
    try:
        nodes = c.bridge.browse(cfg, name, node, depth)
    except BrowseError as exc:
        return _error(502, str(exc))
    return jsonify({"device": name, "nodes": nodes})


@api.post(f"{V1}/connections/<name>/test")
@requires("config")
def connection_test(name: str) -> Response:
    c = console()
    body = request.get_json(silent=True) or {}
    section = body.get("section") if isinstance(body, dict) else None
    cfg = _preview("sinks", name, section) if section is not None else c.bridge.config
    if name not in cfg.sinks:
        return _error(404, f"no connection {name!r}")
    findings = c.bridge.connection_test(cfg, name)
    return jsonify({"connection": name, "findings": findings,
                    "blockers": sum(1 for f in findings if f["level"] == "blocker")})


@api.post(f"{V1}/connections/<name>/retry")
@requires("queue")
def connection_retry(name: str) -> Response:
    """"Retry now": the connection's retry wait ends and it tries again at once."""
    waiting = console().bridge.retry_sink(name)
    if waiting is None:
        return _error(404, f"no connection {name!r}")
    log.info("event=webui_retry_now sink=%s user=%s waiting=%s", name, who(), waiting)
    return jsonify({"connection": name, "waiting": waiting})


# -- label printers ---------------------------------------------------------------------------

@api.get(f"{V1}/labels")
def labels() -> Response:
    """Each label printer's printed labels (newest first), labels held for a person and waiting reprints."""
    return jsonify({"printers": console().bridge.labels()})


@api.get(f"{V1}/labels/<sink>/templates/<template>/preview")
def label_preview(sink: str, template: str) -> Response:
    """A template filled with sample values, as the printer gets it: ZPL text or a PDF."""
    found = console().bridge.label_preview(sink, template)
    if found is None:
        return _error(404, f"no template {template!r} at printer {sink!r}")
    mimetype, body = found
    return Response(body, mimetype=mimetype.split(";")[0],
                    headers={"Content-Disposition": f'inline; filename="{sink}-{template}.'
                                                    f'{"pdf" if mimetype == "application/pdf" else "zpl"}"'})


@api.post(f"{V1}/labels/<sink>/<label_id>/<any(reprint, confirm):action>")
@requires("queue")
def label_action(sink: str, label_id: str, action: str) -> Response:
    """Reprint a label (printed or held), or confirm a held label is on paper; journaled with who and when."""
    try:
        done = console().bridge.label_action(sink, label_id, action, f"webui:{who()}")
    except TransientDeliveryError as exc:     # too many reprints already waiting
        return _error(409, str(exc))
    if done is None:
        return _error(404, f"no label {label_id!r} at printer {sink!r}")
    log.info("event=webui_label_%s sink=%s label=%s user=%s", action, sink, label_id, who())
    return jsonify({"sink": sink, "label": label_id, "action": action,
                    "queued": done if isinstance(done, dict) else None})


# -- the whole file, history and rollback ---------------------------------------------------

@api.get(f"{V1}/config")
def config_view() -> Response:
    return jsonify(console().config_file.view())


@api.put(f"{V1}/config")
@requires("config")
def config_replace() -> Response:
    body = _body()
    text = body.get("text")
    if not isinstance(text, str) or not _is_text(text):
        raise ConfigRejected(["text: required, the whole file as text"])
    c = console()
    cfg, entry = c.config_file.replace(text, who(), body.get("version"), check=_file_check())
    return jsonify({"saved": entry, "applied": c.bridge.apply(cfg), "version": entry["version"]})


@api.get(f"{V1}/config/history")
def history() -> Response:
    return jsonify({"history": console().config_file.history()})


@api.get(f"{V1}/config/history/<int:entry>")
def history_diff(entry: int) -> Response:
    return jsonify({"id": entry, "diff": console().config_file.diff(entry)})


@api.post(f"{V1}/config/history/<int:entry>/rollback")
@requires("config")
def rollback(entry: int) -> Response:
    c = console()
    cfg, saved = c.config_file.rollback(entry, who(), check=_file_check())
    return jsonify({"saved": saved, "applied": c.bridge.apply(cfg), "version": saved["version"]})


@api.get(f"{V1}/config/export")
def config_export() -> Response:
    """The configuration file to download, every secret masked (an import keeps the stored ones)."""
    from webui import backup  # tarfile, AES-GCM, scrypt: loaded by the first export or backup, not every start
    c = console()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Response(backup.masked(c.config_file.text()), mimetype="application/toml", headers={
        "Content-Disposition": f'attachment; filename="linebridge-{c.bridge.config.gateway.id}-{stamp}.toml"'})


# -- backup and restore (admins) ----------------------------------------------------------------

@api.post(f"{V1}/backup")
@requires("users")
def make_backup() -> Response:
    from webui import backup  # tarfile, AES-GCM, scrypt: loaded by the first backup, not every start
    body = _optional_body()
    passphrase = body.get("passphrase")
    if passphrase is not None and not isinstance(passphrase, str):
        raise ConfigRejected(["passphrase: text"])
    c = console()
    gw = c.bridge.config.gateway.id
    try:
        data = backup.make(config_text=c.config_file.text(), history_dir=c.config_file.history_dir,
                           users_path=c.accounts.path, state_dir=c.state_dir, gateway=gw, software=__version__,
                           by=who(), passphrase=passphrase or None)
    except backup.BackupRejected as exc:
        return _error(422, "no backup was made", exc.problems)
    log.info("event=backup_made by=%s sealed=%s bytes=%d", who(), bool(passphrase), len(data))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Response(data, mimetype="application/gzip", headers={
        "Content-Disposition": f'attachment; filename="linebridge-backup-{gw}-{stamp}.tar.gz"'})


@api.post(f"{V1}/restore")
@requires("users")
@requires("system")
def restore_backup() -> Response:
    """A backup archive as the body (its bytes, any content type); the passphrase in `X-Backup-Passphrase`;
    `?device_key=1` to take the sealed device key too (only onto a gateway that has not delivered)."""
    from webui import backup  # tarfile, AES-GCM, scrypt: loaded by the first backup, not every start
    c = console()
    passphrase = request.headers.get("X-Backup-Passphrase") or None
    try:
        contents = backup.read(request.get_data(cache=False), passphrase)
        current = c.config_file.text()
        text = backup.config_for(contents, current)
        c.config_file.validate_text(text)                       # before anything is written
        journal = c.bridge.store.journal_head()["n"]
        want_key = request.args.get("device_key") in ("1", "true")
        if want_key and contents.device_key is None:
            raise backup.BackupRejected(["device key: the backup holds none that could be opened "
                                         "(made without a passphrase, or none given)"])
        if want_key and journal:
            backup.restore_key(contents, c.state_dir, journal)  # raises: refused before any write
        users = c.accounts.restore(contents.users["users"], keep=who())
    except backup.BackupRejected as exc:
        return _error(422, "nothing was restored", exc.problems)
    except AccountError as exc:
        return _error(422, "nothing was restored", [str(exc)])
    history = backup.restore_history(contents, c.config_file.history_dir)
    m = contents.manifest
    cfg, entry = c.config_file.replace(text, who(), None, check=None) if text != current else (None, None)
    key = backup.restore_key(contents, c.state_dir, journal) if want_key else False
    for name in users:
        if name != who():
            c.sessions.end_user(name)
    log.warning("event=backup_restored by=%s from_gateway=%s created=%s users=%d history=%d device_key=%s",
                who(), m.get("gateway"), m.get("created"), len(users), history, key)
    return jsonify({"restored": {"from": {k: m.get(k) for k in ("gateway", "software", "created", "by", "sealed")},
                                 "config": entry, "users": users, "history_entries": history, "device_key": key},
                    "applied": c.bridge.apply(cfg) if cfg is not None else None,
                    "restart_required": key, "notes": contents.notes})


# -- queue, dead letters, journal -----------------------------------------------------------

@api.get(f"{V1}/queue")
def queue() -> Response:
    return jsonify(console().bridge.store.stats())


@api.get(f"{V1}/held")
def held() -> Response:
    """What each sink holds in a lane, waiting for context (an open work order)."""
    store = console().bridge.store
    sinks = [request.args["sink"]] if request.args.get("sink") else sorted(store.sinks)
    return jsonify({"held": [redact({"sink": sink, "seq": h.stored.seq, "lane": h.lane, "since": h.since,
                                     "reason": h.reason, "event": h.stored.event})
                             for sink in sinks for h in store.held(sink)]})


def reason_of(error: str) -> str:
    """A dead letter's reason for grouping: its error with the numbers that differ per event as N."""
    return re.sub(r"\d+(?:\.\d+)?", "N", str(error))[:300]


@api.get(f"{V1}/dead-letters")
def dead_letters() -> Response:
    """Dead letters, optionally of one sink, kind or reason (`reason_of`), a page at a time."""
    letters = console().bridge.store.dead_letters(request.args.get("sink") or None,
                                                  request.args.get("kind") or None)
    reason = request.args.get("reason")
    if reason:
        letters = [x for x in letters if reason_of(x["error"]) == reason]
    offset = max(0, request.args.get("offset", 0, type=int))
    limit = request.args.get("limit", type=int)
    page = letters[offset:offset + max(1, min(1000, limit))] if limit is not None else letters[offset:]
    return jsonify({"dead_letters": [redact(x) for x in page], "total": len(letters), "offset": offset})


@api.get(f"{V1}/dead-letters/groups")
def dead_letter_groups() -> Response:
    """Dead letters grouped by sink and reason, with their counts (what the Queue page lists first)."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for x in console().bridge.store.dead_letters():
        key = (x["sink"], reason_of(x["error"]))
        grp = groups.setdefault(key, {"sink": key[0], "reason": key[1], "example": x["error"], "count": 0,
                                      "kinds": {}, "last_failure": None, "replayed": 0})
        grp["count"] += 1
        kind = x["event"].get("kind", "?") if isinstance(x.get("event"), dict) else "?"
        grp["kinds"][kind] = grp["kinds"].get(kind, 0) + 1
        grp["last_failure"] = max(grp["last_failure"] or 0, x.get("last_failure") or 0) or None
        grp["replayed"] += 1 if x.get("replayed") else 0
    out = sorted(groups.values(), key=lambda g: -g["count"])
    return jsonify({"groups": out, "total": sum(g["count"] for g in out)})


@api.get(f"{V1}/dead-letters/<sink>/<int:seq>")
def dead_letter(sink: str, seq: int) -> Response:
    for letter in console().bridge.store.dead_letters(sink):
        if letter["seq"] == seq:
            return jsonify(redact(letter))
    return _error(404, f"no dead letter {seq} for sink {sink!r}")


@api.post(f"{V1}/dead-letters/<sink>/<any(replay, discard):op>")
@requires("queue")
def dead_letter_op(sink: str, op: str) -> Response:
    body = _optional_body()
    seqs = body.get("seqs")
    if seqs is not None and (not isinstance(seqs, list) or not all(isinstance(s, int) for s in seqs)):
        raise ConfigRejected(["seqs: must be a list of sequence numbers"])
    kind = body.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise ConfigRejected(["kind: must be an event kind (a string)"])
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ConfigRejected(["reason: must be a reason as /dead-letters/groups lists it (a string)"])
    c = console()
    store = c.bridge.store
    if reason is not None:  # one group: its letters' seqs (within `seqs`, if given too)
        wanted = set(seqs) if seqs is not None else None
        seqs = [x["seq"] for x in store.dead_letters(sink, kind or None)
                if reason_of(x["error"]) == reason and (wanted is None or x["seq"] in wanted)]
    fn = store.replay if op == "replay" else store.discard
    n = fn(sink, seqs, kind or None, who=f"webui:{who()}")
    if op == "replay" and n:
        c.bridge.wake_sink(sink)
    return jsonify({op + "ed" if op == "discard" else "replayed": n})


@api.get(f"{V1}/journal")
def journal() -> Response:
    store = console().bridge.store
    limit = max(1, min(1000, request.args.get("limit", 100, type=int)))
    verdict = store.verify_journal()
    return jsonify({"entries": store.journal_entries(limit),
                    "verify": {"ok": verdict.ok, "detail": str(verdict)}})


# -- logs and users -------------------------------------------------------------------------

@api.get(f"{V1}/logs")
def logs() -> Response:
    lines = console().logs.tail(limit=max(1, min(2000, request.args.get("limit", 200, type=int))),
                                level=request.args.get("level") or None,
                                contains=request.args.get("contains") or None,
                                after=request.args.get("after", 0, type=int))
    return jsonify({"lines": lines})


@api.get(f"{V1}/logs/download")
def logs_download() -> Response:
    """Every line the console keeps, oldest first, as a text file (times in UTC, said so)."""
    lines = console().logs.tail(limit=1_000_000)
    text = "".join(f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ln['ts']))}Z {ln['level']} {ln['logger']} "
                   f"{ln['message']}\n" for ln in lines)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Response(text, mimetype="text/plain", headers={
        "Content-Disposition": f'attachment; filename="linebridge-{stamp}.log"'})


@api.get(f"{V1}/users")
def users() -> Response:
    return jsonify({"users": [u.public() for u in console().accounts.users()]})


@api.post(f"{V1}/users")
@requires("users")
def add_user() -> Response:
    body = _body()
    user = console().accounts.add(str(body.get("name", "")), str(body.get("role", "")),
                                  str(body.get("password", "")), by=who())
    return jsonify(user.public())


@api.put(f"{V1}/users/<name>")
@requires("users")
def update_user(name: str) -> Response:
    body = _body()
    c = console()
    user = c.accounts.update(name, who(), role=body.get("role"), password=body.get("password"))
    c.sessions.set_role(name, user.role)
    if body.get("password"):
        c.sessions.end_user(name)
    return jsonify(user.public())


@api.delete(f"{V1}/users/<name>")
@requires("users")
def delete_user(name: str) -> Response:
    c = console()
    if name == g.session.user:
        return _error(422, "you cannot remove yourself")
    c.accounts.remove(name)
    c.sessions.end_user(name)
    return jsonify({"removed": name})


# -- the appliance: NTP servers and SSH access (root applies them; see webui.system) ---------

def _system_file(key: str) -> Path | None:
    webui = console().bridge.config.webui
    value = getattr(webui, key, "") if webui else ""
    return Path(value) if value else None


@api.get(f"{V1}/system")
def system_settings() -> Response:
    c = console()
    seen = hoststate.comms()
    return jsonify({"time": system.read_time(_system_file("timesyncd_conf")), "clock": hoststate.clock(seen),
                    "ssh": {**system.read_ssh(_system_file("ssh_authorized_keys")), "device": hoststate.ssh(seen)},
                    "about": hoststate.about(__version__, c.bridge.config.gateway.id, c.bridge.sup.started),
                    "can_restart": c.bridge.sup.on_restart is not None})


@api.get(f"{V1}/about")
def about() -> Response:
    c = console()
    return jsonify(hoststate.about(__version__, c.bridge.config.gateway.id, c.bridge.sup.started))


@api.post(f"{V1}/system/restart")
@requires("system")
def restart() -> Response:
    if not console().bridge.restart(who()):
        return _error(409, "this gateway was not started by `linebridge run` and cannot restart itself; "
                           "restart it the way it was started")
    resp = jsonify({"restarting": True})
    resp.status_code = 202
    return resp


@api.put(f"{V1}/system/time")
@requires("system")
def put_time() -> Response:
    result = system.write_time(_system_file("timesyncd_conf"), _body().get("ntp"))
    log.info("event=system_change setting=ntp servers=%r by=%s", " ".join(result["ntp"]), who())
    return jsonify(result)


@api.put(f"{V1}/system/ssh")
@requires("system")
def put_ssh() -> Response:
    result = system.write_ssh(_system_file("ssh_authorized_keys"), _body().get("authorized_keys"))
    log.warning("event=system_change setting=ssh enabled=%s keys=%s by=%s", result["enabled"],
                ",".join(k["fingerprint"] for k in result["keys"]) or "-", who())
    return jsonify(result)


# -- descriptions ---------------------------------------------------------------------------

@api.get(f"{V1}/openapi.json")
def openapi_doc() -> Response:
    return jsonify(openapi.document())


@api.get("/metrics")
def metrics() -> Response:
    c = console()
    return Response(metrics_mod.render(c.bridge.status(), c.bridge.store.stats()),
                    mimetype="text/plain; version=0.0.4")
