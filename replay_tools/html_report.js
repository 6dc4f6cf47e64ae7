// Draws the run's timeline (#timeline) and DAG (#dag) as inline SVG from the JSON in
// #run-data. Text is only ever set with textContent, never parsed as markup.
(function () {
  "use strict";
  var SVG = "http" + "://www.w3.org/2000/svg"; // the SVG namespace name, not a resource
  var data = JSON.parse(document.getElementById("run-data").textContent);

  function el(tag, attrs, parent, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function secs(s) {
    if (s === null || s === undefined) return "-";
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1).replace(/\.?0+$/, "") + " ms";
    if (s < 120) return s.toFixed(2).replace(/\.?0+$/, "") + " s";
    return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  }

  function clip(text, n) { return text.length > n ? text.slice(0, n - 1) + "\u2026" : text; }

  function niceStep(span, ticks) {
    var raw = span / ticks, p = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= raw) return steps[i] * p;
    return 10 * p;
  }

  function stripes(svg) { // the fill of a retried attempt (.o-retried in the CSS)
    var pat = el("pattern", { id: "stripes", width: 6, height: 6, patternUnits: "userSpaceOnUse",
      patternTransform: "rotate(45)" }, el("defs", {}, svg));
    el("rect", { width: 6, height: 6, fill: "#fdecea" }, pat);
    el("rect", { width: 3, height: 6, fill: "#ef9a9a" }, pat);
  }

  function arrowhead(svg) {
    var arrow = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
      markerHeight: 7, orient: "auto-start-reverse" }, el("defs", {}, svg));
    el("path", { d: "M0,0 L10,5 L0,10 z", "class": "arrow" }, arrow);
  }

  function drawTimeline(box) {
    var labelW = 190, padR = 90, top = 26, rowH = 28, barH = 18;
    var width = Math.max(720, box.clientWidth || 1200);
    var rows = [{ name: "run", run: true }].concat(data.steps);
    var height = top + rows.length * rowH + 8;
    var svg = el("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height,
      role: "img", "aria-label": "timeline of every attempt of every step" }, box);
    stripes(svg);
    var sx = (width - labelW - padR) / data.span;
    function x(t) { return labelW + t * sx; }
    var rowOf = {};
    rows.forEach(function (r, i) {
      var y = top + i * rowH;
      el("rect", { x: 0, y: y, width: width, height: rowH, "class": "lane" + (i % 2 ? " alt" : "") }, svg);
      var label = el("text", { x: 8, y: y + rowH / 2 + 4, "class": "label" + (r.run ? "" : " step") }, svg,
        r.run ? "whole run" : clip(r.name, 26));
      if (!r.run) { label.setAttribute("data-step", r.name); el("title", {}, label, r.name); rowOf[r.name] = y; }
    });
    var axis = el("g", { "class": "axis" }, svg), step = niceStep(data.span, 8);
    for (var t = 0; t <= data.span + 1e-9; t += step) {
      el("line", { x1: x(t), x2: x(t), y1: top - 4, y2: height - 8 }, axis);
      el("text", { x: x(t), y: top - 9, "text-anchor": "middle" }, axis, secs(Math.round(t * 1e6) / 1e6));
    }
    var runY = top + (rowH - 10) / 2, runEnd = data.run.end === null ? data.span : data.run.end;
    var runBar = el("rect", { x: x(0), y: runY, width: Math.max(2, runEnd * sx), height: 10, rx: 2,
      "class": "runbar o-" + data.run.status }, svg);
    el("title", {}, runBar, "run " + data.run.status + ", " + secs(runEnd) + " from creation to end");
    el("line", { x1: x(runEnd), x2: x(runEnd), y1: top, y2: height - 8, "class": "endline" }, svg);
    var last = {};
    data.attempts.forEach(function (a) {
      var y = rowOf[a.step] + (rowH - barH) / 2, end = a.end === null ? data.span : a.end;
      if (last[a.step] !== undefined) {
        el("line", { x1: x(last[a.step]), x2: x(a.start), y1: y + barH / 2, y2: y + barH / 2, "class": "wait" }, svg);
      }
      last[a.step] = end;
      var g = el("g", { "class": "o-" + a.outcome, "data-step": a.step }, svg);
      var w = Math.max(3, (end - a.start) * sx);
      var bar = el("rect", { x: x(a.start), y: y, width: w, height: barH, rx: 3, "class": "bar",
        "data-step": a.step, "data-attempt": a.n, "data-outcome": a.outcome }, g);
      var tip = a.step + " \u2014 attempt " + a.n + ": " + a.outcome + "\nstarted +" + secs(a.start) +
        ", lasted " + secs(end - a.start) + (a.exec !== null ? " (measured " + secs(a.exec) + ")" : "") +
        (a.error ? "\n" + a.error : "");
      el("title", {}, bar, tip);
      if (w > 26) el("text", { x: x(a.start) + 5, y: y + barH / 2 + 4, "class": "barlabel" }, g, "#" + a.n);
    });
    data.marks.forEach(function (m) {
      var cx = x(m.at), cy = rowOf[m.step] + rowH / 2;
      var g = el("g", { "class": "o-" + m.outcome, "data-step": m.step }, svg);
      var d = "M" + cx + "," + (cy - 7) + " l7,7 l-7,7 l-7,-7 z";
      var mark = el("path", { d: d, "class": "mark", "data-step": m.step, "data-outcome": m.outcome }, g);
      el("title", {}, mark, m.step + ": " + m.outcome + (m.note ? " (" + m.note + ")" : ""));
      var note = m.outcome + (m.note ? ": " + clip(m.note, 40) : ""), left = cx + 11 + note.length * 6.5 > width;
      el("text", { x: left ? cx - 11 : cx + 11, y: cy + 4, "text-anchor": left ? "end" : "start",
        "class": "marknote" }, g, note);
    });
    box.setAttribute("data-rendered", "1");
  }

  function drawDag(box) {
    var nodeW = 212, nodeH = 46, rowH = 62, pad = 14, gaps = Math.max(1, data.layers.length - 1);
    var avail = (box.clientWidth || 1200) - 2;
    // columns as wide as fit the page (272 px at most, nodeW + 56 at least) ...
    var colW = Math.max(nodeW + 56, Math.min(272, (avail - 2 * pad - nodeW) / gaps));
    var most = Math.max.apply(null, data.layers.concat([1]));
    var width = pad * 2 + Math.max(0, data.layers.length - 1) * colW + nodeW;
    var height = pad * 2 + most * rowH - (rowH - nodeH);
    var scale = Math.max(0.75, Math.min(1, avail / width)); // ... then shrunk a little to fit, or scrolled
    var svg = el("svg", { width: Math.round(width * scale), height: Math.round(height * scale),
      viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": "the run's steps and their dependencies" }, box);
    arrowhead(svg);
    function place(layer, slot) { // top-left corner of a slot; each layer is centred vertically
      return { x: pad + layer * colW, y: pad + (most - data.layers[layer]) * rowH / 2 + slot * rowH };
    }
    var pos = {};
    data.steps.forEach(function (s) { pos[s.name] = place(s.layer, s.slot); });
    function curve(a, b) {
      var bend = Math.max(24, (b[0] - a[0]) / 2);
      return " C" + (a[0] + bend) + "," + a[1] + " " + (b[0] - bend) + "," + b[1] + " " + b[0] + "," + b[1];
    }
    var edges = el("g", {}, svg);
    data.edges.forEach(function (e) {
      var a = pos[e.from], b = pos[e.to], pts = [[a.x + nodeW, a.y + nodeH / 2]];
      e.via.forEach(function (v) { // a long edge runs straight through the slot it holds in each layer
        var p = place(v[0], v[1]);
        pts.push([p.x, p.y + nodeH / 2], [p.x + nodeW, p.y + nodeH / 2]);
      });
      pts.push([b.x - 2, b.y + nodeH / 2]);
      var d = "M" + pts[0][0] + "," + pts[0][1];
      for (var i = 1; i < pts.length; i += 2) {
        d += curve(pts[i - 1], pts[i]);
        if (i + 1 < pts.length) d += " L" + pts[i + 1][0] + "," + pts[i + 1][1];
      }
      el("path", { d: d, "class": "edge", "marker-end": "url(#arrow)", "data-from": e.from, "data-to": e.to }, edges);
    });
    data.steps.forEach(function (s) {
      var p = pos[s.name];
      var g = el("g", { "class": "node o-" + s.outcome, "data-step": s.name, "data-outcome": s.outcome,
        transform: "translate(" + p.x + "," + p.y + ")" }, svg);
      el("rect", { width: nodeW, height: nodeH, rx: 7 }, g);
      el("text", { x: 10, y: 19, "class": "name" }, g, clip(s.name, 26));
      var sub = s.outcome + " \u00b7 " + s.attempts + (s.attempts === 1 ? " attempt" : " attempts") +
        (s.wall !== null ? " \u00b7 " + secs(s.wall) : "");
      el("text", { x: 10, y: 36, "class": "sub" }, g, sub);
      el("title", {}, g, s.name + "\n" + sub + (s.deps.length ? "\nafter " + s.deps.join(", ") : ""));
    });
    box.setAttribute("data-rendered", "1");
  }

  // Pointing at a step (a bar, a node, a label or a table row) highlights it everywhere.
  function highlight(step, on) {
    document.querySelectorAll("[data-step]").forEach(function (node) {
      if (node.getAttribute("data-step") === step) node.classList.toggle("hl", on);
    });
  }
  document.addEventListener("mouseover", function (ev) {
    var t = ev.target.closest && ev.target.closest("[data-step]");
    if (t) highlight(t.getAttribute("data-step"), true);
  });
  document.addEventListener("mouseout", function (ev) {
    var t = ev.target.closest && ev.target.closest("[data-step]");
    if (t) highlight(t.getAttribute("data-step"), false);
  });

  drawTimeline(document.getElementById("timeline"));
  drawDag(document.getElementById("dag"));
})();
