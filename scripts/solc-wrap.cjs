#!/usr/bin/env node
// A `solc` executable on top of the npm solc package (the only compiler available offline), for tools that
// call a native solc (Slither via crytic-compile, py-solc-x): `--version` and `--standard-json` only.
const fs = require("fs");
const path = require("path");
const solc = require(path.join(__dirname, "..", "node_modules", "solc"));

const args = process.argv.slice(2);
if (args.includes("--version")) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  process.stderr.write("solc-wrap: only --version and --standard-json are supported\n");
  process.exit(2);
}
const root = path.join(__dirname, "..");
function findImports(p) {
  for (const base of [root, path.join(root, "node_modules")]) {
    const full = path.join(base, p);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, "utf8") };
  }
  return { error: `not found: ${p}` };
}
const input = fs.readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
