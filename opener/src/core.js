// The opener's core: share sheets -> age identity, SSHSIG and manifest checks against the pinned
// signers, age decryption, the secrets document. It follows the Python opener rule for rule
// (src/sealbox/keymaterial.py, crypto/shares.py, crypto/sshsig.py, crypto/trust.py,
// breakglass/package.py, breakglass/opener.py); the messages are the same where they can be.
// No primitive is implemented here: age is typage (age-encryption), SLIP-39 the slip39 package,
// Ed25519 and hashes @noble, Bech32 @scure/base.
import { Decrypter, identityToRecipient } from "age-encryption";
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { bech32, base64 } from "@scure/base";
import slip39 from "slip39";
import slip39Helper from "slip39/src/slip39_helper.js";

export const MAX_BACKUP = 2 ** 31;
export const MAX_SIGNATURE = 64 << 10;
export const MAX_MANIFEST = 4 << 20;
const NS_FILE = "sealbox-secrets";
const NS_MANIFEST = "sealbox-manifest";
const NS_SIGNER = "sealbox-signer";
const MANIFEST_FORMAT = "sealbox-secrets-manifest";
const MAX_CHAIN = 64;
const utf8 = new TextEncoder();

/** An error that says why the opener refused; `kind` is share, signature, wrong-key, corrupt or input. */
export class OpenerError extends Error {
  constructor(kind, message, extra = {}) {
    super(message);
    this.name = "OpenerError";
    this.kind = kind;
    Object.assign(this, extra);
  }
}

const WORDS = slip39Helper.WORD_LIST;
const WORD_INDEX = new Map(WORDS.map((w, i) => [w, i]));

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function digest(name, data) {
  // WebCrypto is much faster on a large backup; @noble is the same function where it is missing.
  if (globalThis.crypto?.subtle) {
    return new Uint8Array(await globalThis.crypto.subtle.digest(name, data));
  }
  return name === "SHA-512" ? sha512(data) : sha256(data);
}

// ---- share sheets (crypto/shares.py) ----

function lineFields(lines, name) {
  const prefix = name.toLowerCase() + ":";
  return lines
    .filter((l) => l.trim().toLowerCase().startsWith(prefix))
    .map((l) => l.slice(l.indexOf(":") + 1).trim());
}

/** The words of a sheet with their 1-based positions (numbering and commas ignored). */
export function sheetWords(text) {
  const lines = String(text).split(/\r\n|\r|\n/);
  const upper = lines.map((l) => l.trim().toUpperCase());
  const begin = upper.indexOf("BEGIN SHARE");
  const end = upper.indexOf("END SHARE");
  const body = begin >= 0 && end >= 0 ? lines.slice(begin + 1, end) : lines;
  const words = [];
  for (const raw of body.join(" ").replaceAll(",", " ").split(/\s+/)) {
    const token = raw.trim().toLowerCase();
    if (!token || /^\d+$/.test(token.replace(/\.+$/, ""))) continue;
    words.push(token);
  }
  return { lines, words };
}

/** Word positions (1-based) that are not SLIP-39 words: the page marks them as the custodian types. */
export function unknownWords(text) {
  return sheetWords(text)
    .words.map((w, i) => (WORD_INDEX.has(w) ? 0 : i + 1))
    .filter(Boolean);
}

function validLength(n) {
  return n >= 20 && (10 * (n - 7)) % 16 <= 8;
}

// RS1024, the share checksum (SLIP-39's definition): a code of distance 4, so one wrong word
// has exactly one place and one word that repair it. This only points at the word: every
// candidate is confirmed by the slip39 package's own check before it is shown.
const RS1024_GEN = [0xe0e040, 0x1c1c080, 0x3838100, 0x7070200, 0xe0e0009, 0x1c0c2412, 0x38086c24, 0x3090fc48, 0x21b1f890, 0x3f3f120];

function rs1024(chk, values) {
  for (const v of values) {
    const b = chk >> 20;
    chk = ((chk & 0xfffff) << 10) ^ v;
    for (let i = 0; i < 10; i++) if ((b >> i) & 1) chk ^= RS1024_GEN[i];
  }
  return chk;
}

const RS1024_START = [rs1024(1, utf8.encode("shamir")), rs1024(1, utf8.encode("shamir_extendable"))];

/** {position (1-based), suggestion} of the one word whose replacement makes the checksum
 * valid, or null (no single word, or more than one candidate). */
export function locateMistypedWord(words) {
  const idx = words.map((w) => WORD_INDEX.get(w));
  if (idx.some((v) => v === undefined)) return null;
  const hits = [];
  for (let i = 0; i < idx.length && hits.length < 2; i++) {
    const original = idx[i];
    for (let v = 0; v < 1024 && hits.length < 2; v++) {
      if (v === original) continue;
      idx[i] = v;
      const extendable = ((idx[0] * 1024 + idx[1]) >> 4) & 1;
      if (rs1024(RS1024_START[extendable], idx) === 1 && slip39.validateMnemonic(idx.map((x) => WORDS[x]).join(" "))) {
        hits.push({ position: i + 1, suggestion: WORDS[v] });
      }
    }
    idx[i] = original;
  }
  return hits.length === 1 ? hits[0] : null;
}

/** One share from a sheet's text (or bare words); OpenerError naming the sheet and the word. */
export function parseShare(text, origin) {
  const { lines, words } = sheetWords(text);
  if (!words.length) throw new OpenerError("share", `${origin}: no share words found`);
  for (let i = 0; i < words.length; i++) {
    if (!WORD_INDEX.has(words[i])) {
      throw new OpenerError(
        "share",
        `${origin}: word ${i + 1} '${words[i]}' is not a SLIP-39 word (mistyped?)`,
        { position: i + 1, word: words[i], origin },
      );
    }
  }
  const mnemonic = words.join(" ");
  if (!validLength(words.length)) {
    throw new OpenerError("share", `${origin}: invalid share (invalid mnemonic length)`, { origin });
  }
  if (!slip39.validateMnemonic(mnemonic)) {
    const hit = locateMistypedWord(words);
    const hint = hit ? `; word ${hit.position} '${words[hit.position - 1]}' is probably the mistyped one (did the sheet say '${hit.suggestion}'?)` : "";
    throw new OpenerError(
      "share",
      `${origin}: invalid share (checksum failed: a word is mistyped or the words are out of order)${hint}`,
      { origin, checksum: true, ...(hit ? { position: hit.position, word: words[hit.position - 1], suggestion: hit.suggestion } : {}) },
    );
  }
  // The share's header, as SLIP-39 lays it out: id (15 bits), extendable (1), exponent (4),
  // then group index, group threshold-1, group count-1, member index, member threshold-1 (4 each).
  const idx = words.slice(0, 4).map((w) => WORD_INDEX.get(w));
  const head = idx[0] * 1024 + idx[1];
  const group = idx[2] * 1024 + idx[3];
  const passphrase = lineFields(lines, "Passphrase")[0];
  return {
    origin,
    mnemonic,
    identifier: head >> 5,
    index: (group >> 4) & 15,
    threshold: (group & 15) + 1,
    keyId: lineFields(lines, "Key id")[0] || null,
    recipient: lineFields(lines, "Recipient")[0] || null,
    signers: lineFields(lines, "Signer").filter(Boolean),
    passphrase: passphrase === undefined ? null : passphrase.toLowerCase().startsWith("yes"),
  };
}

/** The 32-byte secret of a quorum (keymaterial.rebuild_identity / shares.combine). */
export function combineShares(parsed, passphrase = "") {
  if (!parsed.length) throw new OpenerError("share", "no shares given");
  const ids = new Set(parsed.map((p) => p.identifier));
  if (ids.size > 1) {
    const names = parsed.map((p) => `${p.origin} (set ${p.identifier})`).join(", ");
    throw new OpenerError("share", `the shares come from different ceremonies: ${names}`);
  }
  const seen = new Map();
  for (const p of parsed) {
    if (seen.has(p.index)) {
      throw new OpenerError(
        "share",
        `${p.origin} is the same share as ${seen.get(p.index)} (share #${p.index + 1})`,
      );
    }
    seen.set(p.index, p.origin);
  }
  const threshold = parsed[0].threshold;
  if (parsed.length < threshold) {
    throw new OpenerError("share", `${parsed.length} share(s) given, this key needs ${threshold}`);
  }
  if (!/^[\x20-\x7e]*$/.test(passphrase)) {
    throw new OpenerError("share", "a share passphrase uses printable ASCII characters only");
  }
  try {
    const quorum = parsed.slice(0, threshold).map((p) => p.mnemonic);
    return Uint8Array.from(slip39.recoverSecret(quorum, passphrase));
  } catch (exc) {
    throw new OpenerError("share", `the shares do not combine (${String(exc.message || exc)})`);
  }
}

export function identityFromSecret(secret) {
  return bech32.encodeFromBytes("AGE-SECRET-KEY-", secret).toUpperCase();
}

/** The key id (key-check value) of a recipient: SHA-256, first 8 bytes, four groups of hex. */
export function keyId(recipient) {
  const h = hex(sha256(utf8.encode(recipient.trim()))).slice(0, 16);
  return [0, 4, 8, 12].map((i) => h.slice(i, i + 4)).join("-");
}

/** (the signer lines the sheets agree on, or why they do not): keymaterial.sheet_signers. */
export function sheetSigners(parsed) {
  const named = parsed.map((p) => [p.origin, p.signers.map((s) => s.split(/\s+/).slice(0, 2).join(" "))]);
  const sets = named.filter(([, v]) => v.length);
  if (!sets.length) return { lines: [], dispute: null };
  const key = (v) => [...new Set(v)].sort().join("\n");
  if (new Set(sets.map(([, v]) => key(v))).size > 1) {
    const detail = sets.map(([k, v]) => `${k}: ${v.join(", ")}`).join("; ").slice(0, 300);
    return {
      lines: [],
      dispute: `the sheets name different appliance signers (${detail}): check the sheets, and give the signer key you trust`,
    };
  }
  if (sets.length !== named.length) {
    const bare = named.filter(([, v]) => !v.length).map(([k]) => k).join(", ");
    return {
      lines: [],
      dispute: `only ${sets.length} of ${named.length} sheets name the appliance signer (${bare} name none): one sheet cannot pin it for the others; give the signer key printed on the custodians' sheets`,
    };
  }
  return { lines: sets[0][1], dispute: null };
}

// ---- SSHSIG (crypto/sshsig.py) ----

class Reader {
  constructor(data) {
    this.data = data;
    this.pos = 0;
  }
  take(n) {
    if (this.pos + n > this.data.length) throw new OpenerError("signature", "malformed SSH signature (truncated)");
    const out = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  u32() {
    const b = this.take(4);
    return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  }
  string() {
    return this.take(this.u32());
  }
}

function sshString(bytes) {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const text = (b) => new TextDecoder().decode(b);

function keyBlob(raw) {
  return concat([sshString(utf8.encode("ssh-ed25519")), sshString(raw)]);
}

/** `ssh-ed25519 AAAA...` -> the 32 raw key bytes. */
export function parsePublicKeyLine(line) {
  const parts = String(line).trim().split(/\s+/);
  let raw;
  try {
    const r = new Reader(base64.decode(parts[1] || ""));
    const type = text(r.string());
    raw = r.string();
    if (type !== "ssh-ed25519" || parts[0] !== "ssh-ed25519") {
      throw new OpenerError("signature", "only ssh-ed25519 signer keys are supported");
    }
  } catch (exc) {
    if (exc instanceof OpenerError && exc.message.startsWith("only")) throw exc;
    throw new OpenerError("signature", `not an OpenSSH public key: '${String(line).trim().slice(0, 60)}'`);
  }
  if (raw.length !== 32) throw new OpenerError("signature", `not an OpenSSH public key: '${String(line).trim().slice(0, 60)}'`);
  return Uint8Array.from(raw);
}

export function publicKeyLine(raw) {
  return "ssh-ed25519 " + base64.encode(keyBlob(raw));
}

/** `SHA256:...` as ssh-keygen -l prints it. */
export function fingerprint(raw) {
  return "SHA256:" + base64.encode(sha256(keyBlob(raw))).replace(/=+$/, "");
}

function sameKey(a, b) {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

async function signedData(namespace, message) {
  return concat([
    utf8.encode("SSHSIG"),
    sshString(utf8.encode(namespace)),
    sshString(new Uint8Array(0)),
    sshString(utf8.encode("sha512")),
    sshString(await digest("SHA-512", message)),
  ]);
}

/** Check an armored SSHSIG signature; resolve to the signer's raw key (sshsig.verify). */
export async function verifySignature(armored, message, namespace) {
  const BEGIN = "-----BEGIN SSH SIGNATURE-----";
  const END = "-----END SSH SIGNATURE-----";
  const t = String(armored).trim();
  if (!(t.startsWith(BEGIN) && t.endsWith(END))) {
    throw new OpenerError("signature", "not an SSH signature (missing BEGIN/END SSH SIGNATURE lines)");
  }
  let blob;
  try {
    blob = base64.decode(t.slice(BEGIN.length, t.length - END.length).replace(/\s+/g, ""));
  } catch {
    throw new OpenerError("signature", "malformed SSH signature (bad base64)");
  }
  const r = new Reader(blob);
  if (text(r.take(6)) !== "SSHSIG" || r.u32() !== 1) {
    throw new OpenerError("signature", "not an SSHSIG version 1 signature");
  }
  const pubBlob = r.string();
  const ns = text(r.string());
  r.string();
  const hashAlg = text(r.string());
  const sigBlob = r.string();
  if (ns !== namespace) throw new OpenerError("signature", `signature made for '${ns}', expected '${namespace}'`);
  if (hashAlg !== "sha512") throw new OpenerError("signature", `unsupported signature hash '${hashAlg}'`);
  const kr = new Reader(pubBlob);
  if (text(kr.string()) !== "ssh-ed25519") throw new OpenerError("signature", "only ssh-ed25519 signing keys are supported");
  const raw = Uint8Array.from(kr.string());
  if (raw.length !== 32) throw new OpenerError("signature", `malformed SSH signature (a ${raw.length}-byte Ed25519 key)`);
  const sr = new Reader(sigBlob);
  if (text(sr.string()) !== "ssh-ed25519") throw new OpenerError("signature", "signature type is not ssh-ed25519");
  const sig = sr.string();
  if (sig.length !== 64) throw new OpenerError("signature", `malformed SSH signature (a ${sig.length}-byte Ed25519 signature)`);
  let ok = false;
  try {
    // zip215 false: the strict RFC 8032 rules, as `cryptography` (the Python opener) applies them.
    ok = ed25519.verify(sig, await signedData(namespace, message), raw, { zip215: false });
  } catch {
    ok = false;
  }
  if (!ok) throw new OpenerError("signature", "signature does not match: the data was modified");
  return raw;
}

// ---- trust (crypto/trust.py) ----

/** JSON with sorted keys and no whitespace, as orjson OPT_SORT_KEYS writes it. */
export function canonicalJson(value) {
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  if (value && typeof value === "object") {
    return "{" + Object.keys(value).sort().map((k) => JSON.stringify(k) + ":" + canonicalJson(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

export class Trust {
  constructor(keys, source, acceptUnverified = false) {
    this.keys = [];
    for (const k of keys) if (!this.keys.some((x) => sameKey(x, k))) this.keys.push(k);
    this.source = source;
    this.acceptUnverified = acceptUnverified;
  }
  require() {
    if (!this.keys.length && !this.acceptUnverified) {
      throw new OpenerError(
        "signature",
        "nothing pins the appliance's signing key (no Signer: line on the sheets, no signer given): give the 'ssh-ed25519 ...' key printed on a custodian sheet, or choose to open an UNVERIFIED source nobody can vouch for",
      );
    }
    return this;
  }
  pins(key) {
    return this.keys.some((k) => sameKey(k, key));
  }
  judge(key, what) {
    if (this.pins(key)) return true;
    if (this.acceptUnverified) return false;
    const pinned = this.keys.map(fingerprint).join(", ") || "none";
    throw new OpenerError(
      "signature",
      `${what}: signed by ${fingerprint(key)}, not by a key pinned by ${this.source} (${pinned}): forged, or signed by another appliance`,
    );
  }
  async following(chain) {
    const keys = [...this.keys];
    const links = chain.slice(0, MAX_CHAIN);
    const accepted = (k) => keys.some((x) => sameKey(x, k));
    let changed = true;
    while (changed) {
      changed = false;
      for (const link of links) {
        let previous, successor;
        try {
          previous = parsePublicKeyLine(link.previous);
          successor = parsePublicKeyLine(link.next);
        } catch {
          continue;
        }
        if (accepted(successor) || !accepted(previous)) continue;
        const body = canonicalJson({ format: "sealbox-signer-endorsement", previous: link.previous, next: link.next, time: link.time });
        let signer;
        try {
          signer = await verifySignature(link.signature, utf8.encode(body), NS_SIGNER);
        } catch {
          continue;
        }
        if (sameKey(signer, previous)) {
          keys.push(successor);
          changed = true;
        }
      }
    }
    return new Trust(keys, this.source, this.acceptUnverified);
  }
}

function endorsements(manifest) {
  const list = manifest && Array.isArray(manifest.endorsements) ? manifest.endorsements : [];
  return list.filter(
    (e) => e && typeof e === "object" && ["previous", "next", "time", "signature"].every((k) => typeof e[k] === "string" && e[k].length < 4096),
  );
}

// ---- the package (breakglass/package.py) ----

const AGE_MAGIC = utf8.encode("age-encryption.org/v1\n");

export function ageRecipientCount(data) {
  if (data.length < AGE_MAGIC.length || !AGE_MAGIC.every((b, i) => data[i] === b)) {
    throw new OpenerError("corrupt", "not an age-encrypted file (bad header)");
  }
  const head = text(data.subarray(0, Math.min(data.length, 1 << 20)));
  const end = head.indexOf("\n---");
  if (end < 0) throw new OpenerError("corrupt", "age header is truncated");
  return head.slice(0, end).split("\n").filter((l) => l.startsWith("-> X25519 ")).length;
}

export function parseManifest(textValue) {
  let manifest;
  try {
    manifest = JSON.parse(textValue);
  } catch {
    throw new OpenerError("corrupt", "manifest is not valid JSON");
  }
  if (!manifest || typeof manifest !== "object" || Array.isArray(manifest) || manifest.format !== MANIFEST_FORMAT) {
    throw new OpenerError("corrupt", "not a Sealbox secrets manifest");
  }
  return manifest;
}

function canonicalManifest(manifest) {
  const body = {};
  for (const [k, v] of Object.entries(manifest)) if (k !== "signature") body[k] = v;
  return utf8.encode(canonicalJson(body));
}

/** package.verify: signature, pinned signer, manifest signature, size, SHA-256, recipients. */
export async function verifyPackage(backup, signature, manifestText, trust) {
  const warnings = [];
  ageRecipientCount(backup);
  if (signature == null) throw new OpenerError("signature", "the signature file (.sig) is missing");
  const signer = await verifySignature(signature, backup, NS_FILE);
  let chainManifest = null;
  if (manifestText != null) {
    try {
      chainManifest = parseManifest(manifestText);
    } catch {
      chainManifest = null;
    }
  }
  const pinned = (await trust.following(endorsements(chainManifest))).judge(signer, "the file");
  let manifest = null;
  if (manifestText == null) {
    warnings.push("manifest file is missing: key ids and counts cannot be shown before opening");
  } else {
    manifest = parseManifest(manifestText);
    const manifestSigner = await verifySignature(String(manifest.signature ?? ""), canonicalManifest(manifest), NS_MANIFEST);
    if (!sameKey(manifestSigner, signer)) {
      throw new OpenerError("signature", "the manifest and the file were signed by different keys");
    }
    if (manifest.size !== backup.length) {
      throw new OpenerError("corrupt", `file is ${backup.length} bytes, its manifest says ${manifest.size} (truncated?)`);
    }
    if (manifest.sha256 !== hex(await digest("SHA-256", backup))) {
      throw new OpenerError("corrupt", "file does not match the SHA-256 in its manifest");
    }
    if (ageRecipientCount(backup) !== (manifest.keys || []).length) {
      throw new OpenerError("corrupt", "the age header's recipients do not match the manifest");
    }
  }
  return { signer, manifest, warnings, pinned };
}

function checkDocument(doc) {
  if (!doc || typeof doc !== "object" || doc.format !== "sealbox-secrets") {
    throw new OpenerError("corrupt", "the decrypted file is not a Sealbox secrets document");
  }
  if (doc.version !== 1) {
    throw new OpenerError(
      "corrupt",
      `secrets document version ${JSON.stringify(doc.version)} is not supported by this opener (it reads version 1); use a newer opener, or \`age -d\` to get the JSON`,
    );
  }
  if (!Array.isArray(doc.items)) throw new OpenerError("corrupt", "the secrets document has no valid item list");
  return doc;
}

function asBytes(value, what, limit) {
  let bytes = value;
  if (value instanceof ArrayBuffer) bytes = new Uint8Array(value);
  if (!(bytes instanceof Uint8Array)) throw new OpenerError("input", `${what} must be a Uint8Array`);
  if (bytes.length > limit) throw new OpenerError("corrupt", `${what} is larger than ${limit.toLocaleString("en")} bytes: not a Sealbox file`);
  return bytes;
}

function asText(value, what, limit) {
  if (value == null) return null;
  if (value instanceof Uint8Array || value instanceof ArrayBuffer) value = new TextDecoder().decode(value);
  if (typeof value !== "string") throw new OpenerError("input", `${what} must be text`);
  if (value.length > limit) throw new OpenerError("corrupt", `${what} is larger than ${limit.toLocaleString("en")} bytes: not a Sealbox file`);
  return value;
}

/**
 * Open a secrets backup: the whole of the Python opener's `breakglass open`.
 * Resolves to {document, keyId, signer, pinned, warnings, shares, manifest}; rejects with an
 * OpenerError whose message says why.
 */
export async function openBackup({ backup, signature, manifest, shares, passphrase = "", signers = [], unverified = false, name = "backup" }) {
  const data = asBytes(backup, "the backup", MAX_BACKUP);
  const sig = asText(signature, "the signature", MAX_SIGNATURE);
  const manifestText = asText(manifest, "the manifest", MAX_MANIFEST);
  if (!Array.isArray(shares) || !shares.length) throw new OpenerError("share", "no shares given");
  const parsed = shares.map((s, i) =>
    typeof s === "string" ? parseShare(s, `share ${i + 1}`) : parseShare(String(s.text ?? ""), s.name || `share ${i + 1}`),
  );
  const pass = passphrase == null ? "" : String(passphrase);
  if (!pass && parsed.some((p) => p.passphrase)) {
    throw new OpenerError("share", "these shares were made with a passphrase: enter it");
  }
  const secret = combineShares(parsed, pass);
  let identity;
  try {
    identity = identityFromSecret(secret);
  } finally {
    secret.fill(0);
  }
  const recipient = await identityToRecipient(identity);
  const rebuilt = keyId(recipient);
  const expected = [...new Set(parsed.map((p) => p.keyId).filter(Boolean))].sort();
  if (expected.length && !expected.includes(rebuilt)) {
    const hint = pass || parsed.some((p) => p.passphrase) ? "wrong passphrase" : "missing passphrase";
    throw new OpenerError("wrong-key", `the shares rebuild key ${rebuilt}, but their sheets name key ${expected.join(", ")}: ${hint}?`);
  }
  // Whom to trust (keymaterial.pinned_trust): signers given here, else the sheets' agreed lines.
  const given = signers.map(parsePublicKeyLine);
  const { lines, dispute } = sheetSigners(parsed);
  if (dispute && !given.length) throw new OpenerError("share", dispute);
  const keys = [...given];
  const sources = given.length ? ["the signer given"] : [];
  if (lines.length && !dispute) {
    keys.push(...lines.map(parsePublicKeyLine));
    sources.push("the custodian sheets");
  }
  const trust = new Trust(keys, sources.join(" and ") || "nobody", Boolean(unverified)).require();
  const warnings = [];
  let verified = null;
  let man = null;
  try {
    verified = await verifyPackage(data, sig, manifestText, trust);
    warnings.push(...verified.warnings);
    man = verified.manifest;
    if (!verified.pinned) {
      warnings.push(`signature valid, but by ${fingerprint(verified.signer)}, which nothing pinned: the origin of this file is UNVERIFIED`);
    }
  } catch (exc) {
    if (!(exc instanceof OpenerError) || exc.kind !== "signature") throw prefixed(exc, name);
    if (!unverified) {
      throw new OpenerError("signature", `${name}: ${exc.message} (refusing to open; the UNVERIFIED choice overrides)`);
    }
    warnings.push(`signature NOT verified: ${exc.message}`);
    if (manifestText != null) {
      try {
        man = parseManifest(manifestText);
        if (man.size !== data.length) warnings.push(`file is ${data.length} bytes, its manifest says ${man.size} (truncated?)`);
      } catch (e) {
        warnings.push(`manifest ignored: ${e.message}`);
        man = null;
      }
    }
  }
  if (man) {
    const listed = Array.isArray(man.keys) ? man.keys.filter((k) => k && typeof k === "object") : [];
    if (!listed.some((k) => k.recipient === recipient)) {
      const ids = listed.map((k) => String(k.id ?? "?")).join(", ");
      throw new OpenerError("wrong-key", `${name} was made for key ${ids}; the key given is ${rebuilt} (wrong passphrase or shares of another key?)`);
    }
  }
  let plain;
  try {
    const d = new Decrypter();
    d.addIdentity(identity);
    plain = await d.decrypt(data);
  } catch (exc) {
    if (man) throw new OpenerError("corrupt", `${name}: decryption failed: the file is damaged or truncated`);
    throw new OpenerError("wrong-key", `${name}: the key given does not open this file (${exc.message || exc})`);
  } finally {
    identity = null;
  }
  let doc;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(plain));
  } catch {
    throw new OpenerError("corrupt", "the decrypted backup is not valid JSON");
  } finally {
    plain.fill(0);
  }
  return {
    document: checkDocument(doc),
    keyId: rebuilt,
    signer: verified ? fingerprint(verified.signer) : null,
    pinned: Boolean(verified && verified.pinned),
    warnings,
    manifest: man,
    shares: parsed.map((p) => ({ identifier: p.identifier, index: p.index + 1, threshold: p.threshold, origin: p.origin })),
  };
}

function prefixed(exc, name) {
  if (exc instanceof OpenerError) return new OpenerError(exc.kind, `${name}: ${exc.message}`);
  return exc;
}
