// The page: pick the three backup files, type or load a quorum of share sheets, open, search,
// reveal, copy (auto-clear), export; every reveal, copy and export goes into the receipt.
// Item data is only ever set with textContent: a hostile backup cannot inject markup.
import { openBackup, parseShare, sheetWords, unknownWords, OpenerError } from "./core.js";
import { toCsv, toJson, toKdbx } from "./export.js";
import { Receipt } from "./receipt.js";

const $ = (sel) => document.querySelector(sel);
const MAX_ROWS = 200;
const CLIPBOARD_CLEAR_MS = 30_000;
const state = { backup: null, signature: null, manifest: null, name: null, session: null, index: null, receipt: null, receiptSaved: true, current: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function setError(message) {
  $("#error").textContent = message || "";
  $("#error").hidden = !message;
}

// ---- backup files ----

async function takeFiles(files) {
  for (const file of files) {
    if (file.name.endsWith(".sig")) state.signature = await file.text();
    else if (file.name.endsWith(".manifest.json")) state.manifest = await file.text();
    else if (file.name.endsWith(".txt")) addShare(await file.text(), file.name);
    else {
      state.backup = new Uint8Array(await file.arrayBuffer());
      state.name = file.name;
    }
  }
  const list = $("#files-status");
  list.textContent = "";
  list.append(
    el("li", {}, state.backup ? `backup: ${state.name} (${state.backup.length.toLocaleString("en")} bytes)` : "backup (.age): missing"),
    el("li", {}, state.signature ? "signature (.age.sig): loaded" : "signature (.age.sig): missing"),
    el("li", {}, state.manifest ? "manifest (.age.manifest.json): loaded" : "manifest (.age.manifest.json): missing"),
  );
}

// ---- shares ----

function shareStatus(box) {
  const area = box.querySelector("textarea");
  const status = box.querySelector(".share-status");
  const words = box.querySelector(".share-words");
  const value = area.value;
  words.textContent = "";
  status.className = "share-status";
  if (!value.trim()) {
    status.textContent = "";
    return;
  }
  const bad = new Set(unknownWords(value));
  let message = null;
  let share = null;
  try {
    share = parseShare(value, box.dataset.name);
  } catch (exc) {
    message = exc.message;
    if (exc.position) bad.add(exc.position); // a checksum failure pinned to one word
  }
  sheetWords(value).words.forEach((w, i) => {
    words.append(el("span", { class: bad.has(i + 1) ? "word bad" : "word", title: `word ${i + 1}` }, `${i + 1}. ${w}`), " ");
  });
  if (share) {
    status.textContent = `ok: share #${share.index + 1} of set ${share.identifier}, ${share.threshold} needed`;
    status.classList.add("ok");
  } else {
    status.textContent = message;
    status.classList.add("bad");
  }
}

let shareCount = 0;
function addShare(text = "", name = null) {
  const empty = [...document.querySelectorAll(".share textarea")].find((a) => !a.value.trim());
  if (empty && text) {
    empty.value = text;
    empty.closest(".share").dataset.name = name || empty.closest(".share").dataset.name;
    shareStatus(empty.closest(".share"));
    return;
  }
  shareCount += 1;
  const box = el("div", { class: "share", "data-name": name || `share ${shareCount}` });
  const area = el("textarea", { rows: "4", spellcheck: "false", autocomplete: "off", placeholder: "Type or paste the 20 or 33 share words, or load the sheet file" });
  area.value = text;
  area.addEventListener("input", () => shareStatus(box));
  box.append(el("label", {}, `Share ${shareCount}`), area, el("div", { class: "share-words" }), el("div", { class: "share-status", role: "status" }));
  $("#shares").append(box);
  shareStatus(box);
}

function shareTexts() {
  return [...document.querySelectorAll(".share")]
    .filter((b) => b.querySelector("textarea").value.trim())
    .map((b) => ({ text: b.querySelector("textarea").value, name: b.dataset.name }));
}

// ---- open ----

async function open() {
  setError("");
  $("#open").disabled = true;
  $("#progress").textContent = "Opening...";
  try {
    if (!state.backup) throw new OpenerError("input", "choose the backup file (.age) first");
    const signer = $("#signer").value.trim();
    const session = await openBackup({
      backup: state.backup,
      signature: state.signature,
      manifest: state.manifest,
      shares: shareTexts(),
      passphrase: $("#passphrase").value,
      signers: signer ? [signer] : [],
      unverified: $("#unverified").checked,
      name: state.name,
    });
    $("#passphrase").value = "";
    session.name = state.name;
    showVault(session);
  } catch (exc) {
    setError(exc.message || String(exc));
  } finally {
    $("#open").disabled = false;
    $("#progress").textContent = "";
  }
}

function showVault(session) {
  state.session = session;
  state.receipt = new Receipt(session, { openerVersion: window.sealboxOpener.version, machine: machineText() });
  const items = session.document.items;
  const lower = (v) => (v == null ? "" : String(v).toLowerCase());
  state.index = {
    all: items.map((i) => [i.name, i.host, i.url, i.username, ...(i.tags || [])].map(lower).join("\u0000")),
    name: items.map((i) => lower(i.name)),
    host: items.map((i) => lower(i.host)),
    url: items.map((i) => lower(i.url)),
    username: items.map((i) => lower(i.username)),
    tag: items.map((i) => (i.tags || []).map(lower).join("\u0000")),
  };
  const doc = session.document;
  $("#summary").textContent =
    `${state.name}: appliance ${doc.appliance}, created ${doc.created}, ${items.length} items, key ${session.keyId}, ` +
    (session.pinned ? `signed by ${session.signer}` : "UNVERIFIED");
  $("#summary").className = session.pinned ? "verified" : "unverified";
  const warnings = $("#warnings");
  warnings.textContent = "";
  for (const w of session.warnings) warnings.append(el("li", {}, w));
  $("#unlock").hidden = true;
  $("#vault").hidden = false;
  search();
  $("#search").focus();
}

/** Indexes of the items matching the search box (case-insensitive substring, as `search`). */
export function matches(term, field) {
  const needle = term.toLowerCase();
  const hay = state.index[field] || state.index.all;
  const out = [];
  for (let i = 0; i < hay.length; i++) if (hay[i].includes(needle)) out.push(i);
  return out;
}

function search() {
  const started = performance.now();
  const found = matches($("#search").value, $("#field").value);
  const items = state.session.document.items;
  const body = $("#results tbody");
  const rows = found.slice(0, MAX_ROWS).map((n) => {
    const item = items[n];
    return el("tr", { "data-id": item.id, tabindex: "0", onclick: () => showItem(n), onkeydown: (e) => e.key === "Enter" && showItem(n) },
      el("td", {}, item.id), el("td", {}, item.type ?? ""), el("td", {}, item.name ?? ""),
      el("td", {}, item.host || item.url || ""), el("td", {}, item.username || ""), el("td", {}, `v${(item.history || []).length + 1}`));
  });
  body.replaceChildren(...rows);
  const shown = found.length > MAX_ROWS ? ` (first ${MAX_ROWS} shown: refine the search)` : "";
  $("#count").textContent = `${found.length} match(es)${shown}`;
  $("#count").dataset.ms = String(Math.round(performance.now() - started));
}

// ---- one item ----

function record(action, items, format) {
  state.receipt.record(action, items, format);
  state.receiptSaved = false;
  const revealed = new Set(state.receipt.body.events.flatMap((e) => e.items.map((i) => i.id)));
  $("#receipt-banner").hidden = false;
  $("#receipt-count").textContent = `${revealed.size} item(s) revealed or exported: every one must be rotated. Download the receipt and import it on the appliance (sealbox breakglass receipt import FILE).`;
}

function secretRow(item, label, value) {
  const shown = el("code", { class: "secret masked" }, "••••••••");
  const reveal = el("button", { class: "reveal", type: "button" }, "Reveal");
  const copy = el("button", { class: "copy", type: "button" }, "Copy");
  reveal.addEventListener("click", () => {
    if (shown.classList.contains("masked")) {
      shown.textContent = value;
      shown.classList.remove("masked");
      reveal.textContent = "Hide";
      record("reveal", [item]);
    } else {
      shown.textContent = "••••••••";
      shown.classList.add("masked");
      reveal.textContent = "Reveal";
    }
  });
  copy.addEventListener("click", () => copySecret(item, value));
  return el("tr", { "data-secret": label }, el("th", {}, label), el("td", {}, shown, " ", reveal, " ", copy));
}

let clearTimer = null;
async function copySecret(item, value) {
  try {
    await navigator.clipboard.writeText(value);
  } catch {
    setError("the browser refused the clipboard: reveal the value and copy it by hand");
    return;
  }
  record("copy", [item]);
  $("#clipboard").textContent = `copied: the clipboard is cleared in ${CLIPBOARD_CLEAR_MS / 1000} s`;
  clearTimeout(clearTimer);
  clearTimer = setTimeout(async () => {
    try {
      await navigator.clipboard.writeText("");
      $("#clipboard").textContent = "clipboard cleared";
    } catch {
      $("#clipboard").textContent = "could not clear the clipboard (the page lost focus): clear it by hand";
    }
  }, CLIPBOARD_CLEAR_MS);
}

function showItem(n) {
  const item = state.session.document.items[n];
  state.current = item;
  const rows = [];
  for (const key of ["id", "type", "name", "host", "url", "username", "notes", "updated", "source"]) {
    if (item[key]) rows.push(el("tr", {}, el("th", {}, key), el("td", {}, String(item[key]))));
  }
  if (item.tags && item.tags.length) rows.push(el("tr", {}, el("th", {}, "tags"), el("td", {}, item.tags.join(", "))));
  for (const [k, v] of Object.entries(item.fields || {})) rows.push(el("tr", {}, el("th", {}, k), el("td", {}, String(v))));
  for (const [k, v] of Object.entries(item.secret || {})) rows.push(secretRow(item, k, String(v)));
  for (const version of item.history || []) {
    for (const [k, v] of Object.entries(version.secret || {})) rows.push(secretRow(item, `${k} (set ${version.time})`, String(v)));
  }
  $("#detail tbody").replaceChildren(...rows);
  $("#detail").hidden = false;
}

// ---- exports and the receipt ----

function download(bytes, name, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function exportAs(format) {
  setError("");
  const doc = state.session.document;
  const stem = (state.name || "secrets").replace(/\.age$/, "");
  try {
    if (format === "kdbx") {
      const password = $("#kdbx-password").value;
      if (!password) throw new OpenerError("input", "a KDBX export needs a password");
      if (password !== $("#kdbx-confirm").value) throw new OpenerError("input", "the two KDBX passwords differ");
      $("#progress-export").textContent = "Writing the KDBX file...";
      download(new Uint8Array(await toKdbx(doc, password)), `${stem}.kdbx`, "application/octet-stream");
      $("#kdbx-password").value = $("#kdbx-confirm").value = "";
    } else if (format === "csv") {
      download(toCsv(doc), `${stem}.csv`, "text/csv");
    } else {
      download(toJson(doc), `${stem}.json`, "application/json");
    }
    record("export", doc.items, format);
  } catch (exc) {
    setError(exc.message || String(exc));
  } finally {
    $("#progress-export").textContent = "";
  }
}

function machineText() {
  const named = $("#machine").value.trim();
  return (named ? named + "; " : "") + navigator.userAgent;
}

function downloadReceipt() {
  state.receipt.setMachine(machineText());
  download(JSON.stringify(state.receipt, null, 2) + "\n", state.receipt.fileName(), "application/json");
  state.receiptSaved = true;
}

export function currentReceipt() {
  return state.receipt && !state.receipt.empty ? JSON.parse(JSON.stringify(state.receipt)) : null;
}

export function start() {
  addShare();
  addShare();
  $("#files").addEventListener("change", (e) => takeFiles(e.target.files));
  $("#share-files").addEventListener("change", (e) => takeFiles(e.target.files));
  $("#add-share").addEventListener("click", () => addShare());
  $("#open").addEventListener("click", open);
  $("#search").addEventListener("input", search);
  $("#field").addEventListener("change", search);
  $("#export-json").addEventListener("click", () => exportAs("json"));
  $("#export-csv").addEventListener("click", () => exportAs("csv"));
  $("#export-kdbx").addEventListener("click", () => exportAs("kdbx"));
  $("#receipt-download").addEventListener("click", downloadReceipt);
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    takeFiles(e.dataTransfer.files);
  });
  window.addEventListener("beforeunload", (e) => {
    if (!state.receiptSaved) {
      e.preventDefault();
      e.returnValue = "";
    }
  });
  takeFiles([]);
}
