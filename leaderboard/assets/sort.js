/* Sortable leaderboard tables. Each model's rows live in one <tbody>, so sorting moves whole
   groups and a measured row stays next to the reported row of the same model. Header buttons
   are native <button>s: mouse, Enter and Space all work; aria-sort tells assistive tech. */
(function () {
  "use strict";

  function cellValue(row, col, numeric) {
    var cell = row.cells[col];
    if (!cell) { return null; }
    var raw = cell.getAttribute("data-value");
    if (raw === null || raw === "") { return null; }
    return numeric ? parseFloat(raw) : raw.toLowerCase();
  }

  /* A group sorts by its lead row (measured before reported) that has a value in the column,
     so the two directions are exact reverses of each other. */
  function groupValue(group, col, numeric) {
    for (var i = 0; i < group.rows.length; i += 1) {
      var v = cellValue(group.rows[i], col, numeric);
      if (v !== null) { return v; }
    }
    return null;
  }

  function sortTable(table, th, col, descending) {
    var numeric = th.getAttribute("data-type") === "number";
    var groups = Array.prototype.slice.call(table.tBodies);
    var keyed = groups.map(function (group, index) {
      return { group: group, value: groupValue(group, col, numeric), index: index };
    });
    keyed.sort(function (a, b) {
      if (a.value === null && b.value === null) { return a.index - b.index; }
      if (a.value === null) { return 1; }   /* missing values last in both directions */
      if (b.value === null) { return -1; }
      if (a.value < b.value) { return descending ? 1 : -1; }
      if (a.value > b.value) { return descending ? -1 : 1; }
      return a.index - b.index;
    });
    keyed.forEach(function (k) { table.appendChild(k.group); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
      if (other !== th) { other.removeAttribute("aria-sort"); }
    });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    var status = document.getElementById(table.getAttribute("data-status"));
    if (status) {
      status.textContent = "Sorted by " + th.getAttribute("data-label") + ", " +
        (descending ? "descending" : "ascending") + ".";
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.leaderboard"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      var button = th.querySelector("button.sort");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var current = th.getAttribute("aria-sort");
        var descending;
        if (current === "descending") { descending = false; }
        else if (current === "ascending") { descending = true; }
        else { descending = th.getAttribute("data-first") === "descending"; }
        sortTable(table, th, col, descending);
      });
    });
  });
}());
