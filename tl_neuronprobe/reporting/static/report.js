// tl_neuronprobe report: sortable tables, client-side search (index loaded by a script tag, so it works from
// file://), copy buttons. The pages are complete without this file.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function cellValue(row, i) {
    var text = row.cells[i] ? row.cells[i].textContent.trim() : "";
    var num = parseFloat(text);
    return { text: text, num: isNaN(num) || !/^[-+.\d]/.test(text) ? null : num };
  }

  function sortBy(table, th, i) {
    var body = table.tBodies[0];
    var asc = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, i), y = cellValue(b, i), d;
      if (x.num !== null && y.num !== null) { d = x.num - y.num; }
      else if (x.num !== null) { d = -1; } else if (y.num !== null) { d = 1; }
      else { d = x.text.localeCompare(y.text); }
      return asc ? d : -d;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    var head = table.tHead && table.tHead.rows[0];
    if (!head || !table.tBodies[0]) { return; }
    Array.prototype.forEach.call(head.cells, function (th, i) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortBy(table, th, i); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortBy(table, th, i); } });
    });
  });

  var input = document.getElementById("search"), list = document.getElementById("search-results");
  var index = window.TNP_INDEX || [], root = window.TNP_ROOT || "";
  function search(q) {
    q = q.trim().toLowerCase();
    list.innerHTML = "";
    if (!q) { return; }
    // rank: name match, then the neuron's first (strongest) word, then any of its words; -1 = no match
    function rank(e) {
      var words = e.w.toLowerCase().split(" ");
      if (e.n.toLowerCase().indexOf(q) >= 0 || e.h.toLowerCase().indexOf(q) >= 0) { return 0; }
      if (words[0] === q) { return 1; }
      if (words.indexOf(q) >= 0) { return 2; }
      return e.w.toLowerCase().indexOf(q) >= 0 ? 3 : -1;
    }
    var hits = index.map(function (e) { return [rank(e), e]; })
      .filter(function (p) { return p[0] >= 0; })
      .sort(function (a, b) { return a[0] - b[0]; })
      .slice(0, 30).map(function (p) { return p[1]; });
    hits.forEach(function (e) {
      var li = document.createElement("li"), a = document.createElement("a"), why = document.createElement("span");
      a.href = root + e.u;
      a.textContent = e.n;
      why.className = "why";
      why.textContent = e.n.toLowerCase().indexOf(q) >= 0 ? e.h : e.w.slice(0, 60);
      a.appendChild(why);
      li.appendChild(a);
      list.appendChild(li);
    });
    if (!hits.length) { list.innerHTML = "<li class='hint'>no neuron or word matches</li>"; }
  }
  if (input && list) {
    input.addEventListener("input", function () { search(input.value); });
    input.addEventListener("keydown", function (e) {
      var first = list.querySelector("a");
      if (e.key === "Enter" && first) { window.location.href = first.href; }
    });
  }

  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = document.getElementById(button.dataset.target).textContent;
      var done = function () { button.textContent = "copied"; };
      if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done, done); }
      else {
        var range = document.createRange();
        range.selectNodeContents(document.getElementById(button.dataset.target));
        var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        try { document.execCommand("copy"); } catch (err) { /* selection stays for Ctrl+C */ }
        done();
      }
    });
  });
})();
