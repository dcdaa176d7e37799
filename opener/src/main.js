// The entry point: the page (ui.js) and the scripting API, window.sealboxOpener
// (documented in opener/README.md and docs/design/format.md).
import slip39 from "slip39";
import { openBackup, parseShare } from "./core.js";
import { toCsv, toJson, toKdbx } from "./export.js";
import { currentReceipt, start } from "./ui.js";

const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

window.sealboxOpener = Object.freeze({
  version: __OPENER_VERSION__,
  /** Open a backup; resolves to the decrypted document (the JSON `age -d` yields). */
  async open(options) {
    return (await openBackup(options)).document;
  },
  /** The same, with what the page shows: {document, keyId, signer, pinned, warnings, shares, manifest}. */
  openDetailed: openBackup,
  /** One share sheet's text -> {identifier, index (0-based), threshold, keyId, signers, ...}. */
  parseShare: (text, origin = "share") => parseShare(text, origin),
  /** SLIP-39 mnemonics -> the master secret as hex (the shamir-mnemonic vectors test this). */
  combine: (mnemonics, passphrase = "") => hex(slip39.recoverSecret(mnemonics, passphrase)),
  exportJson: toJson,
  exportCsv: toCsv,
  exportKdbx: async (doc, password) => new Uint8Array(await toKdbx(doc, password)),
  /** The receipt of what the page revealed or exported so far, or null. */
  receipt: currentReceipt,
});

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
