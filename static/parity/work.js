// Parity item card: keyboard shortcuts, time on task, the draft, undo and the A/B diff
// (the slider sync is in parity.js). No build step.
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
    // A refused submit re-renders the same assignment, with what was entered: keep its
    // clock running, and its fields as the server filled them.
    var fresh = id !== cardId || id === null;
    if (fresh) startClock();
    cardId = id;
    document.querySelectorAll("[data-help-open], [data-diff-toggle]").forEach(function (b) { b.hidden = false; });
    if (id && fresh) restoreDraft(id);
    armUndo();
    var article = card && card.querySelector(".card");
    var active = document.activeElement;
    if (article && (!active || active === document.body)) article.focus({ preventScroll: true });
  }
  document.addEventListener("DOMContentLoaded", setUpCard);
  document.addEventListener("htmx:afterSettle", setUpCard);
  // Back/forward from the browser's page cache would show a card the server may have
  // moved past (judged, skipped): ask the server which lease is live instead.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && document.getElementById("card")) window.location.reload();
  });

  // ---- the draft: what the evaluator entered, kept in this browser until the server has it ----
  // Survives an expired session (log in again, same card), lost cookies, a reload, a crash.
  var DRAFT = "parity:draft:";
  var DRAFT_DAYS = 7;
  function draftKey(id) { return DRAFT + id; }
  function storage() { try { return window.localStorage; } catch (e) { return null; } }
  function readForm(f) {
    var value = { labels: [], issues: [], t: Date.now() };
    Array.prototype.forEach.call(f.elements, function (el) {
      if (!el.name || el.type === "hidden" || el.disabled) return;
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) return;
      if (el.name === "labels" || el.name === "issues") value[el.name].push(el.value);
      else if (el.name === "score" || el.name === "choice" || el.name === "strength" || el.name === "comment") value[el.name] = el.value;
    });
    return value;
  }
  function saveDraft() {
    var f = form(); var store = storage();
    var card = document.getElementById("card");
    var id = card && card.getAttribute("data-assignment");
    if (!f || !store || !id) return;
    try { store.setItem(draftKey(id), JSON.stringify(readForm(f))); } catch (e) { /* full or blocked: the form still works */ }
  }
  function restoreDraft(id) {
    var f = form(); var store = storage();
    if (!f || !store) return;
    var raw = store.getItem(draftKey(id));
    if (!raw) return;
    var draft;
    try { draft = JSON.parse(raw); } catch (e) { store.removeItem(draftKey(id)); return; }
    Array.prototype.forEach.call(f.elements, function (el) {
      if (!el.name || el.type === "hidden") return;
      if (el.type === "radio") { if (draft[el.name] !== undefined) el.checked = el.value === draft[el.name]; }
      else if (el.type === "checkbox") { if (draft[el.name]) el.checked = draft[el.name].indexOf(el.value) >= 0; }
      else if (draft[el.name] !== undefined && draft[el.name] !== "") el.value = draft[el.name];
    });
    var number = f.querySelector("[data-score-number]");
    if (number && number.value !== "") showScore(f, number.value);
    var filled = draft.score || draft.choice || draft.comment || (draft.labels || []).length || (draft.issues || []).length;
    var area = document.getElementById("card-messages");
    var text = document.body && document.body.dataset.draftRestoredText;
    if (filled && area && text && !area.querySelector("[data-draft-restored]")) {
      var note = document.createElement("p");
      note.className = "notice";
      note.setAttribute("role", "status");
      note.setAttribute("data-draft-restored", "");
      note.textContent = text;
      area.appendChild(note);
    }
  }
  function dropDraft(id) { var store = storage(); if (store && id) store.removeItem(draftKey(id)); }
  (function pruneDrafts() {
    var store = storage(); if (!store) return;
    var old = Date.now() - DRAFT_DAYS * 86400000;
    for (var i = store.length - 1; i >= 0; i--) {
      var key = store.key(i);
      if (!key || key.indexOf(DRAFT) !== 0) continue;
      try { if ((JSON.parse(store.getItem(key)) || {}).t < old) store.removeItem(key); } catch (e) { store.removeItem(key); }
    }
  })();
  document.addEventListener("input", function (event) { if (event.target.closest("form.judgment")) saveDraft(); });
  document.addEventListener("change", function (event) { if (event.target.closest("form.judgment")) saveDraft(); });
  // The server has the judgment (or the skip) once it answers 2xx with a card; a redirect to
  // log in, or a reload after lost cookies, is not an acknowledgement.
  // The card is swapped out before htmx:afterRequest (which then fires on an ancestor):
  // note whose draft a request carries when it leaves.
  var draftOfRequest = new WeakMap();
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    var card = elt && elt.closest && elt.closest("#card");
    if (card && event.detail.xhr && (elt.matches("form.judgment") || elt.closest("[data-skip]"))) {
      draftOfRequest.set(event.detail.xhr, card.getAttribute("data-assignment"));
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail.xhr;
    var id = xhr && draftOfRequest.get(xhr);
    if (!id || xhr.status < 200 || xhr.status >= 300) return;
    if (xhr.getResponseHeader("HX-Redirect") || xhr.getResponseHeader("HX-Refresh")) return;
    dropDraft(id);
  });

  // ---- undo of the submission just made, for a short window ----
  var undoTimer = null;
  function armUndo() {
    if (undoTimer) { clearTimeout(undoTimer); undoTimer = null; }
    var undo = document.querySelector("[data-undo-until]");
    if (!undo) return;
    var left = parseInt(undo.getAttribute("data-undo-until"), 10) - Date.now();
    if (left <= 0) { undo.hidden = true; return; }
    undoTimer = setTimeout(function () { undo.hidden = true; }, left);
  }

  // ---- differences between response A and B, highlighted on the text nodes ----
  // Word level; character level for scripts written without spaces. Model text is only
  // ever put back as text nodes (never innerHTML).
  var NO_SPACES = /^(zh|ja|th|km|lo|my|bo|dz|jv|su|bal|yue|wuu|ii)(-|$)/i;
  var MAX_CELLS = 4000000;
  function tokens(text, lang) {
    if (NO_SPACES.test(lang || "")) {
      if (window.Intl && Intl.Segmenter) {
        return Array.from(new Intl.Segmenter(lang, { granularity: "grapheme" }).segment(text), function (s) { return s.segment; });
      }
      return Array.from(text);
    }
    return text.match(/\s+|[^\s]+/g) || [];
  }
  // Which tokens of a and b are common (longest common subsequence): two arrays of booleans.
  function common(a, b) {
    var keepA = new Array(a.length).fill(false), keepB = new Array(b.length).fill(false);
    var start = 0;
    while (start < a.length && start < b.length && a[start] === b[start]) { keepA[start] = keepB[start] = true; start++; }
    var endA = a.length, endB = b.length;
    while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) { endA--; endB--; keepA[endA] = keepB[endB] = true; }
    var n = endA - start, m = endB - start;
    if (n === 0 || m === 0 || n * m > MAX_CELLS) return [keepA, keepB];
    var w = m + 1, table = new Uint32Array((n + 1) * w);
    for (var i = n - 1; i >= 0; i--) {
      for (var j = m - 1; j >= 0; j--) {
        table[i * w + j] = a[start + i] === b[start + j] ? table[(i + 1) * w + j + 1] + 1
          : Math.max(table[(i + 1) * w + j], table[i * w + j + 1]);
      }
    }
    i = 0; j = 0;
    while (i < n && j < m) {
      if (a[start + i] === b[start + j]) { keepA[start + i] = keepB[start + j] = true; i++; j++; }
      else if (table[(i + 1) * w + j] >= table[i * w + j + 1]) i++;
      else j++;
    }
    return [keepA, keepB];
  }
  function paint(el, parts, keep, cls) {
    el.textContent = "";
    var run = "", runKept = true;
    function flush() {
      if (!run) return;
      if (runKept || !/\S/.test(run)) el.appendChild(document.createTextNode(run));
      else { var mark = document.createElement("mark"); mark.className = cls; mark.textContent = run; el.appendChild(mark); }
      run = "";
    }
    for (var k = 0; k < parts.length; k++) {
      if (keep[k] !== runKept) { flush(); runKept = keep[k]; }
      run += parts[k];
    }
    flush();
  }
  function toggleDiff() {
    var a = document.getElementById("response-a"), b = document.getElementById("response-b");
    var button = document.querySelector("[data-diff-toggle]");
    if (!a || !b) return;
    var on = a.getAttribute("data-diff") !== "on";
    if (a.parityText === undefined) { a.parityText = a.textContent; b.parityText = b.textContent; }
    if (on) {
      var ta = tokens(a.parityText, a.lang), tb = tokens(b.parityText, b.lang);
      var keep = common(ta, tb);
      paint(a, ta, keep[0], "diff-removed");
      paint(b, tb, keep[1], "diff-added");
    } else {
      a.textContent = a.parityText; b.textContent = b.parityText;
    }
    a.setAttribute("data-diff", on ? "on" : "off"); b.setAttribute("data-diff", on ? "on" : "off");
    if (button) button.setAttribute("aria-pressed", on ? "true" : "false");
  }
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-diff-toggle]")) toggleDiff();
  });

  // ---- keyboard ----
  function form() { return document.querySelector("form.judgment"); }
  function check(input) {
    if (!input) return;
    if (input.type === "checkbox") input.checked = !input.checked; else input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }
  function showScore(f, score) {
    var number = f.querySelector("[data-score-number]");
    var range = f.querySelector("[data-score-range]");
    var unset = f.querySelector("[data-score-unset]");
    if (number) number.value = String(score);
    if (range) { range.value = String(score); range.classList.remove("unset"); }
    if (unset) unset.hidden = true;
  }
  // Long scales: digits typed in quick succession are one exact score (7 then 3 → 73).
  var typed = "", typedAt = 0, TYPING_GAP_MS = 1200;
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
      var at = Date.now();
      var candidate = (at - typedAt < TYPING_GAP_MS ? typed : "") + String(digit);
      if (parseInt(candidate, 10) > hi) candidate = String(digit);
      typed = candidate; typedAt = at;
      score = parseInt(candidate, 10);
      if (score < lo) return;
    }
    var radio = f.querySelector('input[name="score"][type="radio"][value="' + score + '"]');
    if (radio) { check(radio); return; }
    showScore(f, score);
    saveDraft();
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
    if (key === "u") {
      var undo = document.querySelector("[data-undo-until]:not([hidden]) [data-undo]");
      if (undo) { event.preventDefault(); undo.click(); return; }
    }
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
    if (event.shiftKey && /^Digit[1-9]$/.test(event.code || "")) {
      var issue = f.querySelector('[data-issue-key="' + event.code.slice(5) + '"]');
      if (issue) { event.preventDefault(); check(issue); }
      return;
    }
    if (key === "d" && document.querySelector("[data-diff-toggle]")) { event.preventDefault(); toggleDiff(); return; }
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
