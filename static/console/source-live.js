// The source page's status line and stats (mode, paused, health, rate, seqs) follow the same
// live rows as the overview, for this source only (?source=<id>): a mode switch shows without a
// reload. The timeline, charts and tables below stay as loaded; they are history, not status.
(function () {
  "use strict";
  var status = document.getElementById("status");
  if (!status || !status.dataset.liveSource) return;
  var id = Number(status.dataset.liveSource);
  var live = document.getElementById("live");
  window.BeastFlow.source = { updates: 0 };

  function field(name) { return document.querySelector('[data-field="' + name + '"]'); }

  function dash(value) { return value === null || value === undefined ? "-" : String(value); }

  function timeOrNever(iso) {
    if (!iso) return '<span class="muted">never</span>';
    var d = new Date(iso);
    var time = document.createElement("time");
    time.setAttribute("datetime", iso);
    time.setAttribute("title", window.BeastFlow.absolute(d));
    time.setAttribute("data-relative", "");
    time.textContent = window.BeastFlow.relative(d, Date.now());
    return time.outerHTML;
  }

  function apply(rows) {
    rows.forEach(function (r) {
      if (r.id !== id) return;
      var mode = field("mode");
      if (mode.textContent !== r.mode_label) {
        // A switch: flash the status line so the eye catches it.
        status.classList.remove("flash"); void status.offsetWidth; status.classList.add("flash");
      }
      mode.className = "badge badge-" + r.mode;
      mode.textContent = r.mode_label;
      field("paused").hidden = !r.paused;
      field("mode_since").innerHTML = timeOrNever(r.mode_since);
      field("health_score").textContent = dash(r.health_score);
      field("health_band").textContent = r.health_band;
      field("events_per_s_text").textContent = r.events_per_s_text;
      field("last_event_at").innerHTML = timeOrNever(r.last_event_at);
      field("seq").textContent = dash(r.contiguous_seq) + " / " + dash(r.upstream_seq);
      field("open_failures").textContent = String(r.open_failures);
      window.BeastFlow.source.updates += 1;
    });
  }

  window.BeastFlow.follow("/ws/console/overview?source=" + id, {
    rows: apply,
    state: function (state, text) { live.dataset.state = state; live.textContent = text; },
  });
})();
