// The page's own question before a destructive action: a <dialog> (templates/htmx/confirm_dialog.html)
// rather than window.confirm, which a browser lets people switch off. Markup it reads:
//   data-confirm="text"                on the button pressed, the element that makes the request, or the
//                                      form (htmx or plain); with data-confirm-title, data-confirm-button
//                                      (the confirming button's label), data-confirm-dismiss (the other's)
//   data-confirm-from="#select"        the chosen <option> carries those attributes (none: no question)
//   data-confirm-items="selector"      the checked inputs it matches are listed (data-confirm-label, else
//                                      their row's first cell); none matched: nothing to ask
//   data-confirm-when="selector"       ask only while the selector matches (e.g. a radio "over this guest")
//   "{count}" and "{s}" in the texts   the number of listed items and a plural "s"
// Live pushes: an element with data-state-key is not swapped by a push carrying the same key (an open
// menu or a pending question stays put while only figures changed).
// Selections: data-selection-count="name" shows how many inputs of that name its form has checked;
// data-clear-selection="name" on an htmx form unchecks them once its request succeeded.
(function () {
  "use strict";

  function confirmAttrs(el) {
    if (!el || !el.dataset || el.dataset.confirm === undefined) return null;
    return { text: el.dataset.confirm, title: el.dataset.confirmTitle, button: el.dataset.confirmButton,
             dismiss: el.dataset.confirmDismiss, when: el.dataset.confirmWhen };
  }

  function itemLabel(input) {
    if (input.dataset.confirmLabel) return input.dataset.confirmLabel;
    var row = input.closest("tr");
    return (row && row.cells.length ? row.cells[0].textContent : input.value).trim();
  }

  // What to ask before `elt` (a form or a button) sends its request, or null to send it at once.
  function questionFor(elt, submitter) {
    var ask = confirmAttrs(submitter) || confirmAttrs(elt);
    if (!ask && elt.dataset && elt.dataset.confirmFrom) {
      var select = document.querySelector(elt.dataset.confirmFrom);
      ask = confirmAttrs(select && select.selectedOptions[0]);
    }
    if (!ask) return null;
    var when = ask.when || elt.dataset.confirmWhen;
    if (when && !document.querySelector(when)) return null;
    var items = [];
    var selector = (submitter && submitter.dataset && submitter.dataset.confirmItems) || elt.dataset.confirmItems;
    if (selector) {
      items = Array.prototype.map.call(document.querySelectorAll(selector), itemLabel);
      if (!items.length) return null;  // nothing chosen, nothing at stake: the server says what is missing
    }
    var fill = function (text) {
      return (text || "").replace(/\{count\}/g, String(items.length)).replace(/\{s\}/g, items.length === 1 ? "" : "s");
    };
    return { title: fill(ask.title) || "Are you sure?", text: fill(ask.text), button: ask.button || "Confirm",
             dismiss: ask.dismiss || "Cancel", items: items };
  }

  function closeMenus(except) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (menu !== except) menu.open = false;
    });
  }

  // Opens the dialog; `proceed` runs only when the person chose the confirm button.
  function ask(question, proceed) {
    var dialog = document.getElementById("confirm-dialog");
    if (!dialog) {  // a page without the base layout: still ask, with what the browser has
      if (window.confirm(question.title + "\n\n" + question.text + "\n" + question.items.join("\n"))) proceed();
      return;
    }
    if (dialog.open) return;
    closeMenus(null);
    dialog.querySelector("#confirm-title").textContent = question.title;
    dialog.querySelector("#confirm-text").textContent = question.text;
    var list = dialog.querySelector("#confirm-items");
    list.replaceChildren.apply(list, question.items.map(function (label) {
      var li = document.createElement("li");
      li.textContent = label;
      return li;
    }));
    list.hidden = question.items.length === 0;
    dialog.querySelector("#confirm-ok").textContent = question.button;
    dialog.querySelector("button[value=cancel]").textContent = question.dismiss;
    dialog.returnValue = "";
    dialog.addEventListener("close", function () {
      if (dialog.returnValue === "ok") proceed();
    }, { once: true });
    dialog.showModal();
    dialog.querySelector("button[value=cancel]").focus();  // Enter on an unread dialog must not act
  }

  function notify(text) {
    var box = document.getElementById("notifications");
    if (!box) return;
    var note = document.createElement("div");
    note.className = "message warning";
    note.setAttribute("role", "alert");
    note.textContent = text;
    box.appendChild(note);
  }

  // htmx fires htmx:confirm before every request; holding it back until the answer is its documented use.
  document.addEventListener("htmx:confirm", function (event) {
    var detail = event.detail;
    var trigger = detail.triggeringEvent;
    var question = questionFor(detail.elt, trigger && trigger.submitter);
    if (!question) return;
    event.preventDefault();
    ask(question, function () {
      // Replaced meanwhile by a live update (the guest changed state): the question no longer holds.
      if (!document.body.contains(detail.elt)) {
        notify("Nothing was done: the page changed while you were asked (" + question.title + "). " +
               "Look again and retry.");
        return;
      }
      detail.issueRequest(true);
    });
  });

  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    var incoming = event.detail.fragment && event.detail.fragment.firstElementChild;
    var key = target && target.dataset && target.dataset.stateKey;
    if (key !== undefined && incoming && incoming.dataset && incoming.dataset.stateKey === key) {
      event.detail.shouldSwap = false;
    }
  });

  // Plain (non-htmx) forms: hold the submit, submit again once confirmed.
  var HTMX_FORM = "[hx-post],[hx-get],[hx-put],[hx-patch],[hx-delete],[data-hx-post],[data-hx-get],[data-hx-put]," +
                  "[data-hx-patch],[data-hx-delete],[hx-boost=true] form,[data-hx-boost=true] form";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.method === "dialog" || form.matches(HTMX_FORM)) return;
    if (form.dataset.confirmed) {
      delete form.dataset.confirmed;
      return;
    }
    var submitter = event.submitter;
    var question = questionFor(form, submitter);
    if (!question) return;
    event.preventDefault();
    ask(question, function () {
      form.dataset.confirmed = "1";
      if (submitter) form.requestSubmit(submitter); else form.requestSubmit();
    });
  }, true);

  // "More" menus: one open at a time, closed by a click outside, a chosen item, or Escape.
  document.addEventListener("click", function (event) {
    var menu = event.target.closest ? event.target.closest("details.menu") : null;
    var chosen = event.target.closest ? event.target.closest("details.menu .menu-items button") : null;
    closeMenus(chosen ? null : menu);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") closeMenus(null);
  });

  function checked(form, name) {
    return Array.prototype.filter.call(form.elements, function (el) { return el.name === name && el.checked; });
  }

  function refreshCounts() {
    document.querySelectorAll("[data-selection-count]").forEach(function (el) {
      var form = el.closest("form");
      var n = form ? checked(form, el.dataset.selectionCount).length : 0;
      el.textContent = n + " selected";
    });
  }

  document.addEventListener("change", refreshCounts);
  document.addEventListener("htmx:afterSwap", refreshCounts);
  document.addEventListener("DOMContentLoaded", refreshCounts);
  // After a bulk action the selection is spent: a second Apply must not hit the same guests again.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!event.detail.successful || !form || !form.dataset || !form.dataset.clearSelection) return;
    checked(form, form.dataset.clearSelection).forEach(function (el) { el.checked = false; });
    refreshCounts();
  });
})();
