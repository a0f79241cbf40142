// Usage charts with uPlot (static/vendor/uplot). Markup:
//   <div class="chart" data-chart='{"labels":["cpu"],"x":[unix seconds...],"series":[[0.1,...]]}'
//        data-unit="%"></div>
// Include after vendor/uplot/uPlot.iife.min.js. Charts re-draw when htmx swaps new markup in.
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
      axes: [{}, { values: function (u, vals) { return vals.map(function (v) { return v + unit; }); } }],
    }, [spec.x].concat(spec.series), el);
    el.dataset.drawn = "1";
  }

  function drawAll(root) { (root || document).querySelectorAll("[data-chart]").forEach(draw); }
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (e) { drawAll(e.target); });
  document.addEventListener("htmx:oobAfterSwap", function (e) { drawAll(e.detail.target || document); });
})();
