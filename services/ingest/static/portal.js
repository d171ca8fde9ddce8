// The branch portal (/portal): send files, watch them load, read what happened, see which days are in.
// Every text from the server (file names, reasons, masked rows, branch names) is set as textContent, never as
// HTML; calls carry the session cookie and this page's CSRF token, never a bearer token.
"use strict";

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const isAdmin = document.body.dataset.admin === "true";
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 1000;
  const SENDING_AT_ONCE = 2;
  const REJECTIONS_SHOWN = 200;
  const HISTORY_PAGE = 20;
  const OUTCOME_LABELS = {
    clean: "Loaded", partial: "Partly loaded", all_rejected: "Rejected",
    all_duplicate: "Nothing new", failed: "Not loaded",
  };
  const DAY_GROUPS = [   // missing days first: they are what a manager has to act on
    ["missing", "Missing: no file yet"],
    ["failed", "Failed: the file could not be loaded"],
    ["no_sales", "File in, but no sales loaded for the day"],
    ["pending", "Loading"],
    ["loaded", "In"],
  ];

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  class Refused extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  function errorOf(status, body) {
    if (status === 401) {            // the sign-in ended (signed out elsewhere, deactivated): sign in again
      window.location.reload();
      return new Refused(status, "You are signed out; signing in again.");
    }
    const message = body && body.error && body.error.message;
    return new Refused(status, message || `The server answered ${status}; try again in a moment.`);
  }

  async function getJson(path) {
    let response;
    try {
      response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    } catch (exc) {
      throw new Refused(0, "The platform does not answer; check the connection and try again.");
    }
    let body = null;
    try { body = await response.json(); } catch (exc) { body = null; }
    if (!response.ok) throw errorOf(response.status, body);
    return body;
  }

  function showMessage(text) {
    const message = $("message");
    message.textContent = text;
    message.hidden = !text;
  }

  function when(iso) {
    return new Date(iso).toLocaleString("en-GB", {
      timeZone: "Europe/London", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  function dayName(iso) {
    return new Date(`${iso}T12:00:00Z`).toLocaleDateString("en-GB", {
      timeZone: "UTC", weekday: "short", day: "numeric", month: "short", year: "numeric",
    });
  }

  function plural(count, word) { return `${count} ${word}${count === 1 ? "" : "s"}`; }

  // ---- one file: send (with progress), wait for its load, say what happened -------------------------------
  function fileCard(file) {
    const state = el("span", { className: "file-state", text: "Waiting to send" });
    const bar = el("progress", { max: "100", value: "0", "aria-label": `progress of ${file.name}` });
    const card = el("li", { className: "file", "data-state": "waiting" },
      el("div", { className: "file-head" }, el("span", { className: "file-name", text: file.name }), state),
      bar);
    $("files").prepend(card);
    return { card, state, bar };
  }

  function setState(view, state, text, percent) {
    view.card.dataset.state = state;
    view.state.textContent = text;
    if (percent === null) view.bar.removeAttribute("value");      // indeterminate: loading
    else view.bar.value = percent;
  }

  function send(file, view) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", "/v1/uploads");
      request.setRequestHeader("X-CSRFToken", csrf);
      request.setRequestHeader("Accept", "application/json");
      request.responseType = "json";
      request.upload.onprogress = (event) => {
        if (event.lengthComputable) {
          const percent = Math.round((event.loaded / event.total) * 100);
          setState(view, "sending", `Sending ${percent}%`, percent);
        }
      };
      request.onload = () => {
        if (request.status === 200 || request.status === 202) resolve(request.response);
        else reject(errorOf(request.status, request.response));
      };
      request.onerror = () => reject(new Refused(0, "The file could not be sent: the connection failed."));
      const form = new FormData();
      form.append("file", file, file.name);
      request.send(form);
    });
  }

  async function waitForLoad(upload, view) {
    let current = upload;
    while (current.status === "queued" || current.status === "processing") {
      setState(view, "loading", current.status === "queued" ? "Waiting to be loaded" : "Loading", null);
      await new Promise((done) => setTimeout(done, POLL_MS));
      current = await getJson(`/v1/uploads/${current.id}`);
    }
    return current;
  }

  function countsList(upload) {
    const item = (label, value, name) => el("div", { className: `count count-${name}` },
      el("dt", { text: label }), el("dd", { text: String(value) }));
    return el("dl", { className: "counts" },
      item("Loaded", upload.rows_loaded, "loaded"),
      item("Already had", upload.rows_duplicate, "duplicate"),
      item("Rejected", upload.rows_rejected, "rejected"));
  }

  async function rejectionsTable(upload) {
    const page = await getJson(`/v1/uploads/${upload.id}/rejections?page_size=${REJECTIONS_SHOWN}`);
    const body = el("tbody");
    for (const rejection of page.items) {
      body.append(el("tr", {},
        el("td", { className: "line", text: String(rejection.line_no) }),
        el("td", { className: "reason", text: rejection.reason }),
        el("td", { className: "row" }, el("code", { text: rejection.row }))));
    }
    const shown = page.items.length < page.total
      ? `Rejected rows (the first ${page.items.length} of ${page.total})` : "Rejected rows";
    return el("div", { className: "table-wrap" }, el("table", { className: "rejections" },
      el("caption", { text: shown }),
      el("thead", {}, el("tr", {}, el("th", { text: "Line" }), el("th", { text: "Why" }),
        el("th", { text: "The row (names and card numbers hidden)" }))),
      body));
  }

  async function describe(upload, container) {
    container.dataset.outcome = upload.outcome || "";
    container.append(el("p", { className: "summary", text: upload.summary }));
    if (upload.status === "failed") return;
    container.append(countsList(upload));
    if (upload.rows_rejected > 0) {
      try {
        container.append(await rejectionsTable(upload));
      } catch (exc) {
        container.append(el("p", { className: "error", text: exc.message }));
      }
    }
  }

  async function sendOne(file) {
    const view = fileCard(file);
    try {
      const sent = await send(file, view);
      const done = await waitForLoad(sent, view);
      setState(view, done.outcome || done.status, OUTCOME_LABELS[done.outcome] || done.status, 100);
      await describe(done, view.card);
    } catch (exc) {
      setState(view, "refused", "Not sent", 0);
      view.card.append(el("p", { className: "error summary", text: exc.message }));
    }
  }

  async function sendAll(files) {
    const queue = Array.from(files);
    const workers = Array.from({ length: Math.min(SENDING_AT_ONCE, queue.length) }, async () => {
      while (queue.length) await sendOne(queue.shift());
    });
    await Promise.all(workers);
    await Promise.all([loadCoverage(), loadHistory(1)]);
  }

  // ---- which days are in -----------------------------------------------------------------------------
  function isoDay(date) { return date.toISOString().slice(0, 10); }

  async function loadCoverage() {
    const query = new URLSearchParams({ from: $("coverage-from").value, to: $("coverage-to").value });
    if (isAdmin && $("coverage-branch").value.trim()) query.set("branch", $("coverage-branch").value.trim());
    const target = $("coverage-branches");
    try {
      const grid = await getJson(`/v1/coverage?${query}`);
      target.replaceChildren(...grid.branches.map((branch) => branchDays(grid.days, branch)));
      if (!grid.branches.length) target.append(el("p", { text: "No registered branch." }));
    } catch (exc) {
      target.replaceChildren(el("p", { className: "error", text: exc.message }));
    }
  }

  function branchDays(days, branch) {
    const groups = new Map(DAY_GROUPS.map(([status]) => [status, []]));
    days.forEach((day, n) => groups.get(branch.status[n]).push([day, branch.transactions[n]]));
    const inCount = groups.get("loaded").length;
    const box = el("div", { className: "branch-days" },
      el("h3", { text: branch.branch }),
      el("p", { className: "days-summary",
        text: `${inCount} of ${plural(days.length, "day")} in; ${plural(days.length - inCount, "day")} not.` }));
    for (const [status, title] of DAY_GROUPS) {
      const found = groups.get(status);
      if (!found.length) continue;
      const list = el("ul", { className: "days" });
      for (const [day, sales] of found) {
        list.append(el("li", { className: `day day-${status}`, title: day,
          text: status === "loaded" ? `${dayName(day)} · ${plural(sales, "sale")}` : dayName(day) }));
      }
      box.append(el("section", { className: `day-group group-${status}` },
        el("h4", { text: `${title} (${found.length})` }), list));
    }
    return box;
  }

  // ---- the files sent before -----------------------------------------------------------------------------
  let historyPage = 1;

  async function loadHistory(page) {
    const body = $("history-table").tBodies[0];
    try {
      const answer = await getJson(`/v1/uploads?page=${page}&page_size=${HISTORY_PAGE}`);
      if (page === 1) body.replaceChildren();
      historyPage = page;
      for (const upload of answer.items) body.append(...historyRows(upload));
      $("history-count").textContent = answer.total ? `${plural(answer.total, "file")} sent.` : "No file sent yet.";
      $("history-more").hidden = page * HISTORY_PAGE >= answer.total;
    } catch (exc) {
      $("history-count").textContent = exc.message;
    }
  }

  function historyRows(upload) {
    const details = el("tr", { className: "details", hidden: "" }, el("td", { colspan: "5" }));
    const button = upload.rows_rejected > 0
      ? el("button", { type: "button", className: "show-rejections", text: "Show rejected rows" }) : null;
    if (button) {
      button.addEventListener("click", async () => {
        if (!details.hidden) { details.hidden = true; button.textContent = "Show rejected rows"; return; }
        const cell = details.cells[0];
        cell.replaceChildren();
        details.hidden = false;
        button.textContent = "Hide rejected rows";
        try { cell.append(await rejectionsTable(upload)); } catch (exc) {
          cell.append(el("p", { className: "error", text: exc.message }));
        }
      });
    }
    const row = el("tr", { "data-outcome": upload.outcome || upload.status },
      el("td", { "data-label": "Sent", text: when(upload.created_at) }),
      el("td", { "data-label": "File", className: "file-name", text: upload.filename }),
      el("td", { "data-label": "Branch", text: upload.branch || (upload.file_branches || []).join(", ") || "-" }),
      el("td", { "data-label": "What happened", text: upload.summary }),
      el("td", {}, button));
    return [row, details];
  }

  // ---- start ------------------------------------------------------------------------------------------
  function start() {
    const yesterday = new Date(Date.now() - 86400000);
    $("coverage-to").value = isoDay(yesterday);
    $("coverage-from").value = isoDay(new Date(yesterday.getTime() - 27 * 86400000));
    $("coverage-form").addEventListener("submit", (event) => { event.preventDefault(); loadCoverage(); });
    $("history-more").addEventListener("click", () => loadHistory(historyPage + 1));
    $("file-input").addEventListener("change", (event) => {
      const files = Array.from(event.target.files);
      event.target.value = "";
      if (files.length) sendAll(files);
    });
    const drop = $("drop");
    for (const name of ["dragenter", "dragover"]) {
      drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
    }
    for (const name of ["dragleave", "drop"]) {
      drop.addEventListener(name, () => drop.classList.remove("over"));
    }
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) sendAll(event.dataTransfer.files);
    });
    // A file dropped beside the zone would make the browser open it and leave the page.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
    Promise.all([loadCoverage(), loadHistory(1)]).then(() => { document.body.dataset.loaded = "true"; },
      (exc) => showMessage(exc.message));
  }

  start();
})();
