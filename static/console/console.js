// Shared by every console page: keep relative times fresh (a local timer, no network),
// and follow the live status rows for the pages that show them.
(function () {
  "use strict";
  function relative(date, now) {
    var s = (now - date) / 1000, future = s < 0;
    s = Math.abs(s);
    if (s < 2) return "just now";
    var text = s < 60 ? Math.floor(s) + " s" : s < 3600 ? Math.floor(s / 60) + " min"
      : s < 86400 ? Math.floor(s / 3600) + " h" : Math.floor(s / 86400) + " d";
    return future ? "in " + text : text + " ago";
  }
  function absolute(date) {
    return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }
  function refresh(root) {
    var now = Date.now();
    (root || document).querySelectorAll("time[data-relative]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) el.textContent = relative(d, now);
    });
  }
  // Follow the tenant's live status rows (console.consumers): a snapshot on connect, then
  // updates. A dropped socket reconnects with backoff and gets a fresh snapshot; a refusal
  // (4401 signed out, 4403/4404 not this tenant's) stops it and says why.
  function follow(path, on) {
    var retry = 500;
    function connect() {
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(scheme + location.host + path);
      if (on.socket) on.socket(socket);
      socket.onopen = function () { retry = 500; };
      socket.onmessage = function (message) {
        var data = JSON.parse(message.data);
        if (data.type === "snapshot") { on.rows(data.rows, true); on.state("live", "Live"); }
        else if (data.type === "update") on.rows(data.rows, false);
      };
      socket.onclose = function (event) {
        if (event.code === 4401) { on.state("down", "Signed out: reload to sign in again"); return; }
        if (event.code === 4403 || event.code === 4404) { on.state("down", "Not allowed to follow this tenant"); return; }
        on.state("down", "Disconnected, reconnecting…");
        setTimeout(connect, retry);
        retry = Math.min(retry * 2, 15000);
      };
    }
    connect();
  }
  window.BeastFlow = { relative: relative, absolute: absolute, refreshTimes: refresh, follow: follow };
  refresh();
  setInterval(refresh, 5000);
})();
