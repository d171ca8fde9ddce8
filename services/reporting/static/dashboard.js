// The dashboard asks the same JSON endpoints any client can (the browser sends the session cookie). The
// filters are the URL (/dashboard?from=&to=&branch=&product=&source=[&preset=][&refresh=1]): every change
// goes into the address bar, so a view can be bookmarked and shared, and opening that URL shows the same view.
import { barTable, forget, heatTable, installTooltips, timeChart } from "./charts.js";

const REFRESH_MS = 60_000;
const FILTERS = ["from", "to", "branch", "product", "source"];
const WEEKDAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

let options = null;          // /v1/reports/options: branches, products, days with sales, the default range
let refreshTimer = null;
let choicesFilled = false;

// ---- Text and numbers --------------------------------------------------------------------------------------

// Every text from data (branch and product names, payment methods) reaches the page as text: charts.js puts it
// in with textContent, so a name such as <a href=...> shows as those characters and never becomes markup.

// Money arrives as decimal strings ("115623.50"): shown as £115,623.50 from the string itself, never
// through a float, so what the page says is exactly what the API says.
function pounds(amount) {
  const text = String(amount);
  const negative = text.startsWith("-");
  const [whole, fraction = ""] = text.replace(/^-/, "").split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${negative ? "-" : ""}£${grouped}.${(fraction + "00").slice(0, 2)}`;
}
// Building an Intl formatter costs a fresh page tens of milliseconds: each is built when first used, after the
// view's requests have gone out, and then kept.
function lazily(build) {
  let built = null;
  return () => (built = built || build());
}
const COUNT = lazily(() => new Intl.NumberFormat("en-GB"));
const count = (n) => COUNT().format(Number(n));
// Axis ticks are positions, not amounts from the API: formatted from the number.
const TICK_POUNDS = lazily(() => new Intl.NumberFormat("en-GB", { style: "currency", currency: "GBP" }));
const tickPounds = (n) => TICK_POUNDS().format(n);

const DAY_FORMAT = lazily(() => new Intl.DateTimeFormat("en-GB", { weekday: "short", day: "numeric", month: "short",
                                                                   year: "numeric", timeZone: "UTC" }));
const utcDate = (iso) => new Date(`${iso}T00:00:00Z`);
const isoOf = (date) => date.toISOString().slice(0, 10);
const addDays = (iso, days) => { const d = utcDate(iso); d.setUTCDate(d.getUTCDate() + days); return isoOf(d); };
const daysBetween = (a, b) => Math.round((utcDate(b) - utcDate(a)) / 86_400_000) + 1;
const showDay = (iso) => DAY_FORMAT().format(utcDate(iso)).replace(",", "");      // "Wed 25 Aug 2021"
const SHORT_DAY = lazily(() => new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", timeZone: "UTC" }));
const MONTH = lazily(() => new Intl.DateTimeFormat("en-GB", { month: "short", year: "numeric", timeZone: "UTC" }));
// A period's tick label: "25 Aug" for a day or a week (its Monday), "Aug 2021" for a month.
const periodTick = (iso, granularity) => (granularity === "month" ? MONTH() : SHORT_DAY()).format(utcDate(iso));
const periodName = (iso, granularity) => granularity === "month" ? MONTH().format(utcDate(iso))
  : granularity === "week" ? `Week of ${showDay(iso)}` : showDay(iso);

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
    const failure = new Error(body && body.error ? body.error.message : `the service answered ${response.status}`);
    failure.code = body && body.error ? body.error.code : null;
    throw failure;
  }
  return body;
}

// ---- Charts ------------------------------------------------------------------------------------------------

// Answers read from the sales themselves (a product by payment method, several products summed, customers of a
// product) and exports take at most options.max_range_days: a longer view says so and offers its latest days that fit.
const tooLong = (view) => daysBetween(view.from, view.to) > options.max_range_days;

// The whole day, week (from Monday) or month that a day falls in: the trend and customers come in whole periods.
function periodAround(iso, granularity) {
  if (granularity === "day") return [iso, iso];
  if (granularity === "week") {
    const monday = addDays(iso, -((utcDate(iso).getUTCDay() + 6) % 7));
    return [monday, addDays(monday, 6)];
  }
  const first = `${iso.slice(0, 7)}-01`;
  return [first, addDays(`${addDays(first, 31).slice(0, 7)}-01`, -1)];
}

// The view's latest days that fit the limit, also once the charts over time widen them to whole periods.
function latestThatFits(view) {
  let from = addDays(view.to, -(options.max_range_days - 1));
  for (;;) {
    const granularity = granularityOf({ from, to: view.to });
    if (daysBetween(periodAround(from, granularity)[0], periodAround(view.to, granularity)[1])
        <= options.max_range_days) return { ...view, preset: "", from };
    from = addDays(from, 1);
  }
}

function rangeLimitNotice(what, view) {
  const notice = document.createElement("p");
  notice.className = "range-limit";
  const most = count(options.max_range_days);
  notice.append(`With these filters ${what} counted from each sale, up to ${most} days at a time; this view spans `
                + `${count(daysBetween(view.from, view.to))} days. `);
  const shorter = latestThatFits(view);
  const link = document.createElement("a");
  link.textContent = `Show ${showDay(shorter.from)} to ${showDay(shorter.to)}`;
  link.href = urlOf(shorter);
  link.addEventListener("click", (event) => { event.preventDefault(); go(shorter); });
  notice.append(link);
  return notice;
}

// A chart's place shows either its chart or, when its data could not be had, the reason instead.
function chartFailed(id, error, view) {
  const element = document.getElementById(id);
  forget(element);
  element.classList.add("failed");
  if (error.code === "range_too_large") {
    element.replaceChildren(rangeLimitNotice("this chart is", view));
    element.dataset.rendered = "limited";
    return;
  }
  const message = document.createElement("p");
  message.className = "chart-error";
  message.textContent = `Could not load this chart: ${error.message}`;
  element.replaceChildren(message);
  element.dataset.rendered = "error";
}

function drawn(id, draw) {
  const element = document.getElementById(id);
  element.classList.remove("failed");
  draw(element);
  element.dataset.rendered = "true";
}

const productName = (r) => [r.size, r.product, r.flavour].filter(Boolean).join(" ");

function revenueBars(id, rows, nameOf, nameTitle, pick, fold) {
  drawn(id, (element) => barTable(element, {
    nameTitle, amountTitle: "Revenue (£)", countTitle: "Sales", ...fold,
    rows: rows.map((r) => ({ name: nameOf(r), value: Number(r.revenue), amount: pounds(r.revenue),
                             count: count(r.transactions), href: pick && urlOf(pick.view(r)),
                             tip: `${nameOf(r)}\n${pounds(r.revenue)} from ${count(r.transactions)} sales` })),
    onPick: pick && ((index) => go(pick.view(rows[index]))),
  }));
}

const PERIOD_NAMES = { day: "day", week: "week (from Monday)", month: "month" };
const PERIOD_TITLES = { day: "Day", week: "Week starting", month: "Month" };

function trendChart(trend, view) {
  const series = trend.series;
  const granularity = trend.granularity;
  document.getElementById("trend-title").textContent = `Revenue per ${PERIOD_NAMES[granularity]}`;
  drawn("chart-trend", (element) => timeChart(element, {
    height: 300, label: `Revenue per ${granularity}`, xTitle: PERIOD_TITLES[granularity],
    periods: series.map((p) => periodTick(p.period_start, granularity)),
    tips: series.map((p) => `${periodName(p.period_start, granularity)}\n${pounds(p.revenue)} from `
                            + `${count(p.transactions)} sales`
                            + (p.revenue_change_pct === null ? "" : `\n${p.revenue_change_pct}% on the one before`)),
    line: { name: "Revenue", className: "s-revenue", axis: "left", values: series.map((p) => Number(p.revenue)) },
    left: { title: "Revenue (£)", format: tickPounds },
    onPick: (index) => {
      const [from, to] = periodAround(series[index].period_start, granularity);
      go({ ...view, preset: "", from, to });
    },
  }));
}

const hourLabel = (h) => `${String(h).padStart(2, "0")}:00`;

function peakChart(peak) {
  const present = peak.cells.map((c) => c.hour);
  const first = present.length ? Math.min(...present) : 9;
  const last = present.length ? Math.max(...present) : 17;
  const hours = Array.from({ length: last - first + 1 }, (_, k) => first + k);
  const byCell = new Map(peak.cells.map((c) => [`${c.weekday}:${c.hour}`, c]));
  const cellOf = (d, h) => byCell.get(`${d + 1}:${h}`) || { transactions: 0, revenue: "0" };
  const values = WEEKDAY_NAMES.map((_, d) => hours.map((h) => cellOf(d, h).transactions));
  drawn("chart-peak", (element) => heatTable(element, {
    rows: WEEKDAY_NAMES, columns: hours.map((h) => String(h).padStart(2, "0")), values,
    counts: values.map((row) => row.map(count)),
    tips: WEEKDAY_NAMES.map((day, d) => hours.map((h) => `${day} ${hourLabel(h)}\n`
      + `${count(cellOf(d, h).transactions)} sales, ${pounds(cellOf(d, h).revenue)}`)),
    rowTitle: "Weekday", columnTitle: "Hour of day (UK)", scaleTitle: "Sales",
    highest: count(Math.max(0, ...values.flat())),
  }));
}

function paymentChart(payment) {
  const total = payment.rows.reduce((sum, r) => sum + Number(r.revenue), 0);
  const share = (r) => `${total > 0 ? (100 * Number(r.revenue) / total).toFixed(1) : "0.0"}%`;
  drawn("chart-payment", (element) => barTable(element, {
    nameTitle: "Payment", amountTitle: "Revenue (£)", countTitle: "Share",
    rows: payment.rows.map((r) => ({ name: r.payment_method, value: Number(r.revenue), amount: pounds(r.revenue),
                                     count: share(r), tip: `${r.payment_method}\n${pounds(r.revenue)} (${share(r)})` })),
  }));
}

function customersChart(customers) {
  const series = customers.series;
  const granularity = customers.granularity;
  document.getElementById("customers-title").textContent = `Customers per ${PERIOD_NAMES[granularity]}`;
  drawn("chart-customers", (element) => timeChart(element, {
    height: 320, label: `New and returning customers and spend per customer, per ${granularity}`,
    xTitle: PERIOD_TITLES[granularity],
    periods: series.map((p) => periodTick(p.period_start, granularity)),
    tips: series.map((p) => `${periodName(p.period_start, granularity)}\n${count(p.new_customers)} new, `
                            + `${count(p.returning_customers)} returning customers\n`
                            + (p.revenue_per_customer === null ? "no customers"
                              : `${pounds(p.revenue_per_customer)} per customer`)),
    // The bars keep to the lower part of the chart and the spend line runs above them, so neither hides the other.
    bars: [{ name: "New", className: "s-new", values: series.map((p) => p.new_customers) },
           { name: "Returning", className: "s-returning", values: series.map((p) => p.returning_customers) }],
    line: { name: "Average spend per customer", className: "s-spend", axis: "right",
            values: series.map((p) => (p.revenue_per_customer === null ? null : Number(p.revenue_per_customer))) },
    left: { title: "Customers", format: count, headroom: 1.8 },
    right: { title: "Spend per customer (£)", format: tickPounds, headroom: 1.15 },
  }));
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
  // Exports take at most options.max_range_days too: a longer view downloads its latest days that fit, and says so.
  const exported = tooLong(view) ? latestThatFits(view) : view;
  const range = document.getElementById("export-range");
  range.textContent = `(${showDay(exported.from)} to ${showDay(exported.to)}, the latest days of this view: `
                      + `downloads cover up to ${count(options.max_range_days)} days at a time)`;
  range.hidden = exported === view;
  const kinds = ["transactions", "items"];
  for (const kind of kinds) for (const format of ["csv", "parquet"]) {
    document.getElementById(`export-${kind}-${format}`).href = `/v1/exports/${kind}.${format}?${apiQuery(exported)}`;
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
  const limited = document.getElementById("too-long");
  document.body.dataset.loaded = "false";
  status.textContent = "Loading…";
  let view = viewFromUrl();
  try {
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
    limited.hidden = true;
    content.hidden = false;
    tiles(summary);
    noSalesNotice(summary, view);
    const draw = {
      "chart-trend": (d) => trendChart(d, view),
      "chart-branches": (d) => revenueBars("chart-branches", d.rows, (r) => r.branch, "Branch",
                                           options.branches.length > 1 ? { view: (r) => ({ ...view, branch: r.branch }) } : null,
                                           { firstRows: 10, plural: "branches" }),
      "chart-top-products": (d) => revenueBars("chart-top-products", d.rows, productName, "Product",
                                               { view: (r) => ({ ...view, product: r.product }) }),
      "chart-bottom-products": (d) => revenueBars("chart-bottom-products", d.rows.slice().reverse(), productName,
                                                  "Product", { view: (r) => ({ ...view, product: r.product }) }),
      "chart-peak": peakChart,
      "chart-payment": paymentChart,
      "chart-customers": customersChart,
      "missing-files": (d) => missingFiles(d, view),
    };
    const charts = Object.entries(draw);
    const outcomes = await Promise.allSettled(charts.map(([id, drawIt]) => asked.charts[id].then(drawIt)));
    outcomes.forEach((outcome, n) => { if (outcome.status === "rejected") chartFailed(charts[n][0], outcome.reason, view); });
    status.textContent = describe(view);
    document.getElementById("updated").textContent =
      `Updated ${new Date().toLocaleTimeString("en-GB", { timeZone: "Europe/London" })}`;
    document.body.dataset.loaded = "true";
  } catch (failure) {
    // The message replaces the charts: nothing from an earlier view stays on screen under it.
    content.hidden = true;
    status.textContent = "";
    if (failure.code === "range_too_large" && options) {
      // Not a fault: these filters (several products summed, say) are counted from each sale, which takes a
      // limited range. Said as such, with the view's latest days that can be shown.
      error.hidden = true;
      limited.replaceChildren(rangeLimitNotice("the figures are", view));
      limited.hidden = false;
      status.textContent = describe(view);
      document.body.dataset.loaded = "true";
      return;
    }
    limited.hidden = true;
    error.textContent = `Could not load the reports: ${failure.message}`;
    error.hidden = false;
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
  installTooltips();
  load();
});
