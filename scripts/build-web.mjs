// Bundle the web app (web/src, TypeScript) into backend/api/static/app.js + app.css with esbuild: run by
// `make build`; nothing is loaded from a CDN at run time. `--check` also type-checks with tsc first.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
if (process.argv.includes("--check")) {
  execFileSync(path.join(root, "node_modules/.bin/tsc"), ["-p", path.join(root, "web/tsconfig.json")], {
    stdio: "inherit",
  });
}
await build({
  entryPoints: [path.join(root, "web/src/main.ts")],
  outfile: path.join(root, "backend/api/static/app.js"),
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  sourcemap: false,
  legalComments: "none",
  logLevel: "warning",
});
