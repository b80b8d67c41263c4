// Runs one scenario against a gateway: node e2e/scenario.mjs NAME URL TOKEN [VIEWER_TOKEN]
// Prints one JSON line: {"scenario", "ok", "result" | "error", "seconds"}.
import { launch } from "./lib.mjs";
import { ALL } from "./scenarios.mjs";

export async function runScenario(name, url, token, context, viewerToken) {
  const fn = ALL[name];
  if (!fn) throw new Error(`unknown scenario ${name}; known: ${Object.keys(ALL).join(", ")}`);
  const t0 = performance.now();
  try {
    const result = await fn({ context, url, token, viewerToken });
    return { scenario: name, ok: true, result, seconds: +((performance.now() - t0) / 1000).toFixed(2) };
  } catch (e) {
    return { scenario: name, ok: false, error: String(e?.stack ?? e), seconds: +((performance.now() - t0) / 1000).toFixed(2) };
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [name, url, token, viewerToken] = process.argv.slice(2);
  if (!name || !url || !token) {
    console.error("usage: node e2e/scenario.mjs NAME URL TOKEN");
    process.exit(2);
  }
  const { context, close } = await launch();
  const out = await runScenario(name, url, token, context, viewerToken);
  await close();
  console.log(JSON.stringify(out));
  process.exit(out.ok ? 0 : 1);
}
