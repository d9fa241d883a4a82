"""One self-contained HTML page: plotly.js inlined once, each figure's JSON in its own
``<script type="application/json">`` block, and a small loader.

Why a loader: a browser keeps at most 16 WebGL contexts per page (Chromium drops the oldest beyond
that, and its plot goes blank), and plotly.js gives every 3D scene its own context. A gallery has
dozens of scenes, so the loader draws a 3D panel when it scrolls into view and frees
(``WEBGL_lose_context`` + ``Plotly.purge``) the panel seen longest ago once :data:`MAX_LIVE` are
drawn. When more panels than that are on screen at once, each is still drawn once, taking the
place of the one drawn longest ago, which keeps a still of its view read from its own context
(plotly.js's scene ``toImage``; ``Plotly.toImage`` itself took over 10 s per panel in software
WebGL); pointing at a still makes it a live 3D view again. 2D charts (SVG) are drawn at once.

The page fetches nothing: no ``<script src>``, no ``<link>``, no web fonts.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from ..fileio import atomic_open

MAX_LIVE = 14
"""3D panels drawn at one time: below Chromium's 16 WebGL contexts per page, with two spare."""

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 18px 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 26px 0 6px; border-bottom: 1px solid #ddd; }
h3 { font-size: 14px; margin: 14px 0 4px; } .meta { color: #555; font-size: 12px; } .meta td { padding: 0 10px 0 0; }
.grid { display: flex; flex-wrap: wrap; gap: 8px; } .row { display: flex; gap: 8px; align-items: flex-start; margin-bottom: 8px; }
figure.panel { margin: 0; border: 1px solid #e3e3e3; border-radius: 4px; }
figure.panel figcaption { font-size: 12px; text-align: center; padding: 2px 4px; color: #333; }
.gl { position: relative; } .gl[data-state="idle"]::before, .gl[data-state="waiting"]::before {
  position: absolute; inset: 0; display: flex; align-items: center; justify-content: center; text-align: center;
  color: #999; font-size: 12px; padding: 10px; }
.gl { background: no-repeat center / contain; } .gl[data-state="idle"]::before { content: "3D view: loads when scrolled into view"; }
.gl[data-state="waiting"]::before { content: "point here to show the 3D view"; }
.rowlabel { width: 70px; font-size: 12px; color: #444; padding-top: 8px; } .note { color: #666; font-size: 12px; }
code { font-size: 12px; }
"""

_LOADER = """
(function () {
  "use strict";
  var MAX_LIVE = %d;
  var live = [];            // drawn 3D panels, the one seen longest ago first
  var visible = new Set();
  function spec(el) { return JSON.parse(document.getElementById(el.dataset.spec).textContent); }
  function config(s) { return Object.assign({displaylogo: false, displayModeBar: false, responsive: false, scrollZoom: false}, s.config || {}); }
  function still(el) {
    // the scene's current view, read from its own context (plotly.js's scene.toImage) before it goes
    try {
      var url = el._fullLayout.scene._scene.toImage("png");
      el.style.backgroundImage = "url(" + url + ")";
      el.dataset.still = "1";
    } catch (err) { /* no still: the panel shows its hint instead */ }
  }
  function release(el) {
    // Plotly.purge leaves the WebGL context to the garbage collector, which is too late for the cap.
    el.querySelectorAll(".gl-container canvas").forEach(function (c) {
      var gl = c.getContext("webgl2") || c.getContext("webgl");
      var ext = gl && gl.getExtension("WEBGL_lose_context");
      if (ext) ext.loseContext();
    });
    Plotly.purge(el);
  }
  function free(el) {
    live.splice(live.indexOf(el), 1);
    if (visible.has(el)) still(el);
    release(el);
    el.dataset.state = visible.has(el) ? (el.dataset.still ? "picture" : "waiting") : "idle";
  }
  function draw(el, force) {
    var st = el.dataset.state;
    if (st === "live" || st === "loading") return;
    if (live.length >= MAX_LIVE) {
      var done = live.filter(function (p) { return p.dataset.state === "live"; });  // not while loading
      var victim = done.find(function (p) { return !visible.has(p); });
      // every drawn panel is on screen: a panel never drawn takes the place of the one seen longest
      // ago, which keeps a still; so every panel on screen is drawn once, then pointing at a still redraws it
      if (!victim && (force || !el.dataset.drawn)) victim = done[0];
      if (!victim) { el.dataset.state = el.dataset.still ? "picture" : "waiting"; return; }
      free(victim);
    }
    el.dataset.state = "loading";
    el.dataset.drawn = "1";
    live.push(el);
    var s = spec(el);
    Plotly.newPlot(el, {data: s.data, layout: s.layout, frames: s.frames || [], config: config(s)}).then(
      function () { if (el.dataset.state === "loading") el.dataset.state = "live"; pump(); },
      function (err) { el.dataset.state = "error"; console.error("gallery: plot " + el.dataset.spec + " failed: " + err); });
  }
  function pump() {  // panels on screen that waited for a panel to finish loading
    document.querySelectorAll('.gl[data-state="waiting"]').forEach(function (el) {
      if (visible.has(el) && !el.dataset.drawn) draw(el, false);
    });
  }
  function seen(el) { var i = live.indexOf(el); if (i >= 0) { live.splice(i, 1); live.push(el); } }
  var io = new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      if (e.isIntersecting) { visible.add(e.target); seen(e.target); }
      else { visible.delete(e.target); }
    });
    entries.forEach(function (e) { if (e.isIntersecting) draw(e.target, false); });
  });
  document.querySelectorAll(".gl").forEach(function (el) {
    el.dataset.state = "idle";
    io.observe(el);
    el.addEventListener("pointerenter", function () {
      var st = el.dataset.state;
      if (st === "picture" || st === "waiting" || st === "idle") draw(el, true);
    });
  });
  document.querySelectorAll(".flat").forEach(function (el) {
    var s = spec(el);
    Plotly.newPlot(el, s.data, s.layout, config(s)).then(function () { el.dataset.state = "live"; },
      function (err) { console.error("gallery: chart " + el.dataset.spec + " failed: " + err); });
  });
})();
"""


def _json_script(text: str) -> str:
    # "</" would end the <script> element early; "<\\/" means the same inside a JSON string.
    return text.replace("</", "<\\/")


class Page:
    """Collects sections and figures; :meth:`html` gives the whole page as one string."""

    def __init__(self, title: str, *, max_live: int = MAX_LIVE):
        if not 1 <= int(max_live) <= 15:
            raise ValueError(f"max_live must be 1..15 (browsers allow about 16 WebGL contexts), got {max_live}")
        self.title = title
        self.max_live = int(max_live)
        self.parts: list[str] = []
        self._specs: list[str] = []
        self.counts: dict[str, int] = {}

    def panel(self, fig, *, kind: str, caption: str = "", gl: bool = True) -> str:
        """HTML of one figure panel (``gl``: a lazily drawn 3D scene; else a 2D chart drawn at
        load). ``kind`` goes to ``data-kind`` and into :attr:`counts`."""
        import plotly.io as pio

        sid = f"fig{len(self._specs)}"
        self._specs.append(f'<script type="application/json" id="{sid}">{_json_script(pio.to_json(fig, validate=False))}</script>')
        self.counts[kind] = self.counts.get(kind, 0) + 1
        w, h = fig.layout.width, fig.layout.height
        cls = "gl" if gl else "flat"
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        return (
            f'<figure class="panel" data-kind="{html.escape(kind)}"><div class="{cls}" data-spec="{sid}" '
            f'style="width:{w}px;height:{h}px"></div>{cap}</figure>'
        )

    def section(self, title: str, body: str, *, sid: str, note: str = "") -> None:
        """Append ``<section id=sid>`` with a heading, an optional note (plain text) and ``body`` (HTML)."""
        n = f'<p class="note">{html.escape(note)}</p>' if note else ""
        self.parts.append(f'<section id="{html.escape(sid)}"><h2>{html.escape(title)}</h2>{n}{body}</section>')

    def raw(self, fragment: str) -> None:
        self.parts.append(fragment)

    def html(self) -> str:
        from plotly.offline import get_plotlyjs

        return "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="en"><head><meta charset="utf-8">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style>",
                f"<script>{get_plotlyjs()}</script>",
                "</head><body>",
                *self.parts,
                *self._specs,
                f"<script>{_LOADER % self.max_live}</script>",
                "</body></html>",
            ]
        )


def write_page(page: Page, out: str | os.PathLike) -> Path:
    """Write the page atomically (temporary file + rename) and return its path."""
    out = Path(out)
    with atomic_open(out, "w") as f:
        f.write(page.html())
    return out


def meta_table(items: dict) -> str:
    """A small two-column table of the scalar entries of ``items`` (lists shown when short)."""
    rows = []
    for k, v in items.items():
        if isinstance(v, (dict,)) or (isinstance(v, list) and len(v) > 12):
            continue
        text = json.dumps(v) if isinstance(v, list) else str(v)
        rows.append(f"<tr><td>{html.escape(str(k))}</td><td><code>{html.escape(text[:200])}</code></td></tr>")
    return f'<table class="meta">{"".join(rows)}</table>' if rows else ""
