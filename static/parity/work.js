// Parity item card: keyboard shortcuts and time on task (the slider sync is in parity.js). No build step.
// Without this file the card still works: real forms, real links.
(function () {
  "use strict";

  // ---- time on task: only the time the page was visible counts ----
  var visibleMs = 0;
  var visibleSince = null;
  var cardId = null;

  function now() { return performance.now(); }
  function startClock() {
    visibleMs = 0;
    visibleSince = document.visibilityState === "visible" ? now() : null;
  }
  function secondsOnTask() {
    var ms = visibleMs + (visibleSince === null ? 0 : now() - visibleSince);
    return (ms / 1000).toFixed(1);
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      if (visibleSince === null) visibleSince = now();
    } else if (visibleSince !== null) {
      visibleMs += now() - visibleSince;
      visibleSince = null;
    }
  });
  // Capture phase: runs before htmx (or the browser) reads the form.
  document.addEventListener("submit", function (event) {
    var field = event.target.querySelector && event.target.querySelector("[data-seconds]");
    if (field) field.value = secondsOnTask();
  }, true);

  // ---- a new card (page load or htmx swap) ----
  function setUpCard() {
    var card = document.getElementById("card");
    var id = card ? card.getAttribute("data-assignment") : null;
    // A refused submit re-renders the same assignment: keep its clock running.
    if (id !== cardId || id === null) startClock();
    cardId = id;
    document.querySelectorAll("[data-help-open]").forEach(function (b) { b.hidden = false; });
    var article = card && card.querySelector(".card");
    var active = document.activeElement;
    if (article && (!active || active === document.body)) article.focus({ preventScroll: true });
  }
  document.addEventListener("DOMContentLoaded", setUpCard);
  document.addEventListener("htmx:afterSettle", setUpCard);

  // ---- keyboard ----
  function form() { return document.querySelector("form.judgment"); }
  function check(input) {
    if (!input) return;
    if (input.type === "checkbox") input.checked = !input.checked; else input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }
  function setScore(f, digit) {
    var lo = parseInt(f.dataset.min, 10);
    var hi = parseInt(f.dataset.max, 10);
    var points = hi - lo + 1;
    var score;
    if (points <= 10) {
      score = digit;
      if (digit === 0 && !(lo <= 0 && 0 <= hi)) score = 10;
      if (score < lo || score > hi) return;
    } else {
      score = digit === 0 ? hi : lo + Math.round(digit * (hi - lo) / 10);
    }
    var radio = f.querySelector('input[name="score"][type="radio"][value="' + score + '"]');
    if (radio) { check(radio); return; }
    var number = f.querySelector("[data-score-number]");
    var range = f.querySelector("[data-score-range]");
    if (number) number.value = String(score);
    if (range) { range.value = String(score); range.classList.remove("unset"); }
  }
  function setLabel(f, digit) {
    var index = digit === 0 ? 9 : digit - 1;
    check(f.querySelectorAll('input[name="labels"]')[index]);
  }
  function setChoice(f, choice) {
    var current = f.querySelector('input[name="choice"]:checked');
    var strength = "1";
    if (current && current.value === choice && (choice === "a" || choice === "b")) strength = "2";
    check(f.querySelector('input[name="choice"][value="' + choice + '"]'));
    check(f.querySelector('input[name="strength"][value="' + strength + '"]'));
  }
  function toggleHelp() {
    var dialog = document.getElementById("shortcut-help");
    if (!dialog) return;
    if (dialog.open) dialog.close(); else dialog.showModal();
  }
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-help-open]")) toggleHelp();
  });

  function isTyping(el) {
    if (!el) return false;
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" && /^(text|number|search|email|password|url|tel)$/.test(el.type);
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    var target = event.target;
    var key = event.key;
    if (isTyping(target)) {
      if (key === "Escape") target.blur();
      return;
    }
    var dialog = document.getElementById("shortcut-help");
    if (key === "?") { event.preventDefault(); toggleHelp(); return; }
    if (dialog && dialog.open) return;
    var f = form();
    if (!f) return;

    var skip = document.querySelector("[data-skip]");
    if (skip && skip.open) {
      if (key === "Escape") { skip.open = false; event.preventDefault(); return; }
      var reason = skip.querySelector('[data-skip-reason="' + key + '"]');
      if (reason) { event.preventDefault(); reason.click(); }
      return;
    }
    if (key === "s" && skip) {
      event.preventDefault();
      skip.open = true;
      var first = skip.querySelector("[data-skip-reason]");
      if (first) first.focus();
      return;
    }
    if (key === "Enter") {
      // Buttons, links and summaries keep their own Enter.
      if (target.closest && target.closest("button, a, summary")) return;
      event.preventDefault();
      f.requestSubmit();
      return;
    }
    var task = f.dataset.task;
    if (/^[0-9]$/.test(key)) {
      var digit = parseInt(key, 10);
      if (task === "rating") { setScore(f, digit); event.preventDefault(); }
      else if (task === "labels") { setLabel(f, digit); event.preventDefault(); }
      return;
    }
    if (task === "pairwise") {
      var choice = { a: "a", b: "b", t: "tie", x: "both_bad" }[key.toLowerCase()];
      if (choice) { event.preventDefault(); setChoice(f, choice); }
    }
  });
})();
