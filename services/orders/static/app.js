// The staff page's script (/app). Served as a file so the page's CSP needs no 'unsafe-inline'.
// Everything a person reads here is in the shop's words: statuses by name ("Out for delivery"), money in
// pounds, errors saying what to do, never an API field path or an HTTP verb.
"use strict";
const $ = (sel) => document.querySelector(sel);
const ROLE = document.body.dataset.role;
const IS_ADMIN = ROLE === "admin";
let products = [], couriers = [];

// Calls go with the session cookie (HttpOnly: this script never sees it) and this page's CSRF token, which the
// API requires of every change a cookie makes. No credential is kept in the page or in browser storage.
const CSRF_TOKEN = document.querySelector('meta[name="csrf-token"]').content;

const STATUS_NAMES = {preparing: "Preparing", out_for_delivery: "Out for delivery", delivered: "Delivered",
  cancelled: "Cancelled", refunded: "Refunded"};
const ACTION_NAMES = {out_for_delivery: "Send out for delivery", delivered: "Mark delivered",
  cancelled: "Cancel order", refunded: "Refund"};
const FIELD_NAMES = {branch: "Branch", customer_name: "Customer", customer_address: "Address",
  customer_phone: "Phone", payment_method: "Payment", courier_id: "Courier", items: "Items", product_id: "product",
  quantity: "quantity", name: "Name", size: "Size", flavour: "Flavour", price: "Price", phone: "Phone",
  reason: "Reason", status: "Status"};
// Messages of the API's validation, in the page's words.
const PHRASES = [
  [/^Missing data for required field\.$|^Field may not be null\.$/, "is needed"],
  [/^Not a valid (integer|number)\.$/, "must be a number"],
  [/^Not a valid decimal\.$|^Not a valid number\.$/, "must be an amount like 2.45"],
  [/^Must be greater than or equal to (\d+) and less than or equal to (\d+)\.$/, "must be from $1 to $2"],
  [/^unknown branch.*/, "there is no branch of that name (check the spelling)"],
];
// Errors the API names by code, said as what to do next.
const CODE_MESSAGES = {
  courier_required: "Choose a courier for this order first (the list in its row), then send it out.",
  precondition_failed: "Someone else changed this order a moment ago. The list now shows it as it is: try again.",
  illegal_transition: "This order cannot move that way any more (someone else may have changed it). The list is up to date now.",
  customer_details_erased: "This order's customer details were erased after a long time without a change: " +
    "enter the name, address and phone again in its row, or cancel it.",
  not_editable: "This order can no longer be changed.",
  duplicate: "That product (the same name, size and flavour) exists already.",
  too_many_requests: "Too many attempts: wait a moment and try again.",
  database_unavailable: "The orders service cannot reach its database right now. Try again in a minute.",
};

class PageError extends Error {}

function say(text) { $("#message").textContent = text || ""; if (text) { $("#notice").textContent = ""; } }
function tell(text) { $("#notice").textContent = text || ""; if (text) { $("#message").textContent = ""; } }

function phrase(message) {
  for (const [pattern, words] of PHRASES) { if (pattern.test(message)) { return message.replace(pattern, words); } }
  return message;
}

// {"json": {"items": {"0": {"product_id": ["..."]}}}} -> ["Item 1, product: is needed"]
function fieldMessages(details, path) {
  if (Array.isArray(details)) {
    return details.filter((m) => typeof m === "string").map((m) => (path.length ? describePath(path) + ": " : "") + phrase(m));
  }
  if (details && typeof details === "object") {
    return Object.entries(details).flatMap(([key, value]) => fieldMessages(value, [...path, key]));
  }
  return [];
}

function describePath(path) {
  const parts = [];
  for (const key of path) {
    if (["json", "query", "form", "_schema"].includes(key)) { continue; }
    if (/^\d+$/.test(key)) {
      if (parts[parts.length - 1] === "Items") { parts[parts.length - 1] = "Item " + (Number(key) + 1); }
      continue;
    }
    parts.push(FIELD_NAMES[key] || key.replaceAll("_", " "));
  }
  return parts.join(", ");
}

function errorText(status, error) {
  if (status === 503) { return CODE_MESSAGES.database_unavailable; }
  if (error && CODE_MESSAGES[error.code]) { return CODE_MESSAGES[error.code]; }
  if (error && error.code === "validation_error" && error.details) {
    const messages = fieldMessages(error.details, []);
    if (messages.length) { return messages.join("; "); }
  }
  if (error && error.message) { return phrase(error.message); }
  return "Something went wrong (" + status + "). Try again; if it keeps happening, tell an admin.";
}

async function api(method, path, body, headers) {
  let response;
  try {
    response = await fetch(path, {
      method, credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": CSRF_TOKEN, ...(headers || {})},
      body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (e) {
    throw new PageError("The orders service does not answer. Check the connection and try again.");
  }
  // Signed out (here, on another page, or the account changed): the server sends the page to sign in again.
  if (response.status === 401) { window.location.reload(); throw new PageError("Signed out."); }
  let data = null;
  if (response.status !== 204) { try { data = await response.json(); } catch (e) { data = null; } }
  if (!response.ok) { throw new PageError(errorText(response.status, data && data.error)); }
  return {data, etag: response.headers.get("ETag")};
}

function report(e) { say(e instanceof PageError ? e.message : "Something went wrong on this page: " + e.message); }

// --- money, in pence so sums are exact -----------------------------------------------------------------------
function pence(amount) {
  const [pounds, fraction = ""] = String(amount).split(".");
  return Number(pounds) * 100 + Number((fraction + "00").slice(0, 2));
}
function pounds(totalPence) {
  return "£" + Math.floor(totalPence / 100) + "." + String(totalPence % 100).padStart(2, "0");
}

function option(value, label) { const o = document.createElement("option"); o.value = value; o.textContent = label; return o; }
function productLabel(p) { return [p.size, p.name, p.flavour].filter(Boolean).join(" "); }
function when(iso) {
  return new Date(iso).toLocaleString("en-GB", {day: "numeric", month: "short", hour: "2-digit", minute: "2-digit"});
}

async function loadLists() {
  const all = (await api("GET", "/v1/products?page_size=200")).data.items;
  products = all.filter((p) => p.active);
  const allCouriers = (await api("GET", "/v1/couriers?page_size=200")).data.items;
  couriers = allCouriers.filter((c) => c.active);
  document.querySelectorAll(".product-select").forEach((select) => {
    const before = select.value;
    const first = select.id === "filter-product" ? option("", "any") : option("", "choose a product…");
    select.replaceChildren(first, ...products.map((p) => option(p.id, productLabel(p) + " – " + pounds(pence(p.price)))));
    select.value = before;
  });
  document.querySelectorAll(".courier-select").forEach((select) => {
    const before = select.value;
    const first = select.id === "order-courier" ? option("", "choose later") : option("", "any");
    select.replaceChildren(first, ...couriers.map((c) => option(c.id, c.name + " (" + c.branch + ")")));
    select.value = before;
  });
  const branches = new Set(allCouriers.map((c) => c.branch));
  if (document.body.dataset.branch) { branches.add(document.body.dataset.branch); }
  $("#branch-list").replaceChildren(...[...branches].sort().map((b) => option(b, b)));
  const none = products.length === 0;
  $("#no-products").classList.toggle("hidden", !none);
  $("#order-submit").disabled = none;
  $("#add-item").disabled = none;
  if (IS_ADMIN) { showProducts(all); showCouriers(allCouriers); }
  updateTotal();
}

// --- the new order ---------------------------------------------------------------------------------------
function itemLines() { return [...document.querySelectorAll(".item-line")]; }

function updateTotal() {
  let total = 0;
  for (const line of itemLines()) {
    const product = products.find((p) => String(p.id) === line.querySelector(".item-product").value);
    const quantity = Number(line.querySelector(".item-quantity").value);
    const lineTotal = product && Number.isInteger(quantity) && quantity > 0 ? pence(product.price) * quantity : 0;
    line.querySelector(".line-total").textContent = lineTotal ? pounds(lineTotal) : "";
    total += lineTotal;
  }
  $("#order-total").textContent = pounds(total);
  const single = itemLines().length === 1;
  document.querySelectorAll(".remove-item").forEach((button) => { button.disabled = single; });
}

function resetItems() {
  itemLines().slice(1).forEach((line) => line.remove());
  const first = itemLines()[0];
  first.querySelector(".item-product").value = "";
  first.querySelector(".item-quantity").value = "1";
  updateTotal();
}

$("#order-items").addEventListener("input", updateTotal);
$("#order-items").addEventListener("change", updateTotal);
$("#order-items").addEventListener("click", (event) => {
  const button = event.target.closest(".remove-item");
  if (button && itemLines().length > 1) { button.closest(".item-line").remove(); updateTotal(); }
});

$("#add-item").addEventListener("click", () => {
  const line = itemLines()[0].cloneNode(true);
  line.querySelectorAll("[id]").forEach((el) => el.removeAttribute("id"));
  line.querySelector(".item-product").value = "";
  line.querySelector(".item-quantity").value = "1";
  $("#order-items").appendChild(line);
  updateTotal();
});

// What the page can tell before asking the server, in the words of the form.
function orderProblems() {
  const problems = [];
  const needed = [["#order-branch", "Branch"], ["#order-name", "Customer"], ["#order-address", "Address"],
    ["#order-phone", "Phone"]];
  const missing = needed.filter(([sel]) => !$(sel).value.trim()).map(([, label]) => label);
  if (missing.length) { problems.push("Fill in " + missing.join(", ") + "."); }
  itemLines().forEach((line, index) => {
    if (!line.querySelector(".item-product").value) { problems.push("Item " + (index + 1) + ": choose a product."); }
    const quantity = Number(line.querySelector(".item-quantity").value);
    if (!Number.isInteger(quantity) || quantity < 1 || quantity > 50) {
      problems.push("Item " + (index + 1) + ": the quantity must be from 1 to 50.");
    }
  });
  return problems;
}

$("#order-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const problems = orderProblems();
  if (problems.length) { say(problems.join(" ")); return; }
  const items = itemLines().map((line) => ({
    product_id: Number(line.querySelector(".item-product").value),
    quantity: Number(line.querySelector(".item-quantity").value)}));
  const courier = $("#order-courier").value;
  try {
    const {data} = await api("POST", "/v1/orders", {
      branch: $("#order-branch").value.trim(), customer_name: $("#order-name").value,
      customer_address: $("#order-address").value, customer_phone: $("#order-phone").value,
      payment_method: $("#order-payment").value, courier_id: courier ? Number(courier) : null, items},
      {"Idempotency-Key": crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()});
    $("#order-name").value = $("#order-address").value = $("#order-phone").value = "";
    $("#order-courier").value = "";
    resetItems();
    tell("Order " + data.id + " taken: " + pounds(pence(data.total)) + ".");
    await search();
  } catch (e) { report(e); }
});

// --- finding orders --------------------------------------------------------------------------------------
$("#filter-form").addEventListener("submit", (event) => { event.preventDefault(); search().catch(report); });

async function search() {
  const params = new URLSearchParams({page_size: "100"});
  const add = (name, value) => { if (value) { params.set(name, value); } };
  add("id", $("#filter-id").value); add("status", $("#filter-status").value);
  add("courier_id", $("#filter-courier").value); add("product_id", $("#filter-product").value);
  add("branch", $("#filter-branch").value.trim()); add("customer_phone", $("#filter-phone").value.trim());
  if ($("#filter-from").value) { params.set("created_from", new Date($("#filter-from").value + "T00:00:00").toISOString()); }
  if ($("#filter-to").value) { params.set("created_to", new Date($("#filter-to").value + "T23:59:59").toISOString()); }
  const {data} = await api("GET", "/v1/orders?" + params);
  $("#orders-count").textContent = data.total === 0 ? "No orders found." : data.total === 1 ? "1 order" : data.total + " orders";
  $("#orders-table tbody").replaceChildren(...data.items.map(row));
}

function cell(label, text) {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (text !== undefined) { td.textContent = text; }
  return td;
}

function timeline(order) {
  const list = document.createElement("ol");
  list.className = "timeline";
  for (const change of order.history || []) {
    const li = document.createElement("li");
    const time = document.createElement("time");
    time.dateTime = change.changed_at;
    time.textContent = when(change.changed_at);
    const what = change.from_status ? STATUS_NAMES[change.to_status] || change.to_status : "Taken";
    li.append(time, " " + what + " by " + change.changed_by + (change.reason ? " (" + change.reason + ")" : ""));
    list.append(li);
  }
  return list;
}

function row(order) {
  const tr = document.createElement("tr");
  tr.dataset.orderId = order.id;
  tr.append(cell("Order", "#" + order.id), cell("Branch", order.branch),
    cell("Customer", order.customer_name ?? "(details erased)"),
    cell("Items", order.items.map((i) => i.quantity + " × " + productLabel(i)).join(", ")),
    cell("Total", pounds(pence(order.total))));
  const courier = cell("Courier", order.courier_name || "none yet"); courier.className = "courier"; tr.append(courier);
  const status = cell("Status");
  const name = document.createElement("strong");
  name.className = "status";
  name.textContent = STATUS_NAMES[order.status] || order.status;
  const box = document.createElement("div");
  box.append(name, timeline(order));
  status.append(box);
  tr.append(status);
  const actions = cell("Actions");
  actions.className = "actions";
  if (order.status === "preparing") {
    const select = document.createElement("select");
    select.className = "assign-courier";
    select.setAttribute("aria-label", "courier for order " + order.id);
    const mine = couriers.filter((c) => c.branch === order.branch);
    select.append(option("", order.courier_id ? "change courier…" : "choose courier…"), ...mine.map((c) => option(c.id, c.name)));
    select.addEventListener("change", () => select.value &&
      change(order.id, "PATCH", "", {courier_id: Number(select.value)}, "Courier set for order " + order.id + "."));
    actions.append(select);
  }
  if (order.status === "preparing" && order.customer_details_erased_at) {
    // Erased after the retention period: it goes out for delivery only once all three are back.
    actions.append(reenterForm(order.id));
  }
  for (const next of order.allowed_next) {
    if (next === "refunded" && ROLE === "staff") { continue; }      // managers and admins refund
    const button = document.createElement("button");
    button.type = "button"; button.textContent = ACTION_NAMES[next] || STATUS_NAMES[next] || next;
    button.dataset.action = next;
    button.addEventListener("click", () => move(order, next));
    actions.append(button);
  }
  tr.append(actions);
  return tr;
}

function move(order, next) {
  if (next === "out_for_delivery" && !order.courier_id) {
    say("Choose a courier for order " + order.id + " first (the list in its row), then send it out.");
    return;
  }
  const body = {status: next};
  if (next === "refunded") {
    const reason = window.prompt("Why is order " + order.id + " refunded?");
    if (!reason || !reason.trim()) { say("A refund needs a reason."); return; }
    body.reason = reason.trim();
  }
  if (next === "cancelled" && !window.confirm("Cancel order " + order.id + "?")) { return; }
  change(order.id, "POST", "/status", body, "Order " + order.id + ": " + STATUS_NAMES[next] + ".");
}

function reenterForm(id) {
  const form = document.createElement("form");
  form.className = "reenter-details";
  const fields = [["customer_name", "name"], ["customer_address", "address"], ["customer_phone", "phone"]];
  for (const [name, label] of fields) {
    const input = document.createElement("input");
    input.name = name; input.placeholder = label; input.required = true; input.setAttribute("aria-label", "customer " + label);
    form.append(input);
  }
  const submit = document.createElement("button");
  submit.type = "submit"; submit.textContent = "Enter customer details";
  form.append(submit);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = new FormData(form);
    change(id, "PATCH", "", Object.fromEntries(fields.map(([name]) => [name, values.get(name)])),
      "Customer details of order " + id + " entered.");
  });
  return form;
}

async function change(id, method, suffix, body, done) {
  try {
    const {etag} = await api("GET", "/v1/orders/" + id);
    await api(method, "/v1/orders/" + id + suffix, body, {"If-Match": etag});
    tell(done);
  } catch (e) { report(e); }
  await search().catch(report);
}

// --- products and couriers (admins) ----------------------------------------------------------------------
// One row of the products or couriers table: its cells, and the button that stops or resumes the item.
function catalogueRow(path, item, cells, words) {
  const tr = document.createElement("tr");
  tr.append(...cells.map(([label, value]) => cell(label, value)));
  const actions = cell("Actions");
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = item.active ? words.stop : words.resume;
  button.addEventListener("click", () => catalogue(item.active ? "POST" : "PATCH",
    path + item.id + (item.active ? "/deactivate" : ""), item.active ? undefined : {active: true},
    item.active ? words.stopped : words.resumed));
  actions.append(button);
  tr.append(actions);
  return tr;
}

function showProducts(all) {
  $("#products-table tbody").replaceChildren(...all.map((p) => catalogueRow("/v1/products/", p,
    [["Product", productLabel(p)], ["Price", pounds(pence(p.price))], ["On sale", p.active ? "yes" : "no"]],
    {stop: "Stop selling", resume: "Sell again", stopped: productLabel(p) + " is no longer sold.",
      resumed: productLabel(p) + " is on sale again."})));
}

function showCouriers(all) {
  $("#couriers-table tbody").replaceChildren(...all.map((c) => catalogueRow("/v1/couriers/", c,
    [["Courier", c.name], ["Phone", c.phone], ["Branch", c.branch], ["Working", c.active ? "yes" : "no"]],
    {stop: "No longer delivers", resume: "Delivers again", stopped: c.name + " no longer delivers.",
      resumed: c.name + " delivers again."})));
}

async function catalogue(method, path, body, done) {
  try { await api(method, path, body); tell(done); await loadLists(); } catch (e) { report(e); }
}

if (IS_ADMIN) {
  $("#product-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#product-name").value.trim(), price = $("#product-price").value.trim().replace(/^£/, "");
    const problems = [];
    if (!name) { problems.push("Give the product a name."); }
    if (!/^\d{1,5}(\.\d{1,2})?$/.test(price)) { problems.push("Give the price in pounds, like 2.45."); }
    if (problems.length) { say(problems.join(" ")); return; }
    const flavour = $("#product-flavour").value.trim();
    const product = {name, price, size: $("#product-size").value || null, flavour: flavour || null};
    try {
      await api("POST", "/v1/products", product);
      $("#product-name").value = $("#product-flavour").value = $("#product-price").value = "";
      $("#product-size").value = "";
      tell(productLabel(product) + " added at " + pounds(pence(price)) + ".");
      await loadLists();
    } catch (e) { report(e); }
  });

  $("#courier-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const courier = {name: $("#courier-name").value.trim(), phone: $("#courier-phone").value.trim(),
      branch: $("#courier-branch").value.trim()};
    const missing = [["name", "Name"], ["phone", "Phone"], ["branch", "Branch"]].filter(([k]) => !courier[k]).map(([, l]) => l);
    if (missing.length) { say("Fill in the courier's " + missing.join(", ") + "."); return; }
    try {
      await api("POST", "/v1/couriers", courier);
      $("#courier-name").value = $("#courier-phone").value = $("#courier-branch").value = "";
      tell(courier.name + " added as a courier for " + courier.branch + ".");
      await loadLists();
    } catch (e) { report(e); }
  });
}

loadLists().then(search).catch(report);
