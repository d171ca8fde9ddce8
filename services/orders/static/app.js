// The staff page's script (/app). Served as a file so the page's CSP needs no 'unsafe-inline'.
"use strict";
const $ = (sel) => document.querySelector(sel);
let products = [], couriers = [];

// Calls go with the session cookie (HttpOnly: this script never sees it) and this page's CSRF token, which the
// API requires of every change a cookie makes. No credential is kept in the page or in browser storage.
const CSRF_TOKEN = document.querySelector('meta[name="csrf-token"]').content;
function say(text) { $("#message").textContent = text || ""; }

async function api(method, path, body, headers) {
  const response = await fetch(path, {
    method, credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRFToken": CSRF_TOKEN, ...(headers || {})},
    body: body === undefined ? undefined : JSON.stringify(body)});
  // Signed out (here, on another page, or the account changed): the server sends the page to sign in again.
  if (response.status === 401) { window.location.reload(); throw new Error("signed out"); }
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) { throw new Error(data && data.error ? data.error.message : ("HTTP " + response.status)); }
  return {data, etag: response.headers.get("ETag")};
}

function option(value, label) { const o = document.createElement("option"); o.value = value; o.textContent = label; return o; }

async function loadLists() {
  products = (await api("GET", "/v1/products?active=true&page_size=200")).data.items;
  couriers = (await api("GET", "/v1/couriers?active=true&page_size=200")).data.items;
  document.querySelectorAll(".product-select").forEach((select) => {
    const keep = select.id === "filter-product" ? [option("", "any")] : [];
    select.replaceChildren(...keep, ...products.map((p) =>
      option(p.id, [p.size, p.name, p.flavour].filter(Boolean).join(" ") + " – " + p.price)));
  });
  document.querySelectorAll(".courier-select").forEach((select) => {
    const first = select.id === "order-courier" ? option("", "(later)") : option("", "any");
    select.replaceChildren(first, ...couriers.map((c) => option(c.id, c.name + " (" + c.branch + ")")));
  });
}

$("#add-item").addEventListener("click", () => {
  const line = document.querySelector(".item-line").cloneNode(true);
  line.querySelectorAll("[id]").forEach((el) => el.removeAttribute("id"));
  line.querySelector(".item-quantity").value = "1";
  $("#order-items").appendChild(line);
});

$("#order-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const items = [...document.querySelectorAll(".item-line")].map((line) => ({
    product_id: Number(line.querySelector(".item-product").value),
    quantity: Number(line.querySelector(".item-quantity").value)}));
  const courier = $("#order-courier").value;
  try {
    const {data} = await api("POST", "/v1/orders", {
      branch: $("#order-branch").value, customer_name: $("#order-name").value,
      customer_address: $("#order-address").value, customer_phone: $("#order-phone").value,
      payment_method: $("#order-payment").value, courier_id: courier ? Number(courier) : null, items},
      {"Idempotency-Key": crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()});
    say("");
    $("#order-name").value = $("#order-address").value = $("#order-phone").value = "";
    $("#orders-count").textContent = "Order " + data.id + " taken: " + data.total;
    await search();
  } catch (e) { say(e.message); }
});

$("#filter-form").addEventListener("submit", (event) => { event.preventDefault(); search().catch((e) => say(e.message)); });

async function search() {
  const params = new URLSearchParams({page_size: "100"});
  const add = (name, value) => { if (value) { params.set(name, value); } };
  add("id", $("#filter-id").value); add("status", $("#filter-status").value);
  add("courier_id", $("#filter-courier").value); add("product_id", $("#filter-product").value);
  add("branch", $("#filter-branch").value); add("customer_phone", $("#filter-phone").value);
  if ($("#filter-from").value) { params.set("created_from", $("#filter-from").value + "T00:00:00"); }
  if ($("#filter-to").value) { params.set("created_to", $("#filter-to").value + "T23:59:59"); }
  const {data} = await api("GET", "/v1/orders?" + params);
  $("#orders-count").textContent = data.total + " order(s)";
  $("#orders-table tbody").replaceChildren(...data.items.map(row));
}

function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

function row(order) {
  const tr = document.createElement("tr");
  tr.dataset.orderId = order.id;
  tr.append(cell(order.id), cell(order.branch), cell(order.customer_name ?? "(erased)"),
    cell(order.items.map((i) => i.quantity + "× " + [i.size, i.name, i.flavour].filter(Boolean).join(" ")).join(", ")),
    cell(order.total));
  const courier = cell(order.courier_name || "—"); courier.className = "courier"; tr.append(courier);
  const status = cell(order.status); status.className = "status"; tr.append(status);
  const actions = document.createElement("td");
  if (order.status === "preparing") {
    const select = document.createElement("select");
    select.className = "assign-courier";
    select.append(option("", "courier…"), ...couriers.filter((c) => c.branch === order.branch).map((c) => option(c.id, c.name)));
    select.addEventListener("change", () => select.value && change(order.id, "PATCH", "", {courier_id: Number(select.value)}));
    actions.append(select);
  }
  if (order.status === "preparing" && order.customer_details_erased_at) {
    // Erased after the retention period: it goes out for delivery only once all three are back.
    actions.append(reenterForm(order.id));
  }
  for (const next of order.allowed_next) {
    const button = document.createElement("button");
    button.type = "button"; button.textContent = next.replaceAll("_", " ");
    button.dataset.action = next;
    button.addEventListener("click", () => change(order.id, "POST", "/status", {status: next}));
    actions.append(button);
  }
  tr.append(actions);
  return tr;
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
  submit.type = "submit"; submit.textContent = "enter customer details";
  form.append(submit);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = new FormData(form);
    change(id, "PATCH", "", Object.fromEntries(fields.map(([name]) => [name, values.get(name)])));
  });
  return form;
}

async function change(id, method, suffix, body) {
  try {
    const {etag} = await api("GET", "/v1/orders/" + id);
    await api(method, "/v1/orders/" + id + suffix, body, {"If-Match": etag});
    say(""); await search();
  } catch (e) { say(e.message); }
}

loadLists().then(search).catch((e) => say(e.message));
