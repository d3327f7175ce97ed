/* Names for the form controls the admin renders without a label of their own, so a screen reader
   says what each one is: the cells of editable lists and inline tables (their column and row), the
   date and time halves of a date-time field (the field's label), and the selector widget's icons. */
(function () {
  "use strict";

  function hasName(el) {
    return (el.labels && el.labels.length > 0) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") || el.title;
  }

  function clean(text) { return (text || "").replace(/\s+/g, " ").replace(/[:?]\s*$/, "").trim(); }

  function cellName(el) {
    const cell = el.closest("td, th");
    const table = cell && cell.closest("table");
    if (!table) return "";
    const heads = table.querySelectorAll("thead tr:last-child th");
    const column = heads[cell.cellIndex] ? clean(heads[cell.cellIndex].textContent) : "";
    const row = cell.parentElement;
    const rows = Array.prototype.filter.call(row.parentElement.children, function (r) { return r.tagName === "TR"; });
    const title = row.querySelector("th a, td.original p");
    const which = title && clean(title.textContent) ? clean(title.textContent) : "row " + (rows.indexOf(row) + 1);
    return column ? column + ", " + which : "";
  }

  function splitName(el) {
    const half = /_([01])$/.exec(el.id || "");
    const row = half && el.closest(".form-row, .fieldBox, [class*='field-']");
    const label = row && row.querySelector("label");
    if (!label) return "";
    return clean(label.textContent) + (half[1] === "0" ? ", date" : ", time");
  }

  function name() {
    document.querySelectorAll("input:not([type=hidden]), select, textarea").forEach(function (el) {
      if (hasName(el)) return;
      const text = cellName(el) || splitName(el);
      if (text) el.setAttribute("aria-label", text);
    });
    // the selector widget's search icons carry a label on a plain span: say they are images
    document.querySelectorAll("span.help-tooltip[aria-label]:not([role])").forEach(function (el) {
      el.setAttribute("role", "img");
    });
  }

  document.addEventListener("DOMContentLoaded", name);
  window.addEventListener("load", name);  // the selector widgets are built on load
})();
