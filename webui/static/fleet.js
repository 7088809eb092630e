/* The "Fleet & keys" page (admin): Odoo key rotation, client certificates, the fleet on the broker.
   Uses app.js's api(), el(), flash(), fail(), every(), age(), duration(). */
"use strict";

function pct(x) { return x === null || x === undefined ? "—" : Math.round(100 * x) + "%"; }

async function keyList() {
  const data = await api("GET", "/credentials");
  const box = document.getElementById("key-list");
  if (!data.odoo.length) box.replaceChildren(el("p", { class: "hint" }, "No Odoo connection."));
  else box.replaceChildren(...data.odoo.map(k => {
    const input = el("input", { type: "password", id: `newkey-${k.sink}`, autocomplete: "new-password", spellcheck: "false" });
    const result = el("div", { role: "status", id: `rotate-${k.sink}` });
    const form = el("form", { class: "stack", onsubmit: async ev => {
      ev.preventDefault();
      result.replaceChildren(el("p", { class: "hint" }, "Checking the new key against Odoo…"));
      try {
        const r = await api("POST", `/connections/${encodeURIComponent(k.sink)}/rotate-key`, { api_key: input.value });
        input.value = "";
        result.replaceChildren(el("p", { class: "ok" }, `New key ${r.new} stored in ${r.stored_in}` + (r.in_use ? " and in use." : ".")),
                               el("p", { class: "warn" }, r.revoke[0].toUpperCase() + r.revoke.slice(1) + "."));
        await keyList();
      } catch (e) {
        input.value = "";
        result.replaceChildren(el("p", { class: "error" }, e.message), el("ul", {}, (e.problems || []).map(p => el("li", { class: "error" }, p))));
      }
    } }, el("label", {}, "New API key", input),
      el("div", { class: "actions" }, el("button", { type: "submit", id: `rotate-btn-${k.sink}`, disabled: !k.rotatable }, "Check and rotate")));
    return el("div", { class: "connection" }, el("h3", {}, k.sink, el("span", { class: "hint" }, `${k.login} on ${k.database} at ${k.url}`)),
      el("p", {}, "In use: ", el("code", {}, k.fingerprint || "—"), " kept in ", k.where),
      k.rotatable ? "" : el("p", { class: "hint" }, "This key cannot be rotated from here: " + k.where),
      form, result);
  }));
  const certs = Object.entries(data.certificates);
  document.getElementById("cert-list").replaceChildren(certs.length
    ? el("ul", {}, certs.map(([sink, c]) => el("li", { class: c.expiring ? "warn" : undefined },
        `${sink}: ${c.error || `expires ${c.not_after} (${c.days_left} day(s) left)`}` + (c.expiring ? " — renew it" : ""))))
    : el("p", { class: "hint" }, "No connection uses a client certificate."));
}

function flags(r) {
  const out = [];
  if (r.state === "stale" || r.state === "offline") out.push(r.state.toUpperCase() + (r.reason ? ` (${r.reason})` : ""));
  for (const [n, c] of Object.entries(r.certificates || {})) if (c.expiring) out.push(`cert ${n} expires in ${c.days_left ?? "?"}d`);
  return out.join(", ");
}

async function fleetTable() {
  const data = await api("GET", "/fleet");
  const counts = document.getElementById("fleet-counts");
  const body = document.querySelector("#fleet-table tbody");
  if (!data.configured) { counts.textContent = data.reason; body.replaceChildren(); return; }
  const c = data.counts;
  counts.textContent = `${c.total} gateway(s): ${c.online} online, ${c.stale} stale, ${c.offline} offline` +
    (data.connected ? "" : ` — not connected to ${data.broker}: ${data.last_error || "connecting"}`);
  body.replaceChildren(...data.gateways.map(r => {
    const sl = r.within_target_worst;
    return el("tr", { class: r.state === "online" ? undefined : "state-" + (r.state === "offline" ? "bad" : "warn") },
      el("td", {}, r.gateway || r.prefix), el("td", {}, r.site || "—"), el("td", {}, r.state), el("td", {}, r.version || "—"),
      el("td", {}, r.environment || "—"), el("td", {}, r.backlog ?? "—"), el("td", {}, r.oldest_age_s == null ? "—" : duration(r.oldest_age_s)),
      el("td", {}, r.dead_letters ?? "—"), el("td", {}, sl ? `${pct(sl.within_target)} ${sl.kind}` : "—"), el("td", {}, pct(r.oee_mean)),
      el("td", {}, r.last_delivery ? age(r.last_delivery) : "—"), el("td", {}, r.signature), el("td", {}, flags(r)));
  }));
}

if (document.body.dataset.page === "fleet") {
  keyList().catch(fail);
  every(5000, () => fleetTable().catch(fail));
}
