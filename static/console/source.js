// Source detail charts: health score and delivery rate over the retained samples (uPlot),
// with a vertical line at each mode switch. Data comes once from samples.json.
(function () {
  "use strict";
  var script = document.currentScript || document.querySelector("script[data-series]");
  var url = script.getAttribute("data-series");

  function switchLines(switches) {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx;
          ctx.save();
          switches.forEach(function (s) {
            var x = Math.round(u.valToPos(s.t, "x", true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
            ctx.strokeStyle = s.to === "event" ? "#1b7a3a" : s.to === "hybrid" ? "#8a5a00" : "#b3261e";
            ctx.setLineDash(s.to === "polling" ? [] : [6, 4]);
            ctx.lineWidth = 2;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          });
          ctx.restore();
        }],
      },
    };
  }

  function chart(el, label, data, color, switches, yRange) {
    if (!el) return;
    if (data[0].length === 0) {
      el.textContent = "No samples yet: the monitor records one every 10 s while the source is watched.";
      el.classList.add("muted");
      return;
    }
    var width = Math.max(260, el.clientWidth || 300);
    var opts = {
      width: width, height: 220,
      plugins: [switchLines(switches)],
      scales: { x: { time: true }, y: yRange ? { range: yRange } : {} },
      series: [{}, { label: label, stroke: color, width: 2, fill: color + "22", spanGaps: true }],
      axes: [{}, { size: 50 }],
      legend: { live: true },
    };
    var plot = new uPlot(opts, data, el);
    window.addEventListener("resize", function () { plot.setSize({ width: Math.max(260, el.clientWidth), height: 220 }); });
  }

  function draw(series) {
    chart(document.getElementById("chart-health"), "score", [series.t, series.score], "#1f5fbf", series.switches, [0, 100]);
    chart(document.getElementById("chart-rate"), "events/s", [series.t, series.rate], "#6b3fa0", series.switches, null);
  }

  window.addEventListener("load", function () {
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(draw)
      .catch(function () { document.getElementById("chart-note").textContent = "The charts could not be loaded; the tables below still tell the story."; });
  });
})();
