// The receipt: what was revealed or exported, when, with which shares (identifier and index,
// never words), on which machine. Format: docs/design/format.md, "Break-glass receipts".
export const RECEIPT_FORMAT = "sealbox-breakglass-receipt";

export function utcNow(date = new Date()) {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export class Receipt {
  constructor(session, { openerVersion, machine }) {
    const m = session.manifest || {};
    this.body = {
      format: RECEIPT_FORMAT,
      version: 1,
      opener: "browser",
      opener_version: openerVersion,
      machine,
      opened: utcNow(),
      backup: {
        file: m.file || session.name || null,
        appliance: session.document.appliance ?? null,
        created: session.document.created ?? null,
        sha256: m.sha256 || null,
      },
      key_id: session.keyId,
      signer: session.signer,
      verified: session.pinned,
      shares: session.shares.map((s) => ({ identifier: s.identifier, index: s.index })),
      events: [],
    };
  }
  get empty() {
    return this.body.events.length === 0;
  }
  record(action, items, format = null) {
    const event = { time: utcNow(), action, items: items.map((i) => ({ id: String(i.id), name: String(i.name ?? ""), type: String(i.type ?? "") })) };
    if (format) event.format = format;
    this.body.events.push(event);
  }
  setMachine(machine) {
    this.body.machine = machine;
  }
  toJSON() {
    return this.body;
  }
  fileName() {
    const stamp = this.body.opened.replace(/[-:]/g, "");
    return `sealbox-receipt-${this.body.backup.appliance || "backup"}-${stamp}.json`;
  }
}
