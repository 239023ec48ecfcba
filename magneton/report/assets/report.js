/* Magneton HTML report: the zoomable icicle and the operator table.
 * Plain ES2017, no library. Every piece of report text reaches the DOM through
 * textContent or setAttribute, never innerHTML, so user code stays text. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("magneton-data").textContent);
  var nodes = data.nodes || [];
  var sources = data.sources || [];
  var total = nodes.reduce(function (s, n) { return s + (n.e || 0); }, 0);

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function svgEl(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }
  function fmt(value, units) {
    if (value === undefined || value === null || !isFinite(value)) return "n/a";
    var mag = Math.abs(value);
    for (var i = 0; i < units.length; i++) {
      // Three significant digits like Python's :.3g; zeros are trimmed only after a decimal point (220, not 22).
      if (mag >= units[i][0]) return (value / units[i][0]).toPrecision(3).replace(/\.0+$|(\.\d*[1-9])0+$/, "$1") + " " + units[i][1];
    }
    return value === 0 ? "0 " + units[0][1] : value.toPrecision(3) + " " + units[0][1];
  }
  var J = [[1, "J"], [1e-3, "mJ"], [1e-6, "µJ"], [1e-9, "nJ"]];
  var S = [[1, "s"], [1e-3, "ms"], [1e-6, "µs"], [1e-9, "ns"]];
  var N = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"], [1, ""]];
  function energy(v) { return fmt(v, J); }
  function time(v) { return fmt(v, S); }
  function count(v) { return v === undefined || v === null ? "" : fmt(v, N).trim(); }
  function pct(v) { return isFinite(v) ? (100 * v).toFixed(1) + "%" : "n/a"; }
  function where(n) { var s = sources[n.s]; return s ? s[0] + ":" + s[1] : "(no source)"; }
  var hasFlops = nodes.some(function (n) { return n.fl !== undefined; });
  var hasBytes = nodes.some(function (n) { return n.by !== undefined; });
  var hasPhase = nodes.some(function (n) { return n.ph !== undefined; });

  /* ---------------------------------------------------------------- navigation */
  var nav = document.getElementById("nav");
  [["header", "Summary"], ["findings", "Findings"], ["diff", "Diff"], ["energy", "Where the energy goes"],
   ["operators", "Operators"], ["overhead", "Overhead"], ["training", "Training"]].forEach(function (pair) {
    if (document.getElementById(pair[0])) nav.appendChild(el("a", { href: "#" + pair[0] }, pair[1]));
  });
  if (!nodes.length) return;

  /* ---------------------------------------------------------------- hierarchy: module -> line -> operator */
  function makeBox(name, kind, parent) {
    return { name: name, kind: kind, parent: parent, children: [], index: {}, e: 0, x: 0, hasX: false, nodes: [] };
  }
  var root, maxDepth;
  // Folded, the layers of a repeated stack (h.0 ... h.11) become one box h.*, and equal operators of a line one leaf.
  function buildTree(foldLayers) {
    root = makeBox("all operators", "root", null);
    nodes.forEach(function (n) {
      if (!(n.e > 0)) return;  // views and metadata-only ops cost nothing: no box
      var path = n.m ? n.m.split(".") : ["(root)"];
      var box = root;
      var chain = [root];
      path.forEach(function (part) {
        var name = foldLayers && /^\d+$/.test(part) ? "*" : part;
        var key = "m:" + name;
        if (!box.index[key]) { box.index[key] = makeBox(name, "module", box); box.children.push(box.index[key]); }
        box = box.index[key]; chain.push(box);
      });
      var lineKey = "l:" + n.s;
      if (!box.index[lineKey]) {
        // The box shows file name and line; the full path is in its tooltip and the details.
        box.index[lineKey] = makeBox(where(n).split("/").pop(), "line", box);
        box.index[lineKey].full = where(n);
        box.children.push(box.index[lineKey]);
      }
      box = box.index[lineKey]; chain.push(box);
      var opName = n.op.replace(/^aten\./, "").replace(/\.default$/, "");
      var leaf = foldLayers ? box.index["o:" + opName] : null;
      if (!leaf) {
        leaf = makeBox(opName, "op", box); box.children.push(leaf);
        if (foldLayers) box.index["o:" + opName] = leaf;
      }
      chain.push(leaf);
      chain.forEach(function (b) {
        b.e += n.e;
        if (n.x !== undefined) { b.x += n.x; b.hasX = true; }
        b.nodes.push(n);
      });
      if (leaf.nodes.length > 1) leaf.name = opName + " ×" + leaf.nodes.length;
    });
    maxDepth = 0;
    (function layout(box, x0, depth) {
      box.x0 = x0; box.x1 = x0 + (root.e > 0 ? box.e / root.e : 0); box.depth = depth;
      maxDepth = Math.max(maxDepth, depth);
      box.children.sort(function (a, b) { return b.e - a.e; });
      var cursor = x0;
      box.children.forEach(function (c) { layout(c, cursor, depth + 1); cursor = c.x1; });
    })(root, 0, 0);
  }
  var foldChart = document.getElementById("icicle-fold");
  buildTree(foldChart.checked);

  /* ---------------------------------------------------------------- colours */
  var modes = [["share", "share of energy"]];
  if (data.has_expected) modes.push(["excess", "measured / expected"]);
  modes.push(["kind", "level (module, line, operator)"]);
  var select = document.getElementById("color-mode");
  modes.forEach(function (m) { select.appendChild(el("option", { value: m[0] }, m[1])); });
  function mix(a, b, t) {
    t = Math.max(0, Math.min(1, t));
    return "rgb(" + [0, 1, 2].map(function (i) { return Math.round(a[i] + (b[i] - a[i]) * t); }).join(",") + ")";
  }
  function colour(box) {
    var mode = select.value;
    if (mode === "excess") {
      if (!box.hasX || !(box.x > 0)) return "#d0d7de";
      var r = Math.log(box.e / box.x) / Math.LN2;  // log2 of measured / expected
      return r >= 0 ? mix([235, 235, 235], [207, 34, 46], r / 2) : mix([235, 235, 235], [26, 127, 55], -r / 2);
    }
    if (mode === "kind") return { root: "#adb5bd", module: "#9ecae9", line: "#ffbf79", op: "#f2cf5b" }[box.kind];
    var share = root.e > 0 ? box.e / root.e : 0;
    var t = share > 0 ? (Math.log(share) / Math.LN10 + 3) / 3 : 0;  // 0.1% -> 0, 100% -> 1, log scale
    return t < 0.5 ? mix([255, 245, 200], [253, 141, 60], t * 2) : mix([253, 141, 60], [165, 0, 38], t * 2 - 1);
  }
  function ink(fill) {  // white text on dark boxes
    var rgb = /rgb\((\d+),(\d+),(\d+)\)/.exec(fill);
    if (!rgb) return "#111";
    return 0.299 * rgb[1] + 0.587 * rgb[2] + 0.114 * rgb[3] < 140 ? "#fff" : "#111";
  }
  var legend = el("div", { "class": "legend dim", id: "legend" });
  document.getElementById("icicle").after(legend);
  function drawLegend() {
    legend.textContent = "";
    var mode = select.value;
    var texts = { share: ["0.1% of energy", "100%"], excess: ["½× expected", "2× expected (predicted)"],
                  kind: ["module · source line · operator", ""] };
    legend.appendChild(document.createTextNode("box width = joules per call · click a box to zoom in · colour: "
      + texts[mode][0]));
    var swatch = el("span", { "class": "swatch" });
    swatch.style.background = mode === "excess" ? "linear-gradient(90deg, rgb(26,127,55), rgb(235,235,235), rgb(207,34,46))"
      : mode === "share" ? "linear-gradient(90deg, rgb(255,245,200), rgb(253,141,60), rgb(165,0,38))" : "none";
    if (mode !== "kind") legend.appendChild(swatch);
    legend.appendChild(document.createTextNode(texts[mode][1]));
  }

  /* ---------------------------------------------------------------- icicle */
  var chart = document.getElementById("icicle");
  var ROW = 26;
  var focus = root;
  function label(box) {
    return box.name + " — " + energy(box.e) + " (" + pct(root.e > 0 ? box.e / root.e : 0) + ")";
  }
  function draw() {
    var width = Math.max(400, chart.clientWidth || 1000);
    var svg = svgEl("svg", { width: width, height: (maxDepth + 1) * ROW, id: "icicle-svg", role: "img",
                              "aria-label": "energy by module, source line and operator" });
    var span = focus.x1 - focus.x0 || 1;
    var drawn = 0;
    (function visit(box) {
      var inFocus = box.x1 > focus.x0 + 1e-12 && box.x0 < focus.x1 - 1e-12;
      if (!inFocus) return;
      var ancestor = box.depth < focus.depth;
      var x0 = ancestor ? 0 : (box.x0 - focus.x0) / span * width;
      var x1 = ancestor ? width : (box.x1 - focus.x0) / span * width;
      if (x1 - x0 < 0.5) return;
      var g = svgEl("g", { "class": "box box-" + box.kind });
      var fill = colour(box);
      var rect = svgEl("rect", { x: x0.toFixed(2), y: box.depth * ROW, width: Math.max(0.5, x1 - x0 - 0.5).toFixed(2),
                                  height: ROW - 1, fill: fill });
      var title = svgEl("title", {});
      title.textContent = label(box) + (box.kind === "op" ? " · " + where(box.nodes[0]) : box.full ? " · " + box.full : "");
      rect.appendChild(title);
      rect.addEventListener("click", function () { focus = box.children.length ? box : box.parent || root; draw(); show(box); });
      g.appendChild(rect);
      if (x1 - x0 > 40) {
        var text = svgEl("text", { x: (x0 + 4).toFixed(2), y: box.depth * ROW + 16, fill: ink(fill) });
        var chars = Math.floor((x1 - x0 - 8) / 6.2);
        var full = label(box);
        text.textContent = full.length > chars ? full.slice(0, Math.max(1, chars - 1)) + "…" : full;
        g.appendChild(text);
      }
      svg.appendChild(g);
      drawn++;
      box.children.forEach(visit);
    })(root);
    chart.textContent = "";
    chart.appendChild(svg);
    chart.setAttribute("data-boxes", String(drawn));
    var crumbs = [];
    for (var b = focus; b; b = b.parent) crumbs.unshift(b.name);
    document.getElementById("breadcrumb").textContent = crumbs.join(" › ");
    drawLegend();
  }
  select.addEventListener("change", draw);
  foldChart.addEventListener("change", function () { buildTree(foldChart.checked); focus = root; draw(); show(root); });
  document.getElementById("zoom-out").addEventListener("click", function () {
    focus = focus.parent || root; draw(); show(focus);
  });
  window.addEventListener("resize", draw);

  /* ---------------------------------------------------------------- details of a box */
  var details = document.getElementById("details");
  function throughput(n) {
    var parts = [];
    if (n.fl !== undefined && n.t > 0) parts.push(count(n.fl / n.t) + "FLOP/s");
    if (n.by !== undefined && n.t > 0) parts.push(count(n.by / n.t) + "B/s");
    return parts.join(", ");
  }
  function table(columns, rows) {
    var t = el("table"); var head = el("tr");
    columns.forEach(function (c) { head.appendChild(el("th", c[2] ? { "class": "num" } : null, c[0])); });
    t.appendChild(el("thead")).appendChild(head);
    var body = el("tbody"); t.appendChild(body);
    rows.forEach(function (r) {
      var tr = el("tr");
      columns.forEach(function (c) { tr.appendChild(el("td", c[2] ? { "class": "num" } : null, c[1](r))); });
      body.appendChild(tr);
    });
    return t;
  }
  function show(box) {
    details.textContent = "";
    details.appendChild(el("h3", null, box.full || box.name));
    var summary = energy(box.e) + " per call, " + pct(root.e > 0 ? box.e / root.e : 0) + " of operator energy ("
      + data.provenance + "), " + box.nodes.length + " operator" + (box.nodes.length === 1 ? "" : "s");
    if (box.hasX) summary += "; expected (predicted) " + energy(box.x);
    details.appendChild(el("p", null, summary));
    var lines = {};
    box.nodes.forEach(function (n) { if (sources[n.s]) lines[n.s] = (lines[n.s] || 0) + n.e; });
    var lineIds = Object.keys(lines).sort(function (a, b) { return lines[b] - lines[a]; }).slice(0, 30);
    if (lineIds.length) {
      var pre = el("pre", { "class": "code" });
      lineIds.forEach(function (i) {
        var s = sources[i];
        var span = el("span", { "class": "ln" });
        span.appendChild(el("i", null, s[0] + ":" + s[1] + " (" + energy(lines[i]) + ")  "));
        span.appendChild(document.createTextNode(s[3] || ""));
        pre.appendChild(span);
      });
      details.appendChild(pre);
    }
    var ops = box.nodes.slice().sort(function (a, b) { return b.e - a.e; });
    var columns = [["op", function (n) { return n.op; }], ["module", function (n) { return n.m || "(root)"; }],
      ["source", where], ["inputs", function (n) { return n.in; }], ["outputs", function (n) { return n.out; }],
      ["energy", function (n) { return energy(n.e); }, true], ["time", function (n) { return time(n.t); }, true]];
    if (data.has_expected) columns.push(["expected", function (n) { return energy(n.x); }, true]);
    if (hasFlops) columns.push(["FLOPs", function (n) { return count(n.fl); }, true]);
    if (hasBytes) columns.push(["bytes", function (n) { return count(n.by); }, true]);
    if (hasFlops || hasBytes) columns.push(["achieved", throughput, true]);
    details.appendChild(table(columns, ops.slice(0, 200)));
    if (ops.length > 200) details.appendChild(el("p", { "class": "dim" }, "… " + (ops.length - 200) + " more in the operator table"));
  }

  /* ---------------------------------------------------------------- operator table */
  var fold = document.getElementById("op-fold");
  var filter = document.getElementById("op-filter");
  var tableEl = document.getElementById("op-table");
  var sortKey = "e", sortDir = -1;
  function layerKey(n) { return n.m.replace(/(^|\.)\d+(?=\.|$)/g, "$1*") + "|" + n.op + "|" + n.in + "|" + (n.ph || ""); }
  function rows() {
    if (!fold.checked) {
      return nodes.map(function (n) {
        return { op: n.op, m: n.m, where: where(n), code: sources[n.s] ? sources[n.s][3] : "", n: 1, e: n.e, t: n.t,
                 x: n.x, fl: n.fl, by: n.by, ph: n.ph, in: n.in, note: n.z || [n.noisy ? "noisy" : "", n.contended ? "contended" : ""].join(" ").trim() };
      });
    }
    var groups = {}, order = [];
    nodes.forEach(function (n) {
      var key = layerKey(n);
      var g = groups[key];
      if (!g) {
        g = groups[key] = { op: n.op, m: n.m.replace(/(^|\.)\d+(?=\.|$)/g, "$1*"), wheres: {}, code: "", n: 0, e: 0, t: 0,
                            x: undefined, fl: undefined, by: undefined, ph: n.ph, in: n.in, note: n.z || "" };
        order.push(g);
      }
      g.n++; g.e += n.e; g.t += n.t;
      if (n.x !== undefined) g.x = (g.x || 0) + n.x;
      if (n.fl !== undefined) g.fl = (g.fl || 0) + n.fl;
      if (n.by !== undefined) g.by = (g.by || 0) + n.by;
      var w = where(n); g.wheres[w] = true; if (!g.code && sources[n.s]) g.code = sources[n.s][3];
    });
    order.forEach(function (g) { var w = Object.keys(g.wheres); g.where = w.length === 1 ? w[0] : w[0] + " (+" + (w.length - 1) + ")"; });
    return order;
  }
  var columns = [["op", "op"], ["module", "m"], ["source line", "where"], ["code", "code"], ["calls", "n", 1],
    ["energy", "e", 1], ["share", "share", 1], ["time", "t", 1]];
  if (data.has_expected) columns.push(["expected", "x", 1], ["measured / expected", "ratio", 1]);
  if (hasFlops) columns.push(["FLOPs", "fl", 1], ["FLOP/s", "flops_s", 1]);
  if (hasBytes) columns.push(["bytes", "by", 1], ["B/s", "bytes_s", 1]);
  if (hasPhase) columns.push(["phase", "ph"]);
  columns.push(["inputs", "in"], ["note", "note"]);
  function value(r, key) {
    if (key === "share") return total > 0 ? r.e / total : 0;
    if (key === "ratio") return r.x > 0 ? r.e / r.x : undefined;
    if (key === "flops_s") return r.fl !== undefined && r.t > 0 ? r.fl / r.t : undefined;
    if (key === "bytes_s") return r.by !== undefined && r.t > 0 ? r.by / r.t : undefined;
    return r[key];
  }
  function show_value(r, key) {
    var v = value(r, key);
    if (key === "e" || key === "x") return energy(v);
    if (key === "t") return time(v);
    if (key === "share") return pct(v);
    if (key === "ratio") return v === undefined ? "" : v.toFixed(2) + "×";
    if (key === "fl" || key === "by") return count(v);
    if (key === "flops_s") return v === undefined ? "" : count(v) + "FLOP/s";
    if (key === "bytes_s") return v === undefined ? "" : count(v) + "B/s";
    return v === undefined || v === null ? "" : String(v);
  }
  var head = el("tr");
  columns.forEach(function (c) {
    var th = el("th", c[2] ? { "class": "num", "data-key": c[1] } : { "data-key": c[1] }, c[0]);
    th.addEventListener("click", function () {
      sortDir = sortKey === c[1] ? -sortDir : (c[2] ? -1 : 1); sortKey = c[1]; renderTable();
    });
    head.appendChild(th);
  });
  tableEl.tHead.appendChild(head);
  var LIMIT = 1000;
  function renderTable() {
    var query = filter.value.trim().toLowerCase();
    var all = rows().filter(function (r) {
      return !query || [r.op, r.m, r.where, r.code, r.ph || "", r.in].join(" ").toLowerCase().indexOf(query) >= 0;
    });
    all.sort(function (a, b) {
      var x = value(a, sortKey), y = value(b, sortKey);
      if (x === y) return 0;
      if (x === undefined || x === null) return 1;
      if (y === undefined || y === null) return -1;
      return (x < y ? -1 : 1) * sortDir;
    });
    Array.prototype.forEach.call(head.children, function (th) {
      th.classList.toggle("sorted-asc", th.getAttribute("data-key") === sortKey && sortDir > 0);
      th.classList.toggle("sorted-desc", th.getAttribute("data-key") === sortKey && sortDir < 0);
    });
    var body = tableEl.tBodies[0];
    body.textContent = "";
    all.slice(0, LIMIT).forEach(function (r) {
      var tr = el("tr", r.n > 1 ? { "class": "group" } : null);
      columns.forEach(function (c) { tr.appendChild(el("td", c[2] ? { "class": "num" } : null, show_value(r, c[1]))); });
      body.appendChild(tr);
    });
    document.getElementById("op-count").textContent = all.length + " row" + (all.length === 1 ? "" : "s")
      + (fold.checked ? " (repeated layers folded: module indices shown as *)" : "")
      + (all.length > LIMIT ? "; first " + LIMIT + " shown, filter to see the rest" : "");
  }
  fold.addEventListener("change", renderTable);
  filter.addEventListener("input", renderTable);

  draw();
  show(root);
  renderTable();
})();
