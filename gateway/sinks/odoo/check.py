"""`linebridge odoo check`: can this configuration deliver to this Odoo, before the first event?

It owns the pre-flight findings an integrator reads on commissioning day:
reachability and version, database and API key, the installed apps the
configured event kinds need, read/write access on every model the sink will
touch (Odoo's public `has_access` on an empty recordset from Odoo 18, where
`check_access_rights` is deprecated; `check_access_rights` before), and that every configured machine
maps to an existing work center / equipment, every loss reason and the scrap
location exist, each work center has an open work order, what a scrap would
take from stock (`scrap_mode`: the order's components, or the finished
product, which has no stock while its order runs) and whether Odoo would
refuse it with its insufficient-quantity wizard, and where quality
results will go (inspections with OCA's quality_control_oca and its configured
test, else notes). Each finding is one line; a blocker makes the command exit 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.config import AlarmRuleConfig, Config, CounterRuleConfig, OdooSinkConfig
from gateway.rules.config import (EdgeRuleConfig, MachineStateRuleConfig, ThresholdRuleConfig,
                                  WeightRuleConfig)
from gateway.errors import DeliveryError, PermanentDeliveryError
from gateway.sinks.odoo.protocol import LazyClient, major_of
from gateway.sinks.odoo.masterdata import MasterData

#: model -> operations, per event kind the configuration produces
NEEDS: dict[str, dict[str, tuple[str, ...]]] = {
    # stock.move: the merge of the order's component move lines every tenth count write (`movelines`); the
    # move lines themselves Odoo's own qty_producing write already needs
    "production": {"mrp.workcenter": ("read",), "mrp.workorder": ("read", "write"), "stock.move": ("read", "write")},
    "scrap": {"mrp.workorder": ("read",), "stock.scrap": ("read", "create", "write"), "stock.location": ("read",),
              "mrp.production": ("read",), "stock.move": ("read",), "product.product": ("read",)},
    "downtime_start": {"mrp.workcenter": ("read",), "mrp.workcenter.productivity": ("read", "create", "write"),
                       "mrp.workcenter.productivity.loss": ("read",), "ir.model.data": ("read",)},
    "alarm": {"maintenance.equipment": ("read",), "maintenance.request": ("read", "create")},
    "consumption": {"mrp.workorder": ("read",), "stock.move": ("read", "write"), "product.product": ("read",)},
    "quality_result": {"mrp.workorder": ("read",), "mrp.production": ("read", "write"), "mail.message": ("read",)},
    "workorder_start": {"mrp.workorder": ("read", "write")},
    "workorder_finish": {"mrp.workorder": ("read", "write")},
    "production_summary": {"mrp.workorder": ("read",)},
}
#: what inspections need where OCA's quality_control_oca is installed
QC_NEEDS: dict[str, tuple[str, ...]] = {"qc.inspection": ("read", "create", "write"),
                                        "qc.inspection.line": ("read", "create", "write"),
                                        "qc.test": ("read",), "qc.test.question": ("read",), "uom.uom": ("read",)}
APPS = {"production": "mrp", "scrap": "stock", "downtime_start": "mrp", "alarm": "maintenance",
        "consumption": "mrp", "quality_result": "mrp", "workorder_start": "mrp", "workorder_finish": "mrp",
        "production_summary": "mrp"}


@dataclass(frozen=True)
class Finding:
    level: str  # ok | warn | blocker
    text: str

    def __str__(self) -> str:
        return f"{self.level.upper():<7} {self.text}"


def configured_kinds(cfg: Config) -> set[str]:
    """The event kinds the configured rules can produce."""
    kinds: set[str] = set()
    for rule in cfg.rules.values():
        if isinstance(rule, CounterRuleConfig):
            kinds.add(rule.kind)
        elif isinstance(rule, AlarmRuleConfig):
            kinds.add("alarm")
            if rule.downtime:
                kinds.add("downtime_start")
        elif isinstance(rule, EdgeRuleConfig):
            kinds |= ({"alarm"} if rule.alarm else set()) | ({"downtime_start"} if rule.downtime else set())
        elif isinstance(rule, ThresholdRuleConfig):
            kinds.add("alarm" if rule.emit == "maintenance_due" else "quality_result")
        elif isinstance(rule, WeightRuleConfig):
            kinds.add("consumption" if rule.mode == "consumption" else "quality_result")
        elif isinstance(rule, MachineStateRuleConfig):
            kinds.add("workorder_finish" if rule.emit == "finish" else "workorder_start")
    if cfg.shifts is not None and kinds & {"production", "scrap"}:
        kinds.add("production_summary")
    return kinds


async def check(cfg: Config, sink: OdooSinkConfig, client: Any | None = None, *,
                key_only: bool = False) -> list[Finding]:
    """Every finding, one per line; `key_only`: only what depends on the API key (reach, login, the
    apps and the model access rights of its user), as a key rotation checks a new key."""
    findings: list[Finding] = []
    own = client is None
    client = client or LazyClient(sink.url, sink.database, sink.login, sink.api_key, sink.timeout, sink.protocol)
    try:
        major = 0
        try:
            info = await client.version()
            major = major_of(info)
            findings.append(Finding("ok", f"Odoo {info.get('server_version')} answers at {sink.url} "
                                          f"(protocol {client.protocol})"))
        except DeliveryError as exc:
            return findings + [Finding("blocker", f"cannot reach Odoo at {sink.url}: {exc}")]
        try:
            uid = await client.authenticate()
            findings.append(Finding("ok", f"login {sink.login!r} on database {sink.database!r} accepted (uid {uid})"))
        except DeliveryError as exc:
            return findings + [Finding("blocker", f"login {sink.login!r} on database {sink.database!r}: {exc}")]
        kinds = configured_kinds(cfg)
        findings += await _apps(client, kinds)
        findings += await _access(client, kinds, major)
        if key_only:
            return findings
        findings += await _mappings(client, cfg, sink, kinds)
        findings += await _quality(client, sink, kinds, major)
    finally:
        if own:
            await client.close()
    return findings


async def _apps(client: Any, kinds: set[str]) -> list[Finding]:
    wanted = sorted({APPS[k] for k in kinds if k in APPS})
    try:
        rows = await client.execute_kw("ir.module.module", "search_read",
                                       [[["name", "in", wanted], ["state", "=", "installed"]]], {"fields": ["name"]})
    except DeliveryError as exc:
        return [Finding("warn", f"cannot list installed apps ({exc}); model access checks follow")]
    installed = {r["name"] for r in rows}
    out = []
    for app in wanted:
        users = ", ".join(sorted(k for k in kinds if APPS.get(k) == app))
        out.append(Finding("ok", f"app {app} installed") if app in installed else
                   Finding("blocker", f"app {app} is not installed; needed for {users} events"))
    return out


async def _access(client: Any, kinds: set[str], major: int) -> list[Finding]:
    needs: dict[str, set[str]] = {}
    for kind in kinds:
        for model, ops in NEEDS.get(kind, {}).items():
            needs.setdefault(model, set()).update(ops)
    return await _rights(client, needs, major)


async def may(client: Any, model: str, operation: str, major: int) -> bool:
    """Whether the integration user may `operation` on `model` in general (model access rights).

    From Odoo 18 `has_access` on an empty recordset (a record method: the ids are
    `[]`); before, and on a server without `has_access`, the model method
    `check_access_rights(operation, raise_exception=False)`.
    """
    if major >= 18:
        try:
            return bool(await client.execute_kw(model, "has_access", [[], operation]))
        except PermanentDeliveryError:
            pass  # no has_access on this server (the sandbox): the deprecated method still answers
    return bool(await client.execute_kw(model, "check_access_rights", [operation], {"raise_exception": False}))


async def _rights(client: Any, needs: dict[str, set[str]], major: int) -> list[Finding]:
    out = []
    for model in sorted(needs):
        missing = []
        for op in sorted(needs[model]):
            try:
                ok = await may(client, model, op, major)
            except DeliveryError as exc:
                out.append(Finding("blocker", f"{model}: {exc}"))
                break
            if not ok:
                missing.append(op)
        else:
            out.append(Finding("blocker", f"{model}: the integration user may not {', '.join(missing)}")
                       if missing else Finding("ok", f"{model}: {', '.join(sorted(needs[model]))} allowed"))
    return out


async def _mappings(client: Any, cfg: Config, sink: OdooSinkConfig, kinds: set[str]) -> list[Finding]:
    md = MasterData(client)
    out = []
    machines = {d.machine for d in cfg.devices.values() if d.machine}
    for name in sorted(machines):
        m = cfg.machines.get(name)
        if m is None or not m.work_center:
            out.append(Finding("blocker", f"machine {name}: no work_center mapping under [machines.{name}]"))
            continue
        try:
            await md.lookup("workcenter", m.work_center)
            out.append(Finding("ok", f"machine {name}: work center {m.work_center} exists"))
        except DeliveryError as exc:
            out.append(Finding("blocker", f"machine {name}: {exc}"))
            continue
        if kinds & {"production", "scrap", "consumption", "quality_result"}:
            try:
                wo = await md.open_workorder(m.work_center)
                out.append(Finding("ok", f"machine {name}: open work order {wo.name} of {wo.production}"))
            except DeliveryError as exc:
                out.append(Finding("warn", f"machine {name}: {exc}; production would be dead-lettered"))
            else:
                if "scrap" in kinds:
                    out += await _scrap_stock(client, md, sink, name, wo)
        if "alarm" in kinds:
            if not m.equipment:
                out.append(Finding("blocker", f"machine {name}: alarms need an equipment under [machines.{name}]"))
            else:
                try:
                    await md.lookup("equipment", m.equipment)
                    out.append(Finding("ok", f"machine {name}: equipment {m.equipment} exists"))
                except DeliveryError as exc:
                    out.append(Finding("blocker", f"machine {name}: {exc}"))
    if "downtime_start" in kinds:
        losses = {sink.loss} | {c.loss for c in sink.alarm_codes.values() if c.loss}
        for loss in sorted(losses):
            try:
                await md.lookup("loss", loss)
                out.append(Finding("ok", f"loss reason {loss!r} exists"))
            except DeliveryError as exc:
                out.append(Finding("blocker", str(exc)))
    if "scrap" in kinds:
        try:
            await md.lookup("location", sink.scrap_location)
            out.append(Finding("ok", f"scrap location {sink.scrap_location!r} exists"))
        except DeliveryError as exc:
            out.append(Finding("blocker", str(exc)))
    return out


async def _on_hand(client: Any, product: int, location: int) -> tuple[str, float, bool]:
    """(name, quantity on hand in `location`, whether Odoo checks its stock) of a product."""
    fields = ["display_name", "qty_available", "type"]
    storable_field = "is_storable" in (await client.execute_kw("product.product", "fields_get", [],
                                                                {"attributes": ["type"]}) or {})
    if storable_field:
        fields.append("is_storable")  # Odoo 18+: goods are 'consu', stock tracked by this flag
    (row,) = await client.execute_kw("product.product", "read", [[product]],
                                     {"fields": fields, "context": {"location": location}})
    storable = bool(row.get("is_storable")) if storable_field else row.get("type") == "product"
    return str(row.get("display_name")), float(row.get("qty_available") or 0.0), storable


async def _scrap_stock(client: Any, md: MasterData, sink: OdooSinkConfig, machine: str, wo: Any) -> list[Finding]:
    """What Odoo would refuse when this machine's scrap arrives: the stock the scrap is taken from.

    Odoo validates a scrap of a stock-tracked product only when the source location has
    the quantity; otherwise it answers with its insufficient-quantity wizard (a dead letter,
    or negative stock with scrap_mode = do_scrap).
    """
    from gateway.sinks.odoo.scrap import ScrapPoster
    try:
        if sink.scrap_mode != "components":
            location = await md.lookup("location", sink.scrap_location)
            name, qty, storable = await _on_hand(client, wo.product_id, location)
            if not storable or qty > 0:
                return [Finding("ok", f"machine {machine}: scrap of {name} from {sink.scrap_location} "
                                      f"({qty:g} on hand)")]
            if sink.scrap_mode == "do_scrap":
                return [Finding("warn", f"machine {machine}: finished product {name} has no stock in "
                                        f"{sink.scrap_location} while {wo.production} runs: scrap_mode = do_scrap "
                                        "drives its stock negative; scrap_mode = components scraps the bad "
                                        "part's components as Odoo's own order scrap does")]
            return [Finding("blocker", f"machine {machine}: finished product {name} has no stock in "
                                       f"{sink.scrap_location} while {wo.production} runs: Odoo would answer each "
                                       "scrap with its insufficient-quantity wizard (dead letters); scrap_mode = "
                                       "components scraps the bad part's components as Odoo's own order scrap does")]
        parts = await ScrapPoster(client, md, sink.name, sink.scrap_location).components(wo)
    except DeliveryError as exc:
        return [Finding("warn", f"machine {machine}: cannot tell what scrap would take from stock ({exc})")]
    if not parts:
        return [Finding("blocker", f"machine {machine}: {wo.production} has no open component to scrap "
                                   "(scrap_mode = components): scrap would be dead-lettered")]
    out = []
    for part in parts:
        name, qty, storable = await _on_hand(client, part["product"], part["location"])
        if storable and qty < part["per_part"]:
            out.append(Finding("blocker", f"machine {machine}: component {name} of {wo.production} has "
                                          f"{qty:g} on hand where the order takes it: Odoo would answer a scrap "
                                          "with its insufficient-quantity wizard (dead letters)"))
        else:
            out.append(Finding("ok", f"machine {machine}: a bad part scraps {part['per_part']:g} x {name} "
                                     f"of {wo.production} ({qty:g} on hand)"))
    return out


async def _quality(client: Any, sink: OdooSinkConfig, kinds: set[str], major: int) -> list[Finding]:
    """Where quality results go: inspections with OCA's quality_control_oca, else notes on the order."""
    if "quality_result" not in kinds:
        return []
    md = MasterData(client)
    try:
        oca = await md.installed("quality_control_oca")
    except DeliveryError as exc:
        return [Finding("warn", f"cannot tell whether quality_control_oca is installed ({exc})")]
    if not oca:
        unused = f"; quality_test {sink.quality_test!r} is not used" if sink.quality_test else ""
        return [Finding("warn", "quality_control_oca is not installed: quality results become notes on the "
                                f"manufacturing order{unused}")]
    out = [Finding("ok", "quality_control_oca installed: quality results become inspections (qc.inspection)")]
    out += await _rights(client, {model: set(ops) for model, ops in QC_NEEDS.items()}, major)
    if not sink.quality_test:
        return out + [Finding("ok", "no quality_test set: each result uses the test that asks its characteristic")]
    try:
        await md.lookup("qc_test", sink.quality_test)
        out.append(Finding("ok", f"quality test {sink.quality_test!r} exists"))
    except DeliveryError as exc:
        out.append(Finding("blocker", str(exc)))
    return out
