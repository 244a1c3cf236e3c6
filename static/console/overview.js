// The live overview: rows arrive over a websocket (a snapshot on connect, then one
// update per monitor tick) and are patched in place. No page reloads, no polling:
// when the socket drops, it reconnects with backoff and gets a fresh snapshot.
(function () {
  "use strict";
  var table = document.getElementById("sources");
  if (!table) return;
  var tbody = table.tBodies[0];
  var live = document.getElementById("live");
  var sortKey = "name", sortDir = 1;
  window.BeastFlow.overview = { updates: 0, socket: null };

  function setLive(state, text) {
    live.dataset.state = state;
    live.textContent = text;
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function timeCell(iso) {
    if (!iso) return el("span", { class: "muted", text: "never" });
    var d = new Date(iso);
    return el("time", { datetime: iso, title: window.BeastFlow.absolute(d), "data-relative": "", text: window.BeastFlow.relative(d, Date.now()) });
  }

  function cells(r) {
    var v = function (x) { return x === null || x === undefined ? "-1" : String(x); };
    var mode = el("td", { "data-col": "mode", "data-value": r.mode }, [
      el("span", { class: "badge badge-" + r.mode, "data-field": "mode", text: r.mode_label })]);
    if (r.paused) { mode.appendChild(document.createTextNode(" ")); mode.appendChild(el("span", { class: "badge badge-paused", "data-field": "paused", text: "Paused" })); }
    var meter = el("span", { class: "meter " + r.health_band, "aria-hidden": "true" }, [el("span", { style: "width: " + (r.health_score || 0) + "%" })]);
    var health = el("span", { "data-field": "health", text: (r.health_score === null ? "–" : r.health_score) + " " }, [el("span", { class: "muted", text: r.health_band })]);
    var seq = el("td", { class: "num hide-narrow", "data-col": "seq", "data-value": v(r.seq_behind) }, [
      el("span", { class: "mono", text: (r.contiguous_seq === null ? "–" : r.contiguous_seq) + " / " + (r.upstream_seq === null ? "–" : r.upstream_seq) })]);
    if (r.seq_behind) { seq.appendChild(document.createTextNode(" ")); seq.appendChild(el("span", { class: "badge badge-degraded", text: r.seq_behind + " behind" })); }
    var failures = el("td", { class: "num", "data-col": "open_failures", "data-value": String(r.open_failures) }, [
      r.open_failures ? el("a", { href: "audit/?source=" + r.id + "&kind=failure" }, [el("span", { class: "badge badge-open", text: r.open_failures + " open" })])
        : el("span", { class: "muted", text: "none" })]);
    return [
      el("td", { "data-col": "name", "data-value": r.name.toLowerCase() }, [el("a", { href: r.url, text: r.name })]),
      mode,
      el("td", { "data-col": "health_score", "data-value": v(r.health_score) }, [el("span", { class: "score" }, [meter, health])]),
      el("td", { class: "num", "data-col": "events_per_s", "data-value": v(r.events_per_s), text: r.events_per_s_text }),
      el("td", { "data-col": "last_event_at", "data-value": r.last_event_at || "" }, [timeCell(r.last_event_at)]),
      seq,
      failures,
    ];
  }

  function apply(rows, replaceAll) {
    var seen = {};
    rows.forEach(function (r) {
      seen[r.id] = true;
      var tr = tbody.querySelector('tr[data-source-id="' + r.id + '"]');
      var before = tr ? tr.querySelector('[data-col="mode"]').dataset.value + "|" + tr.querySelector('[data-col="mode"]').textContent : null;
      if (!tr) { tr = el("tr", { "data-source-id": String(r.id) }); tbody.appendChild(tr); }
      tr.replaceChildren.apply(tr, cells(r));
      var after = r.mode + "|" + tr.querySelector('[data-col="mode"]').textContent;
      if (before !== null && before !== after) {
        // A mode or pause change: flash the row so the eye catches it.
        tr.classList.remove("flash"); void tr.offsetWidth; tr.classList.add("flash");
      }
    });
    if (replaceAll) {
      Array.prototype.slice.call(tbody.rows).forEach(function (tr) { if (!seen[tr.dataset.sourceId]) tr.remove(); });
    }
    summarise();
    sort();
    document.getElementById("sources-wrap").hidden = tbody.rows.length === 0;
    document.getElementById("sources-empty").hidden = tbody.rows.length !== 0;
    window.BeastFlow.overview.updates += 1;
  }

  function summarise() {
    var counts = { sources: 0, event: 0, hybrid: 0, polling: 0, paused: 0, open_failures: 0 };
    Array.prototype.forEach.call(tbody.rows, function (tr) {
      counts.sources += 1;
      if (tr.querySelector('[data-field="paused"]')) counts.paused += 1;
      else counts[tr.querySelector('[data-col="mode"]').dataset.value] += 1;
      counts.open_failures += Number(tr.querySelector('[data-col="open_failures"]').dataset.value) || 0;
    });
    Object.keys(counts).forEach(function (k) {
      var dd = document.querySelector('[data-summary="' + k + '"]');
      if (dd) dd.textContent = counts[k];
    });
  }

  function sort() {
    var th = table.querySelector('th[data-sort="' + sortKey + '"]');
    var numeric = th && th.hasAttribute("data-numeric");
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (a, b) {
      var x = a.querySelector('[data-col="' + sortKey + '"]').dataset.value;
      var y = b.querySelector('[data-col="' + sortKey + '"]').dataset.value;
      if (numeric) { x = Number(x); y = Number(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
    });
    rows.forEach(function (tr) { tbody.appendChild(tr); });
  }

  table.querySelectorAll("th[data-sort] button").forEach(function (button) {
    button.addEventListener("click", function () {
      var th = button.parentElement, key = th.dataset.sort;
      sortDir = key === sortKey ? -sortDir : 1;
      sortKey = key;
      table.querySelectorAll("th[data-sort]").forEach(function (other) { other.setAttribute("aria-sort", "none"); });
      th.setAttribute("aria-sort", sortDir === 1 ? "ascending" : "descending");
      sort();
    });
  });

  window.BeastFlow.follow("/ws/console/overview", {
    socket: function (socket) { window.BeastFlow.overview.socket = socket; },
    rows: apply,
    state: setLive,
  });
})();
