// Parity: small progressive enhancements for every page. Pages work without it.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  document.addEventListener("change", function (event) {
    var select = event.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.requestSubmit();
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
