// Validate an AsyncAPI document with the official parser (@asyncapi/parser, pinned in
// package.json): `node asyncapi-validate.mjs FILE` prints its diagnostics as a JSON array
// of {severity, code, message, path}; severity is "error", "warning", "info" or "hint".
// tests/test_asyncapi_tools.py runs it on the documents wsroute generates.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const SEVERITY = ["error", "warning", "info", "hint"];

const [file] = process.argv.slice(2);
if (!file) {
  console.error("usage: node asyncapi-validate.mjs FILE");
  process.exit(2);
}
const source = await readFile(file, "utf8");
const { diagnostics } = await new Parser().parse(source, { source: file });
const found = diagnostics.map((d) => ({
  severity: SEVERITY[d.severity] ?? String(d.severity),
  code: String(d.code),
  message: d.message,
  path: d.path.join("/"),
}));
process.stdout.write(JSON.stringify(found, null, 2) + "\n");
