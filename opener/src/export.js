// Exports of an opened document: JSON, CSV (the Python opener's columns) and KeePass KDBX 4
// (kdbxweb, with Argon2id from @noble/hashes as its KDF).
import * as kdbxweb from "kdbxweb";
import { argon2idAsync, argon2dAsync } from "@noble/hashes/argon2.js";

export const CSV_COLUMNS = ["id", "type", "name", "host", "url", "username", "password", "other_secrets", "tags", "notes", "updated", "source", "versions"];

/** The field a password manager shows as "password", and the rest (export._primary). */
export function primary(secret) {
  const keys = Object.keys(secret || {});
  if (!keys.length) return ["", {}];
  const key = keys.includes("password") ? "password" : keys[0];
  const others = {};
  for (const k of keys) if (k !== key) others[k] = secret[k];
  return [secret[key], others];
}

export function toJson(doc) {
  return JSON.stringify({ appliance: doc.appliance, created: doc.created, items: doc.items }) + "\n";
}

function csvCell(value) {
  const s = value == null ? "" : String(value);
  return /[",\r\n]/.test(s) ? '"' + s.replaceAll('"', '""') + '"' : s;
}

/** The same CSV as `breakglass open ... export --format csv` (Python's csv module, \r\n rows). */
export function toCsv(doc) {
  const rows = [CSV_COLUMNS];
  for (const item of doc.items) {
    const [password, others] = primary(item.secret || {});
    rows.push([
      item.id, item.type, item.name, item.host || "", item.url || "", item.username || "", password,
      Object.keys(others).length ? JSON.stringify(others) : "", (item.tags || []).join(","),
      item.notes || "", item.updated || "", item.source || "", (item.history || []).length + 1,
    ]);
  }
  return rows.map((r) => r.map(csvCell).join(",") + "\r\n").join("");
}

kdbxweb.CryptoEngine.setArgon2Impl(async (password, salt, memory, iterations, length, parallelism, type, version) => {
  const fn = type === kdbxweb.CryptoEngine.Argon2TypeArgon2id ? argon2idAsync : argon2dAsync;
  const out = await fn(new Uint8Array(password), new Uint8Array(salt), { t: iterations, m: memory, p: parallelism, dkLen: length, version });
  return out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength);
});

// Argon2id, 32 MiB, 2 passes: KeePassXC's defaults are stronger, but this runs in plain JS.
export const KDBX_MEMORY = 32 << 20;
export const KDBX_ITERATIONS = 2;

/** A KDBX 4 file (ArrayBuffer) under `password`: one group per item type, history as KeePass history. */
export async function toKdbx(doc, password) {
  if (!password) throw new Error("a KDBX export needs a password");
  const creds = new kdbxweb.Credentials(kdbxweb.ProtectedValue.fromString(password));
  const db = kdbxweb.Kdbx.create(creds, `sealbox ${doc.appliance}`);
  db.setKdf(kdbxweb.Consts.KdfId.Argon2id);
  db.header.kdfParameters.set("M", kdbxweb.VarDictionary.ValueType.UInt64, kdbxweb.Int64.from(KDBX_MEMORY));
  db.header.kdfParameters.set("I", kdbxweb.VarDictionary.ValueType.UInt64, kdbxweb.Int64.from(KDBX_ITERATIONS));
  const groups = new Map();
  const protectedValue = (s) => kdbxweb.ProtectedValue.fromString(String(s ?? ""));
  for (const item of doc.items) {
    const kind = String(item.type || "other");
    if (!groups.has(kind)) groups.set(kind, db.createGroup(db.getDefaultGroup(), kind));
    const entry = db.createEntry(groups.get(kind));
    const [password, others] = primary(item.secret || {});
    entry.fields.set("Title", String(item.name || item.id));
    entry.fields.set("UserName", item.username || "");
    entry.fields.set("URL", item.url || "");
    entry.fields.set("Notes", item.notes || "");
    entry.tags = [...(item.tags || [])].map(String);
    const history = item.history || [];
    for (const version of history) {
      entry.fields.set("Password", protectedValue(primary(version.secret || {})[0]));
      entry.pushHistory();
    }
    entry.fields.set("Password", protectedValue(password));
    entry.fields.set("sealbox_id", String(item.id));
    entry.fields.set("sealbox_type", kind);
    if (item.host) entry.fields.set("host", String(item.host));
    for (const [k, v] of Object.entries(others)) entry.fields.set(k, protectedValue(v));
    for (const [k, v] of Object.entries(item.fields || {})) entry.fields.set(`field:${k}`, String(v));
  }
  return db.save();
}
