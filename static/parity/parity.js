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
  });
  // On a phone the lead sub-navigation is one sideways-scrolling row: bring the current page's tab into view.
  document.addEventListener("DOMContentLoaded", function () {
    var current = document.querySelector(".lead-subnav ul [aria-current]");
    var row = current && current.closest("ul");
    if (row && row.scrollWidth > row.clientWidth) {
      current.scrollIntoView({ block: "nearest", inline: "center" });
    }
  });
})();
