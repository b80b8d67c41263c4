// Shared pieces of the console's browser tests: Debian's Chromium driven by playwright-core
// (no browser download), and a demo gateway on 127.0.0.1.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const WEB = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO = resolve(WEB, "..");
export const SHOTS = process.env.ACCORD_E2E_SCREENSHOTS ?? join(REPO, "tests", "e2e", "screenshots");

export function chromiumPath() {
  const candidates = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"];
  const found = candidates.find((p) => p && existsSync(p));
  if (!found) throw new Error("Chromium is not installed: apt-get install -y chromium");
  return found;
}

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "accord-chromium-"));
  // A persistent context on a fresh profile directory: the same as --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

export async function newPage(context, { colorScheme = "light" } = {}) {
  const page = await context.newPage();
  await page.emulateMedia({ colorScheme });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  return { page, errors };
}

/** Opens `at` (default: the overview), signs in with the token form. */
export async function login(page, url, token, at = url + "/") {
  await page.goto(at);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("subject").waitFor({ timeout: 15000 });
}

export async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

export async function apiGet(url, token, path) {
  const res = await fetch(url + path, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET ${path} answered ${res.status}`);
  return res.json();
}

/** A token made with the CLI against the demo's database. */
export function createToken(dataDir, subject, role, domain) {
  const out = execFileSync(
    "uv",
    ["run", "accord", "tokens", "create", "--subject", subject, "--role", role, "--domain", domain],
    {
      cwd: REPO,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        ACCORD_DATA_DIR: dataDir,
        ACCORD_DATABASE_URL: `sqlite:///${join(dataDir, "demo", "accord.db")}`,
      },
    },
  );
  const token = out.split(/\s+/).find((w) => w.startsWith("acd_"));
  if (!token) throw new Error(`accord tokens create printed no token:\n${out}`);
  return token;
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on("error", fail);
  });
}

/** `accord serve --demo` on a free port with its own data directory; stop() ends it. */
export async function startGateway() {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "accord-e2e-"));
  const proc = spawn("uv", ["run", "accord", "serve", "--demo", "--host", "127.0.0.1", "--port", String(port)], {
    cwd: REPO,
    env: { ...process.env, ACCORD_DATA_DIR: dataDir },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let log = "";
  proc.stdout.on("data", (d) => (log += d));
  proc.stderr.on("data", (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60000;
  let ready = false;
  while (Date.now() < deadline && proc.exitCode === null) {
    try {
      const r = await fetch(url + "/readyz");
      if (r.ok) {
        ready = true;
        break;
      }
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const stop = () => {
    if (proc.exitCode === null) {
      try {
        process.kill(-proc.pid, "SIGTERM");
      } catch {
        /* already gone */
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  if (!ready) {
    stop();
    throw new Error(`the demo gateway did not become ready:\n${log.slice(-3000)}`);
  }
  const token = readFileSync(join(dataDir, "demo", "admin-token"), "utf8").trim();
  const viewerToken = createToken(dataDir, "viewer-platform", "viewer", "platform");
  return { url, token, viewerToken, stop, log: () => log };
}
