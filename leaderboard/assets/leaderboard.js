/* Leaderboard tables: a plain sort on every column, an optional grouping of each model's rows,
   a filter box over every table. Header buttons are native <button>s (mouse, Enter and Space);
   aria-sort and a live status line tell assistive tech what happened. Without this script the
   page still shows every row, in rank order. */
(function () {
  "use strict";

  function cellValue(row, col, numeric) {
    var cell = row.cells[col];
    if (!cell) { return null; }
    var raw = cell.getAttribute("data-value");
    if (raw === null || raw === "") { return null; }
    return numeric ? parseFloat(raw) : raw.toLowerCase();
  }

  function grouping(table) {
    return table.getAttribute("data-grouped") === "true";
  }

  /* Rows of one group follow the group's first row in the sorted order. */
  function groupTogether(rows) {
    var order = [], groups = {};
    rows.forEach(function (row) {
      var g = row.getAttribute("data-group");
      if (!Object.prototype.hasOwnProperty.call(groups, g)) { groups[g] = []; order.push(g); }
      groups[g].push(row);
    });
    return order.reduce(function (all, g) { return all.concat(groups[g]); }, []);
  }

  function markGroups(rows, on) {
    rows.forEach(function (row, i) {
      var same = on && i > 0 && rows[i - 1].getAttribute("data-group") === row.getAttribute("data-group");
      row.classList.toggle("group-cont", same);
    });
  }

  function apply(table) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var col = parseInt(table.getAttribute("data-sort-col"), 10);
    var descending = table.getAttribute("data-sort-dir") === "descending";
    if (!isNaN(col)) {
      var th = table.tHead.rows[0].cells[col];
      var numeric = th.getAttribute("data-type") === "number";
      var keyed = rows.map(function (row) {
        return { row: row, value: cellValue(row, col, numeric), index: parseInt(row.getAttribute("data-order"), 10) };
      });
      keyed.sort(function (a, b) {
        if (a.value === null && b.value === null) { return a.index - b.index; }
        if (a.value === null) { return 1; }   /* missing values last in both directions */
        if (b.value === null) { return -1; }
        if (a.value < b.value) { return descending ? 1 : -1; }
        if (a.value > b.value) { return descending ? -1 : 1; }
        return a.index - b.index;
      });
      rows = keyed.map(function (k) { return k.row; });
    }
    if (grouping(table)) { rows = groupTogether(rows); }
    rows.forEach(function (row) { body.appendChild(row); });
    markGroups(rows, grouping(table));
  }

  function announce(table) {
    var status = document.getElementById(table.getAttribute("data-status"));
    var col = parseInt(table.getAttribute("data-sort-col"), 10);
    if (!status || isNaN(col)) { return; }
    var th = table.tHead.rows[0].cells[col];
    status.textContent = "Sorted by " + th.getAttribute("data-label") + ", " +
      table.getAttribute("data-sort-dir") + (grouping(table) ? "; rows of one model kept together." : ".");
  }

  function sortBy(table, th, col) {
    var current = th.getAttribute("aria-sort");
    var descending;
    if (current === "descending") { descending = false; }
    else if (current === "ascending") { descending = true; }
    else { descending = th.getAttribute("data-first") === "descending"; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
      if (other !== th) { other.removeAttribute("aria-sort"); }
    });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    table.setAttribute("data-sort-col", String(col));
    table.setAttribute("data-sort-dir", descending ? "descending" : "ascending");
    apply(table);
    announce(table);
  }

  var tables = Array.prototype.slice.call(document.querySelectorAll("table.leaderboard"));
  tables.forEach(function (table) {
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row, i) {
      row.setAttribute("data-order", String(i));
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      if (th.getAttribute("aria-sort")) {
        table.setAttribute("data-sort-col", String(col));
        table.setAttribute("data-sort-dir", th.getAttribute("aria-sort"));
      }
      var button = th.querySelector("button.sort");
      if (button) { button.addEventListener("click", function () { sortBy(table, th, col); }); }
    });
  });

  Array.prototype.forEach.call(document.querySelectorAll("input.group-toggle"), function (box) {
    box.addEventListener("change", function () {
      (box.getAttribute("data-tables") || "").split(" ").forEach(function (id) {
        var table = document.getElementById(id);
        if (!table) { return; }
        table.setAttribute("data-grouped", box.checked ? "true" : "false");
        apply(table);
        announce(table);
      });
    });
  });

  var filter = document.getElementById("model-filter");
  var filterStatus = document.getElementById("filter-status");
  if (filter) {
    filter.addEventListener("input", function () {
      var query = filter.value.trim().toLowerCase();
      var rows = document.querySelectorAll("table.filterable tbody tr");
      var shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var match = !query || (row.getAttribute("data-filter") || "").indexOf(query) !== -1;
        row.hidden = !match;
        if (match) { shown += 1; }
      });
      if (filterStatus) {
        filterStatus.textContent = query ? shown + " of " + rows.length + " rows match" : "";
      }
    });
  }
}());
