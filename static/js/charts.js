// Usage charts with uPlot (static/vendor/uplot). Markup:
//   <div class="chart" data-chart='{"labels":["cpu"],"x":[unix seconds...],"series":[[0.1,...]]}'
//        data-unit="%"></div>
// Include after vendor/uplot/uPlot.iife.min.js (deferred or not). Charts draw on load and
// whenever htmx swaps new markup in (responses and live pushes).
(function () {
  "use strict";
  var palette = ["#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed"];

  function draw(el) {
    if (el.dataset.drawn || typeof uPlot === "undefined") return;
    var spec = JSON.parse(el.dataset.chart || "{}");
    if (!spec.x || !spec.series) return;
    var unit = el.dataset.unit || "";
    var series = [{}].concat(spec.series.map(function (_, i) {
      return {
        label: (spec.labels || [])[i] || "series " + (i + 1),
        stroke: palette[i % palette.length],
        width: 1.5,
        fill: palette[i % palette.length] + "22",
        value: function (u, v) { return v == null ? "—" : v.toFixed(1) + unit; },
      };
    }));
    new uPlot({
      width: el.clientWidth || 480,
      height: Number(el.dataset.height || 160),
      series: series,
      axes: [{}, {
        values: function (u, vals) { return vals.map(function (v) { return v + unit; }); },
        // Wide enough for the longest label ("0.025 MiB/s"), which the default width clipped.
        size: function (u, values) {
          var longest = (values || []).reduce(function (m, v) { return Math.max(m, String(v).length); }, 0);
          return Math.max(50, Math.ceil(longest * 7 + 20));
        },
      }],
    }, [spec.x].concat(spec.series), el);
    el.dataset.drawn = "1";
  }

  // Always scan the document: after an outerHTML swap the event's target is the element that was
  // replaced (detached), so scanning it missed the new charts. Drawn charts are skipped.
  function drawAll() { document.querySelectorAll("[data-chart]").forEach(draw); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
  ["htmx:afterSettle", "htmx:oobAfterSwap", "htmx:wsAfterMessage"].forEach(function (name) {
    document.addEventListener(name, drawAll);
  });
})();
