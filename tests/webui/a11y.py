"""What the layout and accessibility checks look at on one console page in Chromium.

`axe_violations` runs axe-core (vendored under `axe/`, injected by the test as an
init script, so the console's Content-Security-Policy is not loosened for it);
`layout_problems` measures the page as laid out at the current viewport: no
sideways scrolling, no box whose content spills out of it or makes it
scroll sideways (only a table's wrapper, code and the log may), the page's heading in the first screen, every
field wide enough to read, and on a phone every control big enough to tap. Each returns a list of readable
problems; the tests assert it is empty.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page

AXE = Path(__file__).with_name("axe") / "axe.min.js"
AXE_VERSION = "4.14.1"
#: WCAG 2.2 target size minimum (2.5.8, level AA), for controls on a phone
TAP_MIN_PX = 24
#: a field narrower than this shows a few characters of what it holds (a tag's name, an address)
FIELD_MIN_PX = 80


def inject_axe(context: BrowserContext) -> None:
    """Every page the context opens from now on has `window.axe`."""
    context.add_init_script(path=str(AXE))


def axe_violations(page: Page) -> list[str]:
    """Every axe-core violation on the page as it is now (all rules, all impacts), one line each."""
    assert page.evaluate("() => typeof axe === 'object' && axe.version") == AXE_VERSION, "axe-core is not injected"
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, { resultTypes: ['violations'] })).violations"
        ".map(v => ({ id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ') + (n.failureSummary ? ' — ' + n.failureSummary.replace(/\\s+/g, ' ') : '')) }))")
    return [f"{v['impact']} {v['id']} ({v['help']}): " + "; ".join(v["nodes"][:4])
            + (f" (and {len(v['nodes']) - 4} more)" if len(v["nodes"]) > 4 else "") for v in found]


_LAYOUT = """
({ phone, tapMin, fieldMin }) => {
  const out = [];
  const vw = window.innerWidth, vh = window.innerHeight;
  const name = e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
    + (typeof e.className === "string" && e.className.trim() ? "." + e.className.trim().split(/\\s+/).join(".") : "");
  const shown = e => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden" && !e.closest("dialog:not([open]), [hidden]");
  const scroller = e => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== "visible") return p; } return null; };
  const outside = new Set();
  const root = document.scrollingElement;
  if (root.scrollWidth > vw) out.push(`the page scrolls sideways: ${root.scrollWidth} px wide in a ${vw} px window`);
  for (const e of document.body.querySelectorAll("*")) {
    if (!(e instanceof HTMLElement) || !shown(e)) continue;
    const cs = getComputedStyle(e);
    if (cs.display !== "inline" && cs.overflowX === "visible" && e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1
        && !scroller(e))
      out.push(`${name(e)}: its content is ${e.scrollWidth} px wide in a ${e.clientWidth} px box`);
    // only what is meant to scroll sideways may: a table's wrapper, code, the log
    if ((cs.overflowX === "auto" || cs.overflowX === "scroll") && e.scrollWidth > e.clientWidth + 1
        && !e.matches(".table-wrap, pre, textarea, .logs"))
      out.push(`${name(e)}: scrolls sideways (${e.scrollWidth} px of content in ${e.clientWidth} px)`);
    const r = e.getBoundingClientRect();
    if ((r.right > vw + 1 || r.left < -1) && !scroller(e) && !e.classList.contains("visually-hidden")
        && !outside.add(e).has(e.parentElement))  // the outermost one says it
      out.push(`${name(e)}: outside the window (${Math.round(r.left)}..${Math.round(r.right)} px of ${vw})`);
  }
  const h1 = document.querySelector("main h1");
  if (h1 && h1.getBoundingClientRect().bottom > vh) out.push(`the page's heading is below the first screen (${Math.round(h1.getBoundingClientRect().bottom)} px of ${vh})`);
  for (const e of document.querySelectorAll("input:not([type=checkbox]):not([type=radio]):not([type=file]):not([type=hidden]), select")) {
    if (shown(e) && !e.classList.contains("visually-hidden") && e.getBoundingClientRect().width < fieldMin)
      out.push(`${name(e)} "${e.getAttribute("aria-label") || e.name || ""}": ${Math.round(e.getBoundingClientRect().width)} px wide, too narrow to read what it holds`);
  }
  if (phone) {
    const controls = "button, input:not([type=hidden]), select, textarea, summary, nav a, header a, a.button, label.file-button";
    for (const e of document.querySelectorAll(controls)) {
      if (!shown(e) || e.classList.contains("visually-hidden")) continue;
      const r = e.getBoundingClientRect();
      if (r.width < tapMin || r.height < tapMin) out.push(`${name(e)} "${(e.innerText || e.value || e.getAttribute("aria-label") || "").trim().slice(0, 30)}": ${Math.round(r.width)}x${Math.round(r.height)} px, too small to tap`);
    }
  }
  return out;
}
"""


def layout_problems(page: Page, phone: bool) -> list[str]:
    """What is wrong with the page's layout at the current viewport (empty: nothing)."""
    problems: list[str] = page.evaluate(_LAYOUT, {"phone": phone, "tapMin": TAP_MIN_PX, "fieldMin": FIELD_MIN_PX})
    return problems


def problems_at_every_size(page: Page, viewports: dict[str, dict[str, int]]) -> list[str]:
    """axe-core's violations and the layout problems of the page as it is now, at each of `viewports`
    (the page is not reloaded: a state reached by a walk is checked as it is); the size is restored."""
    before = page.viewport_size
    found: list[str] = []
    try:
        for size, viewport in viewports.items():
            page.set_viewport_size(viewport)
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            found += [f"at {size}: {f}" for f in axe_violations(page) + layout_problems(page, phone=size == "phone")]
    finally:
        if before is not None:
            page.set_viewport_size(before)
    return found
