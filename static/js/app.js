// Small page helpers; no framework. Charts: data-chart elements drawn with uPlot when loaded.
(function () {
  "use strict";

  // A login redirect answered to an htmx request: load the login page instead of a fragment.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr && xhr.responseURL && xhr.responseURL.indexOf("/login/") !== -1) {
      event.detail.shouldSwap = false;
      window.location.href = xhr.responseURL;
    }
  });

  // Show a visible hint while the live connection is down (it reconnects by itself).
  document.addEventListener("htmx:wsClose", function () { document.body.classList.add("live-down"); });
  document.addEventListener("htmx:wsOpen", function () { document.body.classList.remove("live-down"); });
})();
