// Shared by every console page: keep relative times fresh (a local timer, no network).
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
  window.BeastFlow = { relative: relative, absolute: absolute, refreshTimes: refresh };
  refresh();
  setInterval(refresh, 5000);
})();
