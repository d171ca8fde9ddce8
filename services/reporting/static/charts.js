// The dashboard's charts, drawn by the page itself as HTML tables and SVG: a few kilobytes of script instead of a
// chart library's 1.5 MB, whose running alone took the browser longer than the whole page may (issue 15: drawn
// under 1 s cold). Every text from data goes in with textContent or as an SVG text node's data, so a name is
// never markup. Colours come from dashboard.css by class; sizes and heatmap colours are set through the CSSOM
// (element.style), which a Content-Security-Policy without 'unsafe-inline' allows.
//
// Each chart is given the numbers for its geometry and, beside them, the texts a reader sees (labels, amounts,
// hover text) already formatted by the caller: the money on the page is the API's decimal strings, never a float
// printed back.

const SVG = "http://www.w3.org/2000/svg";
const FONT = "12px system-ui, sans-serif";   // also the SVG text's font in dashboard.css: used to measure labels

function svgNode(name, attributes, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

function svgText(parent, x, y, text, attributes) {
  const node = svgNode("text", { x, y, ...attributes }, parent);
  node.textContent = text;
  return node;
}

function htmlNode(name, className, text) {
  const node = document.createElement(name);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

let measure = null;
function textWidth(text) {
  measure = measure || document.createElement("canvas").getContext("2d");
  measure.font = FONT;
  return measure.measureText(text).width;
}

// ---- Hover text ------------------------------------------------------------------------------------------------

// One tooltip for the page: an element with data-tip shows its text beside the pointer, or below itself when it
// has the keyboard's focus.
let tip = null;
function showTip(target, x, y) {
  tip.textContent = target.dataset.tip;
  tip.hidden = false;
  const room = document.documentElement.clientWidth;
  tip.style.left = `${Math.max(4, Math.min(x + 14, room - tip.offsetWidth - 4))}px`;
  tip.style.top = `${y + 16}px`;
}

export function installTooltips() {
  tip = htmlNode("div", "tooltip");
  tip.setAttribute("role", "tooltip");
  tip.hidden = true;
  document.body.appendChild(tip);
  const tipped = (event) => event.target instanceof Element && event.target.closest("[data-tip]");
  document.addEventListener("pointermove", (event) => {
    const target = tipped(event);
    if (target) showTip(target, event.clientX, event.clientY);
    else tip.hidden = true;
  });
  document.addEventListener("focusin", (event) => {
    const target = tipped(event);
    if (!target) return;
    const box = target.getBoundingClientRect();
    showTip(target, box.left, box.bottom);
  });
  document.addEventListener("focusout", () => { tip.hidden = true; });
  document.addEventListener("scroll", () => { tip.hidden = true; }, { passive: true });
}

function pickable(node, tipText, onPick) {
  node.dataset.tip = tipText;
  if (onPick) {
    node.classList.add("pickable");
    node.addEventListener("click", onPick);
  }
}

// A period of a chart over time, for the keyboard and screen readers too: a stop in the tab order that reads
// its hover text and picks it with Enter or Space.
function focusablePeriod(node, tipText, onPick) {
  pickable(node, tipText, onPick);
  node.setAttribute("tabindex", "0");
  node.setAttribute("aria-label", tipText.replaceAll("\n", ", "));
  if (!onPick) return;
  node.setAttribute("role", "button");
  node.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); onPick(); }
  });
}

// ---- Bars: a table of names, each with its bar and amount --------------------------------------------------------

// rows: [{name, value (the bar's length), amount (its text), count (text), tip, href}], best first. The names are
// links when `onPick` is given (a click filters to that row; the href is the same view, to open in a new tab).
// With `firstRows` (and a plural name for the rows), a long table shows that many until asked for the rest: a
// chain of a hundred branches is not a page of bars.
export function barTable(target, { rows, nameTitle, amountTitle, countTitle, onPick, firstRows, plural }) {
  const table = htmlNode("table", "bar-table");
  const head = table.createTHead().insertRow();
  for (const [title, className] of [[nameTitle, "name"], [amountTitle, "amount"], [countTitle, "num"]]) {
    const cell = htmlNode("th", className, title);
    cell.scope = "col";
    head.appendChild(cell);
  }
  const body = table.createTBody();
  const folding = firstRows && rows.length > firstRows + 2;
  const rest = folding ? table.createTBody() : body;
  rest.hidden = folding;
  const most = Math.max(0, ...rows.map((r) => r.value));
  rows.forEach((row, index) => {
    const tr = (index < (folding ? firstRows : rows.length) ? body : rest).insertRow();
    tr.dataset.tip = row.tip;
    const name = htmlNode("th", "name");
    name.scope = "row";
    if (onPick) {
      const link = htmlNode("a", null, row.name);
      link.href = row.href;
      link.addEventListener("click", (event) => { event.preventDefault(); onPick(index); });
      name.appendChild(link);
    } else {
      name.textContent = row.name;
    }
    const amount = htmlNode("td", "amount");
    const bar = htmlNode("span", "bar");
    // The amount's text keeps 7rem of the cell; the longest bar takes the rest.
    bar.style.width = `calc((100% - 7rem) * ${most > 0 ? Math.max(0, row.value) / most : 0})`;
    if (onPick) pickable(bar, row.tip, () => onPick(index));
    amount.append(bar, htmlNode("span", "figure", row.amount));
    tr.append(name, amount, htmlNode("td", "num", row.count));
  });
  if (!folding) {
    target.replaceChildren(table);
    return;
  }
  const more = htmlNode("button", "more-rows", `Show all ${rows.length} ${plural}`);
  more.type = "button";
  more.setAttribute("aria-expanded", "false");
  more.addEventListener("click", () => {
    rest.hidden = !rest.hidden;
    more.setAttribute("aria-expanded", String(!rest.hidden));
    more.textContent = rest.hidden ? `Show all ${rows.length} ${plural}` : `Show the first ${firstRows} only`;
  });
  target.replaceChildren(table, more);
}

// ---- A series over time: stacked bars and a line, one or two value axes ------------------------------------------

// Ticks from zero to at least `top`: 1, 2, 2.5 or 5 times a power of ten apart, about `count` of them.
function ticksUpTo(top, count) {
  const roughStep = (top > 0 ? top : 1) / count;
  const power = 10 ** Math.floor(Math.log10(roughStep));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= roughStep);
  const ticks = [];
  for (let n = 0; ticks.length === 0 || ticks[ticks.length - 1] < top - 1e-9; n += 1) ticks.push(n * step);
  return ticks;
}

function legend(series) {
  const list = htmlNode("ul", "legend");
  for (const s of series) {
    const item = htmlNode("li");
    item.append(htmlNode("span", `swatch ${s.className}`), s.name);
    list.appendChild(item);
  }
  return list;
}

// spec: {height, periods: [tick label], tips: [hover text per period], xTitle,
//        bars: [{name, className, values}] stacked on the left axis, line: {name, className, values (null = gap),
//        axis: "left" | "right"}, left: {title, format, headroom}, right: {title, format, headroom},
//        onPick(index)}. Redrawn at the new width when its place is resized.
export function timeChart(target, spec) {
  target.chartSpec = spec;
  drawTime(target, spec);
  if (!target.resizeWatch) {
    target.resizeWatch = new ResizeObserver(() => {
      if (target.chartSpec && target.clientWidth !== target.drawnWidth) drawTime(target, target.chartSpec);
    });
    target.resizeWatch.observe(target);
  }
}

export function forget(target) {
  target.chartSpec = null;
}

function drawTime(target, spec) {
  const width = Math.max(240, target.clientWidth);
  target.drawnWidth = target.clientWidth;
  const bars = spec.bars || [];
  const line = spec.line;
  const n = spec.periods.length;
  const stacked = spec.periods.map((_, i) => bars.reduce((sum, b) => sum + (b.values[i] || 0), 0));
  const lineTop = line ? Math.max(0, ...line.values.filter((v) => v !== null)) : 0;
  const axes = {};
  for (const side of ["left", "right"]) {
    const axis = spec[side];
    if (!axis) continue;
    const top = Math.max(side === "left" ? Math.max(0, ...stacked) : 0,
                         line && line.axis === side ? lineTop : 0) * (axis.headroom || 1);
    const ticks = ticksUpTo(top, width < 500 ? 4 : 5);
    const labels = ticks.map(axis.format);
    axes[side] = { ...axis, ticks, labels, top: ticks[ticks.length - 1] || 1,
                   room: Math.max(...labels.map(textWidth)) + 8 + 18 };
  }
  const margin = { top: 10, bottom: 46, left: axes.left ? axes.left.room : 12, right: axes.right ? axes.right.room : 14 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = spec.height - margin.top - margin.bottom;
  const band = plotWidth / Math.max(1, n);
  const xOf = (i) => margin.left + band * (i + 0.5);
  const yOf = (axis, value) => margin.top + plotHeight * (1 - value / axis.top);

  const chart = svgNode("svg", { width, height: spec.height, class: "time-chart",
                                 role: "group", "aria-label": spec.label });
  // Value axes: gridlines from the left axis, tick labels and titles on both sides.
  for (const [side, axis] of Object.entries(axes)) {
    const x = side === "left" ? margin.left - 6 : width - margin.right + 6;
    const group = svgNode("g", { class: `axis ${side}` }, chart);
    axis.ticks.forEach((value, i) => {
      const y = yOf(axis, value);
      if (side === "left") svgNode("line", { class: "grid", x1: margin.left, x2: width - margin.right, y1: y, y2: y }, group);
      svgText(group, x, y + 4, axis.labels[i], { class: "tick", "text-anchor": side === "left" ? "end" : "start" });
    });
    // Turned to read along the axis, its letters standing away from the plot: the x is the line they stand on.
    const titleX = side === "left" ? 12 : width - 14;
    svgText(group, titleX, margin.top + plotHeight / 2, axis.title,
            { class: "title", "text-anchor": "middle",
              transform: `rotate(${side === "left" ? -90 : 90} ${titleX} ${margin.top + plotHeight / 2})` });
  }
  // The periods: as many tick labels as fit side by side.
  const periods = svgNode("g", { class: "axis periods" }, chart);
  const widest = Math.max(1, ...spec.periods.map(textWidth)) + 10;
  const every = Math.max(1, Math.ceil(widest / band));
  spec.periods.forEach((text, i) => {
    if (i % every === 0) svgText(periods, xOf(i), margin.top + plotHeight + 16, text, { class: "tick", "text-anchor": "middle" });
  });
  svgNode("line", { class: "baseline", x1: margin.left, x2: width - margin.right,
                    y1: margin.top + plotHeight, y2: margin.top + plotHeight }, periods);
  svgText(periods, margin.left + plotWidth / 2, spec.height - 6, spec.xTitle, { class: "title", "text-anchor": "middle" });

  const marks = svgNode("g", { class: "marks" }, chart);
  const below = spec.periods.map(() => 0);
  for (const b of bars) {
    const group = svgNode("g", { class: `series ${b.className}` }, marks);
    b.values.forEach((value, i) => {
      const bottom = yOf(axes.left, below[i]);
      below[i] += value || 0;
      const top = yOf(axes.left, below[i]);
      svgNode("rect", { class: "bar", x: xOf(i) - band * 0.35, width: band * 0.7, y: top, height: Math.max(0, bottom - top) }, group);
    });
  }
  if (line) {
    const axis = axes[line.axis];
    const group = svgNode("g", { class: `series ${line.className}` }, marks);
    let path = "";
    let drawing = false;
    line.values.forEach((value, i) => {
      if (value === null) { drawing = false; return; }
      path += `${drawing ? "L" : "M"}${xOf(i).toFixed(1)},${yOf(axis, value).toFixed(1)}`;
      drawing = true;
    });
    svgNode("path", { class: "line", d: path }, group);
    line.values.forEach((value, i) => {
      if (value !== null) svgNode("circle", { class: "point", cx: xOf(i), cy: yOf(axis, value), r: n > 60 ? 2 : 3.5 }, group);
    });
  }
  // Over everything, one column a period: its hover text, and its click.
  const hits = svgNode("g", { class: "hits" }, chart);
  spec.periods.forEach((_, i) => {
    const column = svgNode("rect", { class: "hit", x: margin.left + band * i, width: band, y: margin.top, height: plotHeight }, hits);
    focusablePeriod(column, spec.tips[i], spec.onPick && (() => spec.onPick(i)));
  });

  const parts = [];
  if (bars.length + (line ? 1 : 0) > 1) parts.push(legend([...bars, ...(line ? [line] : [])]));
  parts.push(chart);
  target.replaceChildren(...parts);
}

// ---- Heatmap: a table whose cells are coloured by their count ------------------------------------------------------

// ColorBrewer's YlOrBr, light to dark.
const HEAT = ["#ffffe5", "#fff7bc", "#fee391", "#fec44f", "#fe9929", "#ec7014", "#cc4c02", "#993404", "#662506"]
  .map((hex) => [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16)));

function heatColour(share) {
  const at = Math.min(1, Math.max(0, share)) * (HEAT.length - 1);
  const low = Math.floor(at);
  const high = Math.min(HEAT.length - 1, low + 1);
  const mix = HEAT[low].map((c, k) => Math.round(c + (HEAT[high][k] - c) * (at - low)));
  return `rgb(${mix.join(",")})`;
}

// spec: {rows: [name], columns: [label], values: [[count]], counts: [[text]], tips: [[text]], rowTitle,
//        columnTitle, scaleTitle}.
export function heatTable(target, spec) {
  const most = Math.max(0, ...spec.values.flat());
  const table = htmlNode("table", "heat-table");
  // A fixed layout takes the columns' widths from here: the weekdays' names theirs, the hours share the rest.
  const columnWidths = htmlNode("colgroup");
  columnWidths.append(htmlNode("col", "row-names"), ...spec.columns.map(() => htmlNode("col")));
  table.appendChild(columnWidths);
  const head = table.createTHead();
  const titleRow = head.insertRow();
  titleRow.append(htmlNode("td"));
  const columnTitle = htmlNode("th", "columns-title", spec.columnTitle);
  columnTitle.colSpan = spec.columns.length;
  columnTitle.scope = "colgroup";
  titleRow.appendChild(columnTitle);
  const columns = head.insertRow();
  const corner = htmlNode("th", "rows-title", spec.rowTitle);
  corner.scope = "col";
  columns.appendChild(corner);
  for (const text of spec.columns) {
    const cell = htmlNode("th", "column", text);
    cell.scope = "col";
    columns.appendChild(cell);
  }
  const body = table.createTBody();
  spec.rows.forEach((name, r) => {
    const tr = body.insertRow();
    const rowName = htmlNode("th", "row", name);
    rowName.scope = "row";
    tr.appendChild(rowName);
    spec.values[r].forEach((value, c) => {
      const cell = htmlNode("td", "cell");
      const share = most > 0 ? value / most : 0;
      cell.style.backgroundColor = heatColour(share);
      if (share > 0.55) cell.classList.add("dark");
      cell.dataset.tip = spec.tips[r][c];
      cell.appendChild(htmlNode("span", "count", spec.counts[r][c]));
      tr.appendChild(cell);
    });
  });
  const scale = htmlNode("p", "heat-scale");
  scale.append(htmlNode("span", "scale-title", spec.scaleTitle), htmlNode("span", "scale-low", "0"),
               htmlNode("span", "scale-bar"), htmlNode("span", "scale-high", spec.highest));
  const frame = htmlNode("div", "heat-frame");
  frame.appendChild(table);
  target.replaceChildren(frame, scale);
}
