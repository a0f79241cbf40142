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

  // Live pushes go to a whole group (cluster-3, operation-<id>) whose pages each show a part of
  // what is pushed: drop the top-level fragments whose swap target this page does not have, before
  // htmx swaps them (htmx 2 reports a missing oob target as htmx:oobErrorNoTarget). Active on the
  // body (base.html), so every websocket of the page is guarded; plain HTTP answers are untouched.
  function oobTarget(el) {
    var spec = el.getAttribute("hx-swap-oob") || el.getAttribute("data-hx-swap-oob") || "true";
    var colon = spec.indexOf(":");
    if (spec !== "true" && colon > 0) return spec.slice(colon + 1);
    return el.id ? "#" + CSS.escape(el.id) : null;
  }

  function targetExists(selector) {
    try {
      return document.querySelector(selector) !== null;
    } catch (e) {
      return true;  // an htmx extended selector: let htmx resolve it
    }
  }

  if (window.htmx) {
    htmx.defineExtension("live-guard", {
      transformResponse: function (text, xhr) {
        if (xhr) return text;  // websocket messages have no xhr
        var holder = document.createElement("template");
        holder.innerHTML = text;
        var dropped = 0;
        Array.prototype.slice.call(holder.content.children).forEach(function (el) {
          var selector = oobTarget(el);
          if (!selector || !targetExists(selector)) { el.remove(); dropped++; }
        });
        return dropped ? holder.innerHTML : text;
      },
    });
  }

  // Show a visible hint while the live connection is down (it reconnects by itself).
  document.addEventListener("htmx:wsClose", function () { document.body.classList.add("live-down"); });
  document.addEventListener("htmx:wsOpen", function () { document.body.classList.remove("live-down"); });
})();
