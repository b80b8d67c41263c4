// Single sign-on in a real browser: node e2e/sso.mjs URL ADMIN_TOKEN LOGIN PASSWORD TTL
// Against a gateway configured for an OpenID provider (tests/sso/test_sso_browser.py
// starts both). Signs in through the provider's login form, reports what the console
// shows, checks that a revoked session and an expired one are refused. Prints one JSON line.
import assert from "node:assert/strict";
import { launch, newPage, shot } from "./lib.mjs";

const [url, adminToken, login, password, ttl] = process.argv.slice(2);

async function signIn(page) {
  await page.goto(`${url}/#/jobs`);
  await page.getByTestId("sso-login").click();
  // The provider asks for a login (unless its own session is still open), then for
  // consent the first time.
  const form = page.locator('input[name="login"]');
  const consent = page.getByRole("button", { name: "Continue" });
  const subject = page.getByTestId("subject");
  const first = () =>
    Promise.race([
      form.waitFor({ timeout: 15000 }).then(() => "form"),
      consent.waitFor({ timeout: 15000 }).then(() => "consent"),
      subject.waitFor({ timeout: 15000 }).then(() => "in"),
    ]);
  let step = await first();
  if (step === "form") {
    await form.fill(login);
    await page.locator('input[name="password"]').fill(password);
    await page.getByRole("button", { name: "Sign-in" }).click();
    step = await first();
  }
  if (step === "consent") await consent.click();
  await subject.waitFor({ timeout: 15000 });
}

async function admin(path, method = "GET") {
  const r = await fetch(url + path, { method, headers: { Authorization: `Bearer ${adminToken}` } });
  assert.ok(r.ok, `${method} ${path} answered ${r.status}`);
  return r.json();
}

async function main() {
  const { context, close } = await launch();
  try {
    const { page } = await newPage(context);
    // Errors of the console's pages (the provider's own pages are not under test here).
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error" && page.url().startsWith(url)) errors.push(`${m.text()} ${m.location().url}`);
    });
    await signIn(page);
    const subject = (await page.getByTestId("subject").textContent()).trim();
    assert.ok(!/acs_|code=|state=/.test(page.url()), `no secret in the address: ${page.url()}`);
    const cookies = await context.cookies(url);
    const session = cookies.find((c) => c.name === "accord_session");
    assert.ok(session && session.httpOnly, "the session cookie is HttpOnly");
    assert.equal(await page.evaluate(() => document.cookie.includes("accord_session")), false);
    // What this person sees, through the console's own session.
    const seen = await page.evaluate(async () => {
      const r = await fetch("/api/v1/jobs?limit=1000", { headers: { "X-Accord-Channel": "ui" } });
      return (await r.json()).items.map((j) => j.domain);
    });
    const total = (await page.evaluate(async () => (await (await fetch("/api/v1/jobs?total=true&limit=1")).json()).total));
    await page.getByTestId("jobs-count").filter({ hasText: `${total} jobs` }).waitFor();
    await shot(page, "sso-jobs");

    // An administrator revokes the session: the console is back at the login page.
    const sessions = await admin("/api/v1/sessions");
    const mine = sessions.find((s) => s.subject === subject);
    assert.ok(mine, "the session is listed");
    await admin(`/api/v1/sessions/${mine.id}`, "DELETE");
    await page.reload();
    await page.getByTestId("sso-login").waitFor({ timeout: 15000 });

    // A new session ends by itself after the session lifetime.
    await signIn(page);
    const started = Date.now();
    let expiredAfter = null;
    for (let i = 0; i < 60 && expiredAfter === null; i++) {
      await page.waitForTimeout(1000);
      await page.reload();
      await page.waitForSelector('[data-testid="subject"], [data-testid="sso-login"]');
      if (await page.getByTestId("sso-login").count()) expiredAfter = (Date.now() - started) / 1000;
    }
    assert.ok(expiredAfter !== null, "the session never expired");
    await page.close();
    return { subject, domains: [...new Set(seen)].sort(), jobs: total, expiredAfter, ttl: Number(ttl), errors };
  } finally {
    await close();
  }
}

main()
  .then((result) => {
    console.log(JSON.stringify({ ok: true, result }));
    process.exit(0);
  })
  .catch((e) => {
    console.log(JSON.stringify({ ok: false, error: String(e?.stack ?? e) }));
    process.exit(1);
  });
