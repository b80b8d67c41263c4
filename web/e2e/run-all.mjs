// `npm run e2e`: starts a demo gateway, runs every scenario in Chromium, stops the gateway.
// The console must be built first (scripts/build-console.sh).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { launch, REPO, startGateway } from "./lib.mjs";
import { runScenario } from "./scenario.mjs";
import { ALL } from "./scenarios.mjs";

if (!existsSync(join(REPO, "gateway", "console", "index.html"))) {
  console.error("the console is not built: run scripts/build-console.sh first");
  process.exit(2);
}
const only = process.argv.slice(2);
const names = only.length ? only : Object.keys(ALL);
const t0 = performance.now();
const gw = await startGateway();
let failed = 0;
try {
  const { context, close } = await launch();
  try {
    for (const name of names) {
      const r = await runScenario(name, gw.url, gw.token, context, gw.viewerToken);
      console.log(`${r.ok ? "ok  " : "FAIL"} ${name} (${r.seconds} s)${r.ok ? "" : "\n" + r.error}`);
      if (!r.ok) failed++;
    }
  } finally {
    await close();
  }
} finally {
  gw.stop();
}
console.log(`${names.length - failed} passed, ${failed} failed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
