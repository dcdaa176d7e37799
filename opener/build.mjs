// Build the opener: one self-contained HTML file, the same bytes from the same inputs.
//   node build.mjs [--out PATH]   (default: ../src/sealbox/breakglass/opener.html)
// Reproducible: exact versions from package-lock.json (npm ci), no time stamps, no absolute
// paths, minified by esbuild (deterministic), CSP hashes computed from the inlined text.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const outAt = args.indexOf("--out");
const out = outAt >= 0 ? resolve(args[outAt + 1]) : join(here, "..", "src", "sealbox", "breakglass", "opener.html");
const pkg = JSON.parse(readFileSync(join(here, "package.json"), "utf8"));

const result = await build({
  absWorkingDir: here,
  entryPoints: ["src/main.js"],
  bundle: true,
  write: false,
  format: "iife",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  charset: "utf8",
  legalComments: "eof",
  alias: { crypto: "./src/shims/crypto.js" },
  inject: ["src/shims/buffer.js"],
  define: { __OPENER_VERSION__: JSON.stringify(pkg.version) },
  logLevel: "warning",
});
// xmldom (kdbxweb's XML) writes comments with the string literal "<!--": the same string, escaped.
let script = result.outputFiles[0].text.trimEnd().replaceAll('"<!--"', '"\\x3C!--"');
// The script is inlined: a "</script" or "<!--" inside it would end or confuse the element.
if (/<\/script|<!--/i.test(script)) throw new Error("the bundle holds </script or <!--: cannot inline it");
// The CSP forbids eval. The one `new Function` is webpack's fallback for browsers without
// globalThis (in kdbxweb's bundle), never reached in a browser that has it.
const evals = script.replaceAll('new Function("return this")', "").match(/(?<![.\w$])eval\(|new Function\(/g);
if (evals) throw new Error(`the bundle uses eval (${evals.join(", ")}): the CSP forbids it`);
const style = readFileSync(join(here, "src", "style.css"), "utf8").trim();
const hash = (s) => "'sha256-" + createHash("sha256").update(s, "utf8").digest("base64") + "'";
const csp = [
  "default-src 'none'",
  `script-src ${hash(script)}`,
  `style-src ${hash(style)}`,
  "img-src data:",
  "connect-src 'none'",
  "form-action 'none'",
  "base-uri 'none'",
].join("; ");
const page = readFileSync(join(here, "src", "page.html"), "utf8")
  .replace("%CSP%", () => csp)
  .replace("%VERSION%", () => pkg.version)
  .replace("%STYLE%", () => style)
  .replace("%SCRIPT%", () => script);
writeFileSync(out, page);
console.log(`${out}: ${page.length.toLocaleString("en")} bytes, sha256 ${createHash("sha256").update(page).digest("hex")}`);
