// The dashboard asks the same JSON endpoints any client can (the browser sends the session cookie). The
// filters are the URL (/dashboard?from=&to=&branch=&product=&source=[&preset=][&refresh=1]): every change
// goes into the address bar, so a view can be bookmarked and shared, and opening that URL shows the same view.
"use strict";

const CONFIG = { displayModeBar: false, responsive: true };
const FONT = { family: "system-ui, sans-serif", size: 12 };
const REFRESH_MS = 60_000;
const FILTERS = ["from", "to", "branch", "product", "source"];
const WEEKDAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

let options = null;          // /v1/reports/options: branches, products, days with sales, the default range
// plotly.js is 4.8 MB of script: it is fetched and run while the figures are being asked for, not before.
let plotlyReady = null;
function loadPlotly() {
  plotlyReady = plotlyReady || new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = document.body.dataset.plotly;
    script.onload = resolve;
    script.onerror = () => reject(new Error("the chart library did not load"));
    document.head.appendChild(script);
  });
  return plotlyReady;
}
let refreshTimer = null;
let choicesFilled = false;

// ---- Text and numbers --------------------------------------------------------------------------------------

// Plotly renders a subset of HTML in every label, tick, legend entry and hover text (<a href>, <b>, <br>),
// and names come from branch files and orders: every text from data goes through `label`, which escapes the
// markup characters as numeric entities. Plotly decodes entities after it has found the tags, so the name
// shows literally and nothing in it becomes markup. (Text put into the page itself uses textContent.)
const ENTITIES = { "&": "&#38;", "<": "&#60;", ">": "&#62;" };
const label = (text) => String(text).replace(/[&<>]/g, (c) => ENTITIES[c]);

// Money arrives as decimal strings ("115623.50"): shown as £115,623.50 from the string itself, never
// through a float, so what the page says is exactly what the API says.
function pounds(amount) {
  const text = String(amount);
  const negative = text.startsWith("-");
  const [whole, fraction = ""] = text.replace(/^-/, "").split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${negative ? "-" : ""}£${grouped}.${(fraction + "00").slice(0, 2)}`;
}
const count = (n) => Number(n).toLocaleString("en-GB");
const MONEY_AXIS = { tickprefix: "£", tickformat: ",.2f", rangemode: "tozero", automargin: true };

const DAY_FORMAT = new Intl.DateTimeFormat("en-GB", { weekday: "short", day: "numeric", month: "short",
                                                      year: "numeric", timeZone: "UTC" });
const utcDate = (iso) => new Date(`${iso}T00:00:00Z`);
const isoOf = (date) => date.toISOString().slice(0, 10);
const addDays = (iso, days) => { const d = utcDate(iso); d.setUTCDate(d.getUTCDate() + days); return isoOf(d); };
const daysBetween = (a, b) => Math.round((utcDate(b) - utcDate(a)) / 86_400_000) + 1;
const showDay = (iso) => DAY_FORMAT.format(utcDate(iso)).replace(",", "");      // "Wed 25 Aug 2021"

// ---- The view in the URL -----------------------------------------------------------------------------------

function viewFromUrl() {
  const params = new URLSearchParams(window.location.search);
  const view = {};
  for (const name of FILTERS) view[name] = params.get(name) || "";
  view.preset = params.get("preset") || "";
  view.refresh = params.get("refresh") === "1";
  return view;
}

function urlOf(view) {
  const params = new URLSearchParams();
  if (view.preset) params.set("preset", view.preset);
  for (const name of FILTERS) if (view[name]) params.set(name, view[name]);
  if (view.refresh) params.set("refresh", "1");
  return `${window.location.pathname}?${params}`;
}

// The API's query for a view: only the report filters, never the page's own settings.
function apiQuery(view, extra) {
  const params = new URLSearchParams();
  for (const name of FILTERS) if (view[name]) params.set(name, view[name]);
  for (const [name, value] of Object.entries(extra || {})) params.set(name, value);
  return params.toString();
}

// Presets are computed from today in the UK (the server's answer); "all time" spans the days with sales.
function presetRange(preset) {
  const today = options.today;
  const [year, month] = today.split("-");
  const firstOfMonth = `${year}-${month}-01`;
  switch (preset) {
    case "today": return [today, today];
    case "yesterday": return [addDays(today, -1), addDays(today, -1)];
    case "last7": return [addDays(today, -7), addDays(today, -1)];
    case "last4weeks": return [addDays(today, -28), addDays(today, -1)];
    case "mtd": return [firstOfMonth, today];
    case "lastmonth": { const end = addDays(firstOfMonth, -1); return [`${end.slice(0, 7)}-01`, end]; }
    case "ytd": return [`${year}-01-01`, today];
    case "all": return options.first_day ? [options.first_day, options.last_day] : [today, today];
    default: return null;
  }
}

function resolveView(view) {
  const range = presetRange(view.preset);
  if (range) [view.from, view.to] = range;
  else view.preset = "";
  if (!view.from || !view.to) {
    view.from = view.from || options.default_from || options.today;
    view.to = view.to || options.default_to || options.today;
  }
  return view;
}

// Long ranges come in coarser periods, so "all time" is a readable chart on any history.
function granularityOf(view) {
  const days = daysBetween(view.from, view.to);
  return days <= 62 ? "day" : days <= 731 ? "week" : "month";
}

// ---- Fetching ----------------------------------------------------------------------------------------------

async function getJson(path, query) {
  const response = await fetch(query ? `${path}?${query}` : path, { credentials: "same-origin" });
  // Signed out (here or on another page) or the account changed: the page itself sends the browser to sign in.
  if (response.status === 401) { window.location.reload(); throw new Error("signed out"); }
  let body = null;
  try { body = await response.json(); } catch (_) { /* a proxy's page: the status says it */ }
  if (!response.ok) {
    throw new Error(body && body.error ? body.error.message : `the service answered ${response.status}`);
  }
  return body;
}

// ---- Charts ------------------------------------------------------------------------------------------------

// On a phone a money axis gets fewer ticks, so its labels ("£15,000.00") stay level and apart.
const narrow = () => window.innerWidth < 700;
const moneyAxis = (title) => ({ ...MONEY_AXIS, nticks: narrow() ? 4 : 6, title: { text: title } });

function layout(extra) {
  return Object.assign({ font: FONT, margin: { t: 10, r: 16, b: 10, l: 10 }, showlegend: false,
                         paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
                         hoverlabel: { align: "left" } }, extra);
}

// A chart's place shows either its chart or, when its data could not be had, the reason instead.
function chartFailed(id, error) {
  const element = document.getElementById(id);
  if (window.Plotly) Plotly.purge(element);
  element.replaceChildren();
  element.classList.add("failed");
  const message = document.createElement("p");
  message.className = "chart-error";
  message.textContent = `Could not load this chart: ${error.message}`;
  element.appendChild(message);
  element.dataset.rendered = "error";
}

async function plot(id, traces, chartLayout, onClick) {
  await loadPlotly();
  const element = document.getElementById(id);
  element.classList.remove("failed");
  if (element.querySelector(".chart-error")) element.replaceChildren();
  await Plotly.react(element, traces, chartLayout, CONFIG);
  element.removeAllListeners && element.removeAllListeners("plotly_click");
  if (onClick) element.on("plotly_click", (event) => event.points.length && onClick(event.points[0]));
  element.dataset.rendered = "true";
}

const productName = (r) => [r.size, r.product, r.flavour].filter(Boolean).join(" ");

function revenueBars(id, rows, nameOf, axisTitle, onClick) {
  const shown = rows.slice().reverse();             // the best at the top of a horizontal bar chart
  // On a phone a name beside its bar would leave the bar no room: it goes above the bar, across the chart.
  const names = narrow()
    ? { ticklabelposition: "inside top", ticklabelshift: -13, automargin: false, title: { text: "" },
        tickfont: { size: 11 }, range: [-0.5, shown.length - 0.1] }     // room above the top bar for its name
    : { automargin: true, title: { text: axisTitle } };
  return plot(id, [{
    type: "bar", orientation: "h", marker: { color: "#8c5a3c" },
    y: shown.map((r) => label(nameOf(r))), x: shown.map((r) => Number(r.revenue)),
    customdata: shown.map((r) => [pounds(r.revenue), count(r.transactions)]),
    hovertemplate: "%{y}<br>%{customdata[0]} from %{customdata[1]} sales<extra></extra>",
  }], layout({ height: Math.max(220, 60 + (narrow() ? 44 : 26) * shown.length),
               margin: { t: 10, r: 40, b: 10, l: narrow() ? 30 : 10 },
               bargap: narrow() ? 0.6 : 0.2, xaxis: moneyAxis("Revenue (£)"), yaxis: names }),
  onClick && ((point) => onClick(shown[point.pointIndex])));
}

const PERIOD_NAMES = { day: "day", week: "week (from Monday)", month: "month" };

function trendChart(trend, view) {
  const series = trend.series;
  document.getElementById("trend-title").textContent = `Revenue per ${PERIOD_NAMES[trend.granularity]}`;
  return plot("chart-trend", [{
    type: "scatter", mode: series.length > 60 ? "lines" : "lines+markers", line: { color: "#8c5a3c" },
    x: series.map((p) => p.period_start), y: series.map((p) => Number(p.revenue)),
    customdata: series.map((p) => [pounds(p.revenue), count(p.transactions),
                                   p.revenue_change_pct === null ? "" : `<br>${p.revenue_change_pct}% on the one before`]),
    hovertemplate: "%{x}<br>%{customdata[0]} from %{customdata[1]} sales%{customdata[2]}<extra></extra>",
  }], layout({ height: 300,
               xaxis: { type: "date", automargin: true, title: { text: trend.granularity === "week"
                 ? "Week starting" : trend.granularity === "month" ? "Month" : "Day" } },
               yaxis: moneyAxis("Revenue (£)") }),
  (point) => {
    const start = series[point.pointIndex].period_start;
    const end = trend.granularity === "day" ? start : trend.granularity === "week" ? addDays(start, 6)
      : addDays(`${addDays(start, 31).slice(0, 7)}-01`, -1);
    go({ ...view, preset: "", from: start, to: end });
  });
}

function peakChart(peak) {
  const hours = [...new Set(peak.cells.map((c) => c.hour))].sort((a, b) => a - b);
  const byCell = new Map(peak.cells.map((c) => [`${c.weekday}:${c.hour}`, c]));
  const grid = WEEKDAY_NAMES.map((_, d) => hours.map((h) => { const c = byCell.get(`${d + 1}:${h}`); return c ? c.transactions : 0; }));
  const money = WEEKDAY_NAMES.map((_, d) => hours.map((h) => { const c = byCell.get(`${d + 1}:${h}`); return c ? pounds(c.revenue) : "£0.00"; }));
  const hourLabel = (h) => `${String(h).padStart(2, "0")}:00`;
  return plot("chart-peak", [{
    type: "heatmap", z: grid, x: hours.map(hourLabel), y: WEEKDAY_NAMES, colorscale: "YlOrBr", reversescale: false,
    customdata: money, xgap: 1, ygap: 1,
    colorbar: { title: { text: "Sales" }, thickness: 12 },
    hovertemplate: "%{y} %{x}<br>%{z:,} sales, %{customdata}<extra></extra>",
  }], layout({ height: 300, xaxis: { title: { text: "Hour of day (UK)" }, automargin: true, type: "category",
                                     nticks: narrow() ? 7 : 24 },
               yaxis: { autorange: "reversed", automargin: true } }));
}

function paymentChart(payment) {
  return plot("chart-payment", [{
    type: "pie", hole: 0.45, sort: false, marker: { colors: ["#8c5a3c", "#d9a05b", "#5b7b8c", "#a3a3a3"] },
    labels: payment.rows.map((r) => label(r.payment_method)), values: payment.rows.map((r) => Number(r.revenue)),
    customdata: payment.rows.map((r) => pounds(r.revenue)), textinfo: "label+percent",
    hovertemplate: "%{label}<br>%{customdata} (%{percent})<extra></extra>",
  }], layout({ height: 280, showlegend: false }));
}

function customersChart(customers) {
  const series = customers.series;
  document.getElementById("customers-title").textContent = `Customers per ${PERIOD_NAMES[customers.granularity]}`;
  const x = series.map((p) => p.period_start);
  // The bars keep to the lower part of the chart and the spend line runs above them, so neither hides the other.
  const most = Math.max(1, ...series.map((p) => p.customers));
  const spends = series.map((p) => Number(p.revenue_per_customer || 0));
  const highest = Math.max(1, ...spends);
  return plot("chart-customers", [
    { type: "bar", name: "New", x, y: series.map((p) => p.new_customers), marker: { color: "#d9a05b" },
      hovertemplate: "%{x}<br>%{y:,} new customers<extra></extra>" },
    { type: "bar", name: "Returning", x, y: series.map((p) => p.returning_customers), marker: { color: "#8c5a3c" },
      hovertemplate: "%{x}<br>%{y:,} returning customers<extra></extra>" },
    { type: "scatter", mode: "lines+markers", name: "Average spend per customer", yaxis: "y2", x,
      y: series.map((p) => p.revenue_per_customer === null ? null : Number(p.revenue_per_customer)),
      customdata: series.map((p) => p.revenue_per_customer === null ? "no customers" : pounds(p.revenue_per_customer)),
      line: { color: "#5b7b8c" }, hovertemplate: "%{x}<br>%{customdata} per customer<extra></extra>" },
  ], layout({ height: 300, barmode: "stack", showlegend: true, legend: { orientation: "h", y: -0.3 },
              xaxis: { type: "date", automargin: true, title: { text: customers.granularity === "day" ? "Day" : customers.granularity === "week" ? "Week starting" : "Month" } },
              yaxis: { title: { text: "Customers" }, range: [0, most * 1.8], automargin: true, nticks: 5 },
              yaxis2: { ...moneyAxis("Spend per customer (£)"), range: [0, highest * 1.15], nticks: 5,
                        overlaying: "y", side: "right", showgrid: false } }));
}

function missingFiles(coverage, view) {
  const target = document.getElementById("missing-files");
  document.getElementById("missing-range").textContent =
    `Days without a branch's file, ${showDay(coverage.days[0])} to ${showDay(coverage.last_day)}. Click a branch to see it alone.`;
  const rows = coverage.branches.filter((b) => b.days_missing > 0);
  if (!rows.length) {
    target.textContent = "Every branch's file is in for these days.";
    return;
  }
  const table = document.createElement("table");
  table.innerHTML = "<thead><tr><th>Branch</th><th>Last day</th><th>Days missing</th></tr></thead>";
  const body = document.createElement("tbody");
  for (const b of rows) {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    const link = document.createElement("a");
    link.textContent = b.branch;
    link.href = urlOf({ ...view, branch: b.branch });
    link.addEventListener("click", (event) => { event.preventDefault(); go({ ...view, branch: b.branch }); });
    name.appendChild(link);
    const last = document.createElement("td");
    last.textContent = b.missing_last_day ? "missing" : "in";
    if (b.missing_last_day) last.className = "missing";
    const missing = document.createElement("td");
    missing.textContent = `${b.days_missing} of ${coverage.days.length}`;
    tr.append(name, last, missing);
    body.appendChild(tr);
  }
  table.appendChild(body);
  target.replaceChildren(table);
}

// ---- Tiles -------------------------------------------------------------------------------------------------

const TILES = {
  revenue: (f) => pounds(f.revenue), transactions: (f) => count(f.transactions),
  average_spend: (f) => pounds(f.average_spend), items_per_sale: (f) => f.items_per_sale,
};

function tiles(summary) {
  const days = daysBetween(summary.from, summary.to);
  const before = days === 1 ? "the day before" : `the ${days} days before`;
  for (const [measure, show] of Object.entries(TILES)) {
    const tile = document.getElementById(`tile-${measure}`);
    tile.querySelector(".value").textContent = show(summary.current);
    const change = tile.querySelector(".change");
    const pct = summary.change_pct[measure];
    change.className = "change";
    if (pct === null) {
      change.textContent = summary.previous && Number(summary.previous.transactions) > 0
        ? `no change to compare (${before})` : `no sales in ${before}`;
    } else {
      const up = Number(pct) > 0, down = Number(pct) < 0;
      change.textContent = `${up ? "▲ +" : down ? "▼ " : ""}${pct}% on ${before} (${show(summary.previous)})`;
      change.classList.add(up ? "up" : down ? "down" : "flat");
    }
  }
}

// ---- The page ----------------------------------------------------------------------------------------------

function fillChoices() {
  const branch = document.getElementById("branch");
  for (const name of options.branches) branch.add(new Option(name, name));
  if (options.branches.length === 1) branch.options[0].textContent = "My branch";
  const product = document.getElementById("product");
  for (const name of options.products) product.add(new Option(name, name));
}

function select(id, value) {
  const element = document.getElementById(id);
  if (value && ![...element.options].some((o) => o.value === value)) element.add(new Option(value, value));
  element.value = value;
}

function showView(view) {
  document.getElementById("from").value = view.from;
  document.getElementById("to").value = view.to;
  select("branch", view.branch);
  select("product", view.product);
  select("source", view.source);
  document.getElementById("refresh").checked = view.refresh;
  for (const button of document.querySelectorAll("[data-preset]")) {
    button.setAttribute("aria-pressed", String(button.dataset.preset === view.preset));
  }
  const kinds = ["transactions", "items"];
  for (const kind of kinds) for (const format of ["csv", "parquet"]) {
    document.getElementById(`export-${kind}-${format}`).href = `/v1/exports/${kind}.${format}?${apiQuery(view)}`;
  }
  document.getElementById("reset").href = window.location.pathname;
}

function describe(view) {
  const parts = [view.from === view.to ? showDay(view.from) : `${showDay(view.from)} to ${showDay(view.to)}`];
  parts.push(view.branch || (options.branches.length === 1 ? options.branches[0] : "every branch"));
  if (view.product) parts.push(view.product);
  if (view.source) parts.push(view.source === "file" ? "tills only" : "live orders only");
  return parts.join(" · ");
}

function go(view) {
  window.history.pushState(null, "", urlOf(view));
  load();
}

function noSalesNotice(summary, view) {
  const notice = document.getElementById("no-sales");
  if (summary.current.transactions > 0 || !options.last_day) { notice.hidden = true; return; }
  notice.replaceChildren();
  notice.append(`No sales from ${showDay(view.from)} to ${showDay(view.to)} for these filters. `
                + `The latest sales are on ${showDay(options.last_day)}: `);
  const link = document.createElement("a");
  link.textContent = "show the latest week with sales";
  const latest = { ...view, preset: "", from: options.default_from, to: options.default_to };
  link.href = urlOf(latest);
  link.addEventListener("click", (event) => { event.preventDefault(); go(latest); });
  notice.append(link);
  notice.hidden = false;
}

async function load() {
  const status = document.getElementById("status");
  const error = document.getElementById("error");
  const content = document.getElementById("content");
  document.body.dataset.loaded = "false";
  status.textContent = "Loading…";
  try {
    let view = viewFromUrl();
    // A view with its dates (the server puts the opening week in the URL) asks for every figure at once; only a
    // preset needs today's date, from the options, first.
    const early = view.from && view.to && !view.preset ? requests(view) : null;
    options = await getJson("/v1/reports/options", view.branch ? apiQuery({ branch: view.branch }) : "");
    if (!options.last_day) {               // an empty warehouse: say how to fill it, not empty charts
      document.getElementById("empty").hidden = false;
      content.hidden = true;
      status.textContent = "No sales yet.";
      document.body.dataset.loaded = "true";
      return;
    }
    document.getElementById("empty").hidden = true;
    if (!choicesFilled) { fillChoices(); choicesFilled = true; }
    view = resolveView(view);
    window.history.replaceState(null, "", urlOf(view));     // the URL always names the dates shown
    showView(view);
    const asked = early || requests(view);
    // The headline figures decide whether the view can be shown at all (a bad filter is said once, in
    // place of every chart); each chart then stands or falls alone.
    const summary = await asked.summary;
    error.hidden = true;
    content.hidden = false;
    tiles(summary);
    noSalesNotice(summary, view);
    const draw = {
      "chart-trend": (d) => trendChart(d, view),
      "chart-branches": (d) => revenueBars("chart-branches", d.rows, (r) => r.branch, "Branch",
                                           options.branches.length > 1 ? (r) => go({ ...view, branch: r.branch }) : null),
      "chart-top-products": (d) => revenueBars("chart-top-products", d.rows, productName, "Product",
                                               (r) => go({ ...view, product: r.product })),
      "chart-bottom-products": (d) => revenueBars("chart-bottom-products", d.rows.slice().reverse(), productName,
                                                  "Product", (r) => go({ ...view, product: r.product })),
      "chart-peak": peakChart,
      "chart-payment": paymentChart,
      "chart-customers": customersChart,
      "missing-files": (d) => missingFiles(d, view),
    };
    const charts = Object.entries(draw);
    const outcomes = await Promise.allSettled(charts.map(([id, drawIt]) => asked.charts[id].then(drawIt)));
    outcomes.forEach((outcome, n) => { if (outcome.status === "rejected") chartFailed(charts[n][0], outcome.reason); });
    status.textContent = describe(view);
    document.getElementById("updated").textContent =
      `Updated ${new Date().toLocaleTimeString("en-GB", { timeZone: "Europe/London" })}`;
    document.body.dataset.loaded = "true";
  } catch (failure) {
    // The message replaces the charts: nothing from an earlier view stays on screen under it.
    content.hidden = true;
    error.textContent = `Could not load the reports: ${failure.message}`;
    error.hidden = false;
    status.textContent = "";
    document.body.dataset.loaded = "error";
  }
}

// Every JSON request of a view with its dates, started at once; each is a promise of its answer.
function requests(view) {
  const granularity = granularityOf(view);
  const coverageFrom = addDays(view.to, -13) < view.from ? view.from : addDays(view.to, -13);
  const q = (extra) => apiQuery(view, extra);
  const asked = {
    summary: getJson("/v1/reports/summary", q()),
    charts: {
      "chart-trend": getJson("/v1/reports/trend", q({ granularity })),
      "chart-branches": getJson("/v1/reports/sales", q({ group_by: "branch", order: "desc" })),
      "chart-top-products": getJson("/v1/reports/sales", q({ group_by: "product", order: "desc", limit: 10 })),
      "chart-bottom-products": getJson("/v1/reports/sales", q({ group_by: "product", order: "asc", limit: 10 })),
      "chart-peak": getJson("/v1/reports/peak-hours", q()),
      "chart-payment": getJson("/v1/reports/sales", q({ group_by: "payment_method" })),
      "chart-customers": getJson("/v1/reports/customers", q({ granularity })),
      "missing-files": getJson("/v1/reports/coverage", apiQuery({ from: coverageFrom, to: view.to, branch: view.branch })),
    },
  };
  // A view that fails as a whole is reported once (by the summary); the charts' own failures are handled where
  // they are drawn. Until then no rejection counts as unhandled.
  for (const promise of [asked.summary, ...Object.values(asked.charts)]) promise.catch(() => {});
  return asked;
}

function viewFromForm(form) {
  const data = new FormData(form);
  const view = { preset: "", refresh: document.getElementById("refresh").checked };
  for (const name of FILTERS) view[name] = data.get(name) || "";
  return view;
}

function setRefresh(on) {
  clearInterval(refreshTimer);
  refreshTimer = on ? setInterval(load, REFRESH_MS) : null;
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("filters");
  form.addEventListener("submit", (event) => { event.preventDefault(); go(viewFromForm(form)); });
  for (const id of ["branch", "product", "source"]) {
    document.getElementById(id).addEventListener("change", () => go({ ...viewFromUrl(), [id]: document.getElementById(id).value }));
  }
  for (const button of document.querySelectorAll("[data-preset]")) {
    button.addEventListener("click", () => go({ ...viewFromForm(form), preset: button.dataset.preset }));
  }
  document.getElementById("refresh").addEventListener("change", (event) => {
    const view = viewFromUrl();
    view.refresh = event.target.checked;
    window.history.replaceState(null, "", urlOf(view));
    setRefresh(view.refresh);
  });
  window.addEventListener("popstate", load);
  setRefresh(viewFromUrl().refresh);
  load();
  loadPlotly().catch(() => { /* each chart says so in its place */ });
});
