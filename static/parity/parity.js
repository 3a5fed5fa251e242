// Parity: small progressive enhancements for every page. Pages work without it.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  document.addEventListener("change", function (event) {
    var select = event.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.requestSubmit();
  });
  // A long rating scale: the slider and the number field show the same score, on every
  // page with judgment inputs (item card, revise, adjudication, calibration, lead forms).
  document.addEventListener("input", function (event) {
    var row = event.target.closest(".slider-row");
    if (!row) return;
    var range = row.querySelector("[data-score-range]");
    var number = row.querySelector("[data-score-number]");
    if (!range || !number) return;
    if (event.target === range) number.value = range.value;
    else if (event.target === number && number.value !== "") range.value = number.value;
    else return;
    range.classList.remove("unset");
    var unset = row.querySelector("[data-score-unset]");
    if (unset) unset.hidden = true;
  });

  // ---- refusals stay inside the page ----
  // The server answers a refused in-page request with a fragment for its target (400, 403,
  // 409: base.html's htmx-config swaps those). Anything else — a whole page (a proxy's error,
  // a login form), a 404 or 5xx that is not swapped, no connection — must not replace or
  // blank the page: say so where the request came from, and keep what was typed.
  function messageArea(elt) {
    var card = elt && elt.closest && elt.closest("#card");
    var area = card && card.querySelector("#card-messages");
    if (area) return area;
    var main = document.getElementById("main");
    area = document.getElementById("page-messages");
    if (!area && main) {
      area = document.createElement("div");
      area.id = "page-messages";
      area.setAttribute("aria-live", "assertive");
      main.insertBefore(area, main.firstChild);
    }
    return area;
  }
  function sayRefused(elt, text) {
    var area = messageArea(elt);
    if (!area) return;
    var p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.textContent = text;
    area.querySelectorAll("[data-client-error]").forEach(function (old) { old.remove(); });
    p.setAttribute("data-client-error", "");
    area.appendChild(p);
  }
  function texts() { return document.body ? document.body.dataset : {}; }
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    var body = event.detail.serverResponse || "";
    if (event.detail.shouldSwap && xhr && xhr.status >= 400 && /<html[\s>]/i.test(body.slice(0, 2000))) {
      event.detail.shouldSwap = false;
      sayRefused(event.detail.elt, (texts().refusedText || "") + " (HTTP " + xhr.status + ")");
    }
  });
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    sayRefused(event.detail.elt, (texts().refusedText || "") + " (HTTP " + (xhr ? xhr.status : "?") + ")");
  });
  document.addEventListener("htmx:sendError", function (event) {
    sayRefused(event.detail.elt, texts().offlineText || "");
  });

  // A box that scrolls must take keyboard focus, or its end cannot be read without a mouse
  // (axe: scrollable-region-focusable). Templates mark the known ones; this catches the rest.
  function focusableScrollers() {
    document.querySelectorAll("main *").forEach(function (el) {
      if (el.hasAttribute("tabindex") || el.matches("textarea, select, input, iframe")) return;
      var style = getComputedStyle(el);
      var scrolls = (/(auto|scroll)/.test(style.overflowY) && el.scrollHeight > el.clientHeight + 1)
        || (/(auto|scroll)/.test(style.overflowX) && el.scrollWidth > el.clientWidth + 1);
      if (scrolls && !el.querySelector("a[href], button, input, select, textarea, [tabindex]")) el.setAttribute("tabindex", "0");
    });
  }
  document.addEventListener("DOMContentLoaded", focusableScrollers);
  document.addEventListener("htmx:afterSettle", focusableScrollers);
  // On a phone the lead sub-navigation is one sideways-scrolling row: bring the current page's tab into view.
  document.addEventListener("DOMContentLoaded", function () {
    var current = document.querySelector(".lead-subnav ul [aria-current]");
    var row = current && current.closest("ul");
    if (row && row.scrollWidth > row.clientWidth) {
      current.scrollIntoView({ block: "nearest", inline: "center" });
    }
  });
})();
