"""The web view's one page: a card per source (live stream, state, FPS, drops, reconnects, queue,
events) and the per-stage latency table, refreshed by polling /api/stats about once a second.

Static: the server substitutes nothing. A token given in the page's own URL (?token=...) is sent
back as `Authorization: Bearer` by fetch() and as ?token= on the <img> URLs (an <img> cannot send
headers). Browsers hold about 6 connections per host over HTTP/1.1 and every MJPEG stream keeps
one open, so the first MAX_STREAMS sources stream and the rest refresh snapshots (/frame/<i>.jpg);
otherwise the stats polling would starve.
"""
from __future__ import annotations

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgevision</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { margin: 0; padding: 12px; background: #111; color: #ddd; font: 14px system-ui, sans-serif; }
h1 { font-size: 16px; margin: 0 0 8px; font-weight: 600; }
#summary span { margin-right: 16px; }
#summary b, .card b { color: #fff; font-variant-numeric: tabular-nums; }
#sources { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 12px; margin: 12px 0; }
.card { background: #1c1c1c; border-radius: 6px; padding: 8px; }
.card img { width: 100%; display: block; background: #000; min-height: 60px; }
.card .title { margin-bottom: 6px; word-break: break-all; }
.card .nums span { margin-right: 12px; white-space: nowrap; }
.state { padding: 1px 6px; border-radius: 3px; background: #444; color: #fff; }
.state.live { background: #1f7a1f; } .state.connecting, .state.reconnecting { background: #9a6b00; }
.state.failed { background: #a01818; } .state.ended { background: #555; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
td, th { padding: 2px 12px 2px 0; text-align: right; } td:first-child, th:first-child { text-align: left; }
#error { color: #f66; }
</style></head>
<body>
<h1>edgevision live view</h1>
<div id="summary">
  <span>frames <b id="frames">-</b></span><span>FPS <b id="fps">-</b></span>
  <span>dropped <b id="dropped">-</b></span><span>run <b id="seconds">-</b> s</span>
  <span id="error"></span>
</div>
<div id="sources"></div>
<table id="stages"><thead><tr><th>stage</th><th>p50 ms</th><th>p99 ms</th><th>mean ms</th></tr></thead>
<tbody></tbody></table>
<script>
"use strict";
const MAX_STREAMS = 4;
const token = new URLSearchParams(location.search).get("token");
const q = token ? "?token=" + encodeURIComponent(token) : "";
const headers = token ? {"Authorization": "Bearer " + token} : {};
const fmt = (v, d) => (v === null || v === undefined) ? "-" : (typeof v === "number" ? v.toFixed(d) : String(v));

function snapshotLoop(img, i) {  // beyond MAX_STREAMS: reload the newest JPEG once the last one arrived
  const next = () => setTimeout(() => { img.src = "/frame/" + i + ".jpg" + q + (q ? "&" : "?") + "t=" + Date.now(); }, 200);
  img.onload = next; img.onerror = () => setTimeout(next, 800); next();
}

function card(i) {
  let el = document.getElementById("source-" + i);
  if (el) return el;
  el = document.createElement("div");
  el.className = "card"; el.id = "source-" + i;
  el.innerHTML = '<div class="title">source ' + i + ' <span class="uri"></span> <span class="state">-</span></div>' +
    '<img alt="source ' + i + '">' +
    '<div class="nums"><span>FPS <b class="fps">-</b></span><span>frames <b class="frames">-</b></span>' +
    '<span>dropped <b class="dropped">-</b></span><span>reconnects <b class="reconnects">-</b></span>' +
    '<span>queue <b class="queue">-</b></span><span class="events"></span></div>';
  const img = el.querySelector("img"); img.id = "stream-" + i;
  if (document.querySelectorAll("#sources .card").length < MAX_STREAMS) img.src = "/stream/" + i + q;
  else snapshotLoop(img, i);
  document.getElementById("sources").appendChild(el);
  return el;
}

function render(s) {
  document.getElementById("frames").textContent = fmt(s.frames, 0);
  document.getElementById("fps").textContent = fmt(s.fps, 1);
  document.getElementById("dropped").textContent = fmt(s.dropped, 0);
  document.getElementById("seconds").textContent = fmt(s.seconds, 0);
  for (const src of (s.sources || [])) {
    const el = card(src.index);
    const set = (cls, v) => { el.querySelector("." + cls).textContent = v; };
    set("uri", src.uri || ""); set("fps", fmt(src.fps, 1)); set("frames", fmt(src.frames, 0));
    set("dropped", fmt(src.dropped, 0)); set("reconnects", fmt(src.reconnects, 0));
    set("queue", typeof src.queue === "object" && src.queue !== null ? JSON.stringify(src.queue) : fmt(src.queue, 0));
    const st = el.querySelector(".state"); st.textContent = src.state || "-"; st.className = "state " + (src.state || "");
    set("events", Object.entries(src.events || {}).map(([k, n]) => k + " " + n).join(", "));
  }
  const body = document.querySelector("#stages tbody");
  body.textContent = "";
  for (const [stage, d] of Object.entries(s.stages_ms || {})) {
    const tr = document.createElement("tr");
    for (const v of [stage, fmt(d.p50, 2), fmt(d.p99, 2), fmt(d.mean, 2)]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

async function poll() {
  try {
    const r = await fetch("/api/stats", {headers, cache: "no-store"});
    if (!r.ok) throw new Error("/api/stats: HTTP " + r.status);
    render(await r.json());
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = String(e.message || e);
  }
  setTimeout(poll, 1000);
}
poll();
</script>
</body></html>
"""
