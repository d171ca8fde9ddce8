// The dashboard asks the same JSON endpoints any client can; the browser sends the session cookie.
"use strict";

const CONFIG = { displayModeBar: false, responsive: true };
const LAYOUT = { margin: { t: 10, r: 10, b: 40, l: 60 } };

function query(extra) {
  const params = new URLSearchParams(extra || {});
  for (const name of ["from", "to"]) {
    const value = document.getElementById(name).value;
    if (value) params.set(name, value);
  }
  for (const option of document.getElementById("branch").selectedOptions) params.append("branch", option.value);
  return params.toString();
}

async function getJson(path, extra) {
  const response = await fetch(`${path}?${query(extra)}`, { credentials: "same-origin" });
  // Signed out (here or on another page) or the account changed: the page itself sends the browser to sign in.
  if (response.status === 401) { window.location.reload(); throw new Error("signed out"); }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

function plot(id, traces, layout) {
  const element = document.getElementById(id);
  return Plotly.react(element, traces, Object.assign({}, LAYOUT, layout || {}), CONFIG)
    .then(() => { element.dataset.rendered = "true"; });
}

// Plotly renders a subset of HTML in every label, tick, legend entry and hover text (<a href>, <b>, <br>),
// and names come from branch files and orders: every text from data goes through `label`, which escapes the
// markup characters as numeric entities. Plotly decodes entities after it has found the tags, so the name
// shows literally and nothing in it becomes markup.
const ENTITIES = { "&": "&#38;", "<": "&#60;", ">": "&#62;" };
const label = (text) => String(text).replace(/[&<>]/g, (c) => ENTITIES[c]);
const labels = (rows, key) => rows.map((r) => label(r[key]));

const productLabel = (r) => label([r.size, r.product, r.flavour].filter(Boolean).join(" "));

function bars(id, rows, labelOf, horizontal) {
  const names = rows.map(labelOf), values = rows.map((r) => Number(r.revenue));
  const trace = horizontal
    ? { type: "bar", orientation: "h", y: names.slice().reverse(), x: values.slice().reverse() }
    : { type: "bar", x: names, y: values };
  return plot(id, [trace], horizontal ? { margin: { t: 10, r: 10, b: 40, l: 230 } } : {});
}

function missingFiles(coverage) {
  const target = document.getElementById("missing-files");
  const rows = coverage.branches.filter((b) => b.days_missing > 0);
  if (!rows.length) { target.textContent = `Every branch's file is in for ${coverage.from} to ${coverage.to}.`; return; }
  const table = document.createElement("table");
  table.innerHTML = "<thead><tr><th>Branch</th><th>Last day</th><th>Days missing</th></tr></thead>";
  const body = document.createElement("tbody");
  for (const b of rows) {
    const tr = document.createElement("tr");
    for (const [text, css] of [[b.branch, ""], [b.missing_last_day ? "missing" : "in", b.missing_last_day ? "missing" : ""],
                               [String(b.days_missing), ""]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (css) td.className = css;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  table.appendChild(body);
  target.replaceChildren(table);
}

function fillBranches(rows) {
  const select = document.getElementById("branch");
  if (select.options.length) return;
  for (const name of rows.map((r) => r.branch).sort()) select.add(new Option(name, name));
}

async function load() {
  const status = document.getElementById("status");
  status.textContent = "Loading…";
  try {
    const [trend, branches, top, bottom, peak, payment, customers] = await Promise.all([
      getJson("/v1/reports/trend", { granularity: "day" }),
      getJson("/v1/reports/sales", { group_by: "branch", order: "desc" }),
      getJson("/v1/reports/sales", { group_by: "product", order: "desc", limit: 10 }),
      getJson("/v1/reports/sales", { group_by: "product", order: "asc", limit: 10 }),
      getJson("/v1/reports/peak-hours"),
      getJson("/v1/reports/sales", { group_by: "payment_method" }),
      getJson("/v1/reports/customers", { granularity: "week" }),
    ]);
    const coverage = await getJson("/v1/reports/coverage", document.getElementById("to").value ? {} : { to: trend.to });
    fillBranches(branches.rows);
    const days = [1, 2, 3, 4, 5, 6, 7], hours = [...new Set(peak.cells.map((c) => c.hour))].sort((a, b) => a - b);
    const grid = days.map((d) => hours.map((h) => {
      const cell = peak.cells.find((c) => c.weekday === d && c.hour === h);
      return cell ? cell.transactions : 0;
    }));
    await Promise.all([
      plot("chart-trend", [{ type: "scatter", mode: "lines+markers", x: labels(trend.series, "period"),
                             y: trend.series.map((p) => Number(p.revenue)), name: "revenue" }]),
      bars("chart-branches", branches.rows, (r) => label(r.branch), true),
      bars("chart-top-products", top.rows, productLabel, true),
      bars("chart-bottom-products", bottom.rows, productLabel, true),
      plot("chart-peak", [{ type: "heatmap", z: grid, x: hours.map((h) => `${h}:00`),
                            y: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], colorscale: "YlOrBr" }]),
      plot("chart-payment", [{ type: "pie", labels: labels(payment.rows, "payment_method"),
                               values: payment.rows.map((r) => Number(r.revenue)) }]),
      plot("chart-customers", [
        { type: "bar", name: "new", x: labels(customers.series, "period"), y: customers.series.map((p) => p.new_customers) },
        { type: "bar", name: "returning", x: labels(customers.series, "period"),
          y: customers.series.map((p) => p.returning_customers) }], { barmode: "stack" }),
    ]);
    missingFiles(coverage);
    status.textContent = `${trend.from} to ${trend.to}`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    status.textContent = `Could not load the reports: ${error.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("filters").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  load();
});
