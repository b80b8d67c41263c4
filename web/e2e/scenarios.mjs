// Browser scenarios against a running demo gateway. Each takes {context, url, token},
// asserts what a user would see, and returns facts for the caller to print or check.
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { apiGet, login, newPage, REPO, shot } from "./lib.mjs";

const enc = encodeURIComponent;

async function kpi(page, id) {
  return Number((await page.getByTestId(id).textContent()).trim());
}

/** Log in and compare the overview's numbers with the API's. */
export async function overview({ context, url, token }) {
  const { page, errors } = await newPage(context);
  await login(page, url, token);
  await page.getByTestId("kpi-jobs").waitFor();
  const before = await apiGet(url, token, "/api/v1/overview");
  const seen = {
    jobs: await kpi(page, "kpi-jobs"),
    sources: await kpi(page, "kpi-sources"),
    failing: await kpi(page, "kpi-failing"),
  };
  const after = await apiGet(url, token, "/api/v1/overview");
  // The demo keeps running: a number must equal the API's just before or just after.
  for (const [k, f] of [
    ["jobs", (o) => o.jobs],
    ["sources", (o) => o.sources],
    ["failing", (o) => o.failing_now.count],
  ]) {
    assert.ok([f(before), f(after)].includes(seen[k]), `${k}: page ${seen[k]}, API ${f(before)}/${f(after)}`);
  }
  const bars = await page.locator('[data-testid^="bar-"]').count();
  assert.equal(bars, new Set(after.runs_24h.map((r) => r.source)).size, "one bar per source with runs in 24 h");
  const demoTags = await page.locator(".tag-demo").count();
  assert.ok(demoTags >= after.source_health.filter((s) => s.demo).length, "demo sources are labelled");
  await shot(page, "overview");
  if (process.env.ACCORD_UPDATE_DOCS_IMAGE) {
    mkdirSync(join(REPO, "docs", "images"), { recursive: true });
    copyFileSync(await shot(page, "overview"), join(REPO, "docs", "images", "overview.png"));
  }
  await page.getByRole("button", { name: /dark mode/ }).click();
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
  await shot(page, "overview-dark");
  await page.getByRole("button", { name: /light mode/ }).click();
  assert.deepEqual(errors, []);
  await page.close();
  return { seen, api: { jobs: after.jobs, sources: after.sources } };
}

/** Filter the jobs table, open a job, trigger a run and see it appear. */
export async function jobs({ context, url, token }) {
  const { page, errors } = await newPage(context);
  await login(page, url, token);
  await page.goto(`${url}/#/jobs`);
  await page.getByTestId("jobs-table").waitFor();
  const all = await apiGet(url, token, "/api/v1/jobs?total=true&limit=1");
  await page.getByTestId("jobs-count").filter({ hasText: `${all.total} jobs` }).waitFor();

  await page.getByLabel("source").selectOption("demo-etl");
  await page.waitForFunction(() => location.hash.includes("source=demo-etl"));
  const etl = await apiGet(url, token, "/api/v1/jobs?source=demo-etl&total=true&limit=1000");
  await page.getByTestId("jobs-count").filter({ hasText: `${etl.total} jobs match` }).waitFor();
  const names = await page.locator('[data-testid="jobs-table"] tbody tr td:first-child a').allTextContents();
  assert.deepEqual(names.sort(), etl.items.map((j) => j.name).sort());

  await page.getByLabel("text").fill("ingest");
  await page.waitForFunction(() => location.hash.includes("q=ingest"));
  const ingest = await apiGet(url, token, "/api/v1/jobs?source=demo-etl&q=ingest&limit=1000");
  const n = ingest.items.length;
  assert.ok(n > 0 && n < etl.total, "the text filter narrows the list");
  await page.getByTestId("jobs-count").filter({ hasText: `${n} job${n === 1 ? "" : "s"} match` }).waitFor();
  const narrowed = await page.locator('[data-testid="jobs-table"] tbody tr td:first-child a').allTextContents();
  assert.deepEqual(narrowed.sort(), ingest.items.map((j) => j.name).sort());
  const shared = page.url();
  assert.match(shared, /source=demo-etl/);
  assert.match(shared, /q=ingest/);
  await shot(page, "jobs");

  // The filtered view is shareable: someone opening the address (and signing in, as the
  // token belongs to a tab) sees the same rows.
  const { page: other } = await newPage(context);
  await login(other, url, token, shared);
  await other.getByTestId("jobs-count").filter({ hasText: `${n} job` }).waitFor();
  await other.close();

  const uid = "demo-etl/ingest_orders";
  await page.getByRole("link", { name: "ingest_orders", exact: true }).click();
  await page.getByTestId("job-title").filter({ hasText: "ingest_orders" }).waitFor();
  assert.ok(page.url().endsWith(`#/jobs/${enc(uid)}`));
  await page.getByTestId("job-runs").waitFor();
  await page.getByTestId("action-trigger").click();
  await page.getByRole("dialog").waitFor();
  await page.getByLabel(/Reason/).fill("browser test");
  await page.getByTestId("confirm").click();
  const outcome = page.getByTestId("action-outcome");
  await outcome.waitFor({ timeout: 20000 });
  const text = await outcome.textContent();
  assert.match(text, /Done/, text);
  const href = await outcome.getByRole("link", { name: "open the new run" }).getAttribute("href");
  const runUid = decodeURIComponent(href.replace("#/runs/", ""));
  // The new run shows in the job's recent runs without a reload.
  await page.locator(`[data-testid="job-runs"] a[title="${runUid}"]`).waitFor({ timeout: 20000 });
  await shot(page, "job");

  // Its page has the audit record of the trigger.
  await page.goto(`${url}/${href}`);
  await page.getByTestId("run-uid").filter({ hasText: runUid }).waitFor();
  await page.getByText("browser test").waitFor({ timeout: 15000 });
  await page.getByTestId("run-events").waitFor({ timeout: 15000 }).catch(() => undefined);
  await shot(page, "run");
  const audit = await apiGet(url, token, `/api/v1/audit?target=${enc(uid)}&action=trigger`);
  assert.ok(audit.items.some((r) => r.details.run === runUid && r.channel === "ui"), "audited, channel ui");
  assert.deepEqual(errors, []);
  await page.close();
  return { filtered: etl.total, text: n, run: runUid };
}

/** The lineage graph shows exactly the API's nodes; impact counts the downstream. */
export async function lineage({ context, url, token }) {
  const { page, errors } = await newPage(context);
  await login(page, url, token);
  const root = "demo-etl/finance_report";
  await page.goto(`${url}/#/lineage?job=${enc(root)}&depth=3`);
  await page.getByTestId("lineage-graph").waitFor();
  const data = await apiGet(url, token, `/api/v1/lineage?job=${enc(root)}&depth=3&direction=both`);
  await page.locator(".react-flow__node").first().waitFor();
  const ids = await page.locator(".react-flow__node").evaluateAll((els) => els.map((e) => e.getAttribute("data-id")));
  assert.deepEqual(ids.sort(), data.nodes.map((n) => n.uid).sort());
  const edges = await page.locator(".react-flow__edge").count();
  assert.equal(edges, data.edges.length);

  // Select the most upstream job and switch to impact: everything downstream of it lights up.
  const start = "demo-etl/ingest_orders";
  const down = new Set();
  const stack = [start];
  while (stack.length) {
    const n = stack.pop();
    for (const e of data.edges) if (e.src === n && !down.has(e.dst)) (down.add(e.dst), stack.push(e.dst));
  }
  await page.locator(`.react-flow__node[data-id="${start}"]`).click();
  await page.getByLabel(/Impact/).check();
  await page.getByTestId("impact-count").filter({ hasText: `${down.size} downstream (impact)` }).waitFor();
  const lit = await page.locator(".react-flow__node.hl-downstream").evaluateAll((els) => els.map((e) => e.getAttribute("data-id")));
  assert.deepEqual(lit.sort(), [...down].sort());
  await shot(page, "lineage");
  assert.deepEqual(errors, []);
  await page.close();
  return { nodes: ids.length, edges, impact: down.size };
}

/** Verify the chain, download the signed export and the browser-made JSONL of the list. */
export async function audit({ context, url, token }) {
  const { page, errors } = await newPage(context);
  await login(page, url, token);
  await page.goto(`${url}/#/audit?action=login`);
  await page.getByTestId("audit-table").waitFor();
  const rows = await page.locator('[data-testid="audit-table"] tbody tr').count();
  const api = await apiGet(url, token, "/api/v1/audit?action=login&limit=1000");
  assert.equal(rows, api.items.length);

  await page.getByTestId("verify").click();
  const verdict = await page.getByTestId("verify-result").textContent();
  assert.match(verdict, /Chain intact/);

  const [dl] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-client").click()]);
  const file = await dl.path();
  const lines = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, rows);
  assert.ok(lines.every((r) => r.action === "login" && typeof r.hash === "string"));
  assert.match(dl.suggestedFilename(), /^audit-list-.*\.jsonl$/);

  const [zip] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-signed").click()]);
  const bytes = readFileSync(await zip.path());
  assert.equal(bytes.subarray(0, 2).toString(), "PK", "a zip archive");
  assert.match(zip.suggestedFilename(), /^audit-.*\.jsonl\.zip$/);
  await shot(page, "audit");
  assert.deepEqual(errors, []);
  await page.close();
  return { rows, jsonl: dl.suggestedFilename(), signed: zip.suggestedFilename() };
}

/** Every page renders at 1280×800 without errors; screenshots of each. */
export async function pages({ context, url, token }) {
  const { page, errors } = await newPage(context);
  await login(page, url, token);
  const visited = [];
  for (const [name, hash, heading] of [
    ["runs", "#/runs", "Runs"],
    ["governance", "#/governance", "Governance"],
    ["sources", "#/sources", "Sources"],
    ["jobs-all", "#/jobs", "Jobs"],
  ]) {
    await page.goto(`${url}/${hash}`);
    await page.getByRole("heading", { level: 1, name: heading }).waitFor();
    await page.locator(".placeholder[role=status]").first().waitFor({ state: "detached", timeout: 15000 }).catch(() => undefined);
    assert.equal(await page.locator("[role=alert]").count(), 0, `${name} shows no error`);
    await shot(page, name);
    visited.push(name);
  }
  // Keyboard: "g" then "l" opens the lineage page; the skip link reaches the content.
  await page.locator("body").click({ position: { x: 5, y: 5 } });
  await page.keyboard.press("g");
  await page.keyboard.press("l");
  await page.getByRole("heading", { level: 1, name: "Lineage" }).waitFor();
  await page.goto(`${url}/#/sources`);
  const sources = await apiGet(url, token, "/api/v1/sources");
  const sim = await page.locator('[data-testid="sources-table"] .tag-sim').count();
  assert.equal(sim, sources.filter((s) => s.simulator).length, "simulators are labelled");
  // The cluster panel: a SQLite gateway says it is one process syncing every enabled source.
  const cluster = await apiGet(url, token, "/api/v1/cluster");
  const single = await page.getByTestId("cluster-single").textContent();
  assert.equal(cluster.mode, "single");
  assert.match(single, /One process/);
  assert.ok(single.includes(`(${cluster.sources.length} sources)`), `cluster panel counts the sources: ${single}`);
  assert.equal(cluster.sources.length, sources.filter((s) => s.enabled).length);
  await page.goto(`${url}/#/governance`);
  await page.getByTestId("policy-roles").waitFor();
  const policy = await apiGet(url, token, "/api/v1/policy");
  const shownRoles = await page.locator('[data-testid="policy-roles"] tbody tr').count();
  assert.equal(shownRoles, policy.roles.length, "every role in force is listed");
  assert.ok(await page.getByTestId("policy-bindings").getByText("data-team").count(), "bindings");
  assert.deepEqual(errors, []);
  await page.close();
  return { visited, cluster: { mode: cluster.mode, sources: cluster.sources.length, shown: single } };
}

/** The Dependencies page lists the demo's chains across tools with the firings the API has. */
export async function dependencies({ context, url, token }) {
  const { page, errors } = await newPage(context);
  await login(page, url, token);
  await page.goto(`${url}/#/dependencies`);
  await page.getByRole("heading", { level: 1, name: "Dependencies" }).waitFor();
  await page.getByTestId("dependencies").waitFor();
  const before = await apiGet(url, token, "/api/v1/dependencies?firings=10");
  const cards = await page.locator('[data-testid^="dependency-"][data-testid]:not([data-testid^="dependency-counts-"])').evaluateAll((els) =>
    els.map((e) => ({
      name: e.getAttribute("data-testid").slice("dependency-".length),
      text: e.textContent,
      firings: [...e.querySelectorAll("[data-firing]")].map((f) => f.getAttribute("data-firing")),
    })),
  );
  const after = await apiGet(url, token, "/api/v1/dependencies?firings=10");
  assert.deepEqual(cards.map((c) => c.name), after.map((d) => d.name), "one card per dependency");
  for (const c of cards) {
    const api = [before, after].map((l) => l.find((d) => d.name === c.name));
    // The demo keeps running: the page shows the API's firings just before or just after.
    assert.ok(
      api.some((d) => d && JSON.stringify(d.firings.map((f) => f.status)) === JSON.stringify(c.firings)),
      `${c.name}: page ${c.firings}, API ${api.map((d) => d && d.firings.map((f) => f.status))}`,
    );
    const d = api[1];
    assert.ok(c.text.includes(`${d.upstream.join(" + ")} → ${d.downstream}`), `${c.name} shows its chain`);
  }
  assert.ok(cards.some((c) => c.name === "books-to-finance-pack"), "the demo's chain across tools");
  await shot(page, "dependencies");
  assert.deepEqual(errors, []);
  await page.close();
  return { dependencies: cards.map((c) => c.name), firings: cards.map((c) => c.firings.length) };
}

/** Signing out forgets the token: a reload shows the login form again. */
export async function session({ context, url, token }) {
  const { page } = await newPage(context);
  await page.goto(`${url}/`);
  await page.getByLabel("API token").fill("acd_not-a-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  const err = await page.getByRole("alert").textContent();
  assert.match(err, /unknown API token/);
  await login(page, url, token);
  assert.ok(!page.url().includes(token), "the token is never in the address");
  await page.reload();
  await page.getByTestId("subject").waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("API token").waitFor();
  await page.reload();
  await page.getByLabel("API token").waitFor();
  await page.close();
  return { ok: true };
}

/** A run started by another run: its page says "caused by", the parent's page "caused",
 * and the run graph of the parent draws the API's runs and edges. */
export async function runLineage({ context, url, token }) {
  const listed = await apiGet(url, token, "/api/v1/runs?limit=300");
  let child = null;
  for (const r of listed.items.filter((x) => x.trigger === "upstream").slice(0, 40)) {
    const full = await apiGet(url, token, `/api/v1/runs/${r.uid}`);
    if (full.upstream.length) {
      child = full;
      break;
    }
  }
  assert.ok(child, "the demo has a run started by another run");
  const parent = child.upstream[0];
  const { page, errors } = await newPage(context);
  await login(page, url, token);
  await page.goto(`${url}/#/runs/${enc(child.uid)}`);
  const causedBy = page.getByTestId("caused-by");
  await causedBy.locator(`a[href="#/runs/${enc(parent.uid)}"]`).waitFor();
  assert.ok((await causedBy.textContent()).includes(parent.evidence), "the evidence of the edge is shown");
  await shot(page, "run-caused-by");

  await causedBy.locator(`a[href="#/runs/${enc(parent.uid)}"]`).click();
  const caused = page.getByTestId("caused");
  await caused.locator(`a[href="#/runs/${enc(child.uid)}"]`).waitFor();

  await page.getByRole("link", { name: "Open the run graph" }).click();
  await page.getByTestId("lineage-graph").waitFor();
  const data = await apiGet(url, token, `/api/v1/runs/${parent.uid}/lineage?depth=3`);
  await page.locator(".react-flow__node").first().waitFor();
  const ids = await page.locator(".react-flow__node").evaluateAll((els) => els.map((e) => e.getAttribute("data-id")));
  assert.deepEqual(ids.sort(), data.runs.map((r) => r.uid).sort());
  assert.ok(ids.includes(child.uid) && ids.includes(parent.uid));
  assert.equal(await page.locator(".react-flow__edge").count(), data.edges.length);
  await page.getByTestId("run-lineage-edges").getByText(parent.evidence.slice(0, 20)).first().waitFor();
  await shot(page, "run-lineage");
  // back to the job graph of the same page
  await page.getByRole("button", { name: "Job graph" }).click();
  await page.getByLabel("start from job").waitFor();
  assert.deepEqual(errors, []);
  await page.close();
  return { child: child.uid, parent: parent.uid, runs: ids.length, edges: data.edges.length };
}

export const ALL = { overview, jobs, lineage, runLineage, audit, pages, session, dependencies };

/** A viewer of one domain sees only that domain and is offered no action. */
export async function viewer({ context, url, viewerToken }) {
  assert.ok(viewerToken, "the viewer scenario needs a viewer token");
  const { page, errors } = await newPage(context);
  await login(page, url, viewerToken);
  const me = await apiGet(url, viewerToken, "/api/v1/me");
  assert.equal(me.can.trigger, false);
  const ov = await apiGet(url, viewerToken, "/api/v1/overview");
  await page.getByTestId("kpi-jobs").filter({ hasText: String(ov.jobs) }).waitFor();
  const visible = await apiGet(url, viewerToken, "/api/v1/jobs?limit=1000");
  const domains = new Set(visible.items.map((j) => j.domain));
  assert.deepEqual([...domains], ["platform"]);

  await page.goto(`${url}/#/jobs`);
  await page.getByTestId("jobs-table").waitFor();
  const options = await page.locator("#f-source option").allTextContents();
  const sources = await apiGet(url, viewerToken, "/api/v1/sources");
  assert.equal(options.length, sources.length + 1, "only visible sources are offered");

  const job = visible.items[0];
  await page.goto(`${url}/#/jobs/${enc(job.uid)}`);
  await page.getByTestId("job-title").waitFor();
  await page.getByText("You may not take any action").waitFor();
  assert.equal(await page.locator('[data-testid^="action-"]').count(), 0);

  await page.goto(`${url}/#/jobs/${enc("demo-etl/ingest_orders")}`);
  await page.getByRole("alert").filter({ hasText: "Not found" }).waitFor();

  await page.goto(`${url}/#/audit`);
  await page.getByRole("heading", { name: "Audit", level: 1 }).waitFor();
  assert.equal(await page.getByTestId("export-signed").count(), 0);
  assert.equal(await page.getByTestId("verify").count(), 0);
  await shot(page, "viewer-job");
  // The only console error allowed is the 404 of the job outside the viewer's domain.
  assert.ok(errors.every((e) => /404/.test(e)), errors.join("\n"));
  await page.close();
  return { jobs: ov.jobs, domains: [...domains] };
}

ALL.viewer = viewer;

/** Four-eyes: another person's held trigger is approved in the Governance page and runs. */
export async function approval({ context, url, viewerToken: approverToken }) {
  assert.ok(approverToken, "the approval scenario needs an approver token");
  const { page, errors } = await newPage(context);
  await login(page, url, approverToken);
  const pending = await apiGet(url, approverToken, "/api/v1/approvals?status=pending");
  assert.ok(pending.length >= 1, "a request is waiting");
  const req = pending[0];
  await page.goto(`${url}/#/governance`);
  const row = page.getByTestId("approvals").locator("tbody tr").filter({ hasText: req.job_uid }).first();
  await row.waitFor();
  await row.getByRole("button", { name: "Approve" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Reason (audited)").fill("checked the backfill window");
  await dialog.getByRole("button", { name: "Approve" }).click();
  await page.getByRole("status").filter({ hasText: `Request #${req.id} approved.` }).waitFor();
  await row.filter({ hasText: "approved" }).waitFor();
  await shot(page, "governance-approved");
  assert.deepEqual(errors, []);
  await page.close();
  return { id: req.id };
}

ALL.approval = approval;

/** Every page at a desktop width (1440 px) and a phone width (414 px): screenshots of each
 *  (layout-WIDTH-PAGE.png) and the layout facts a user notices, measured in the page. */
export async function layout({ context, url, token }) {
  const { page, errors } = await newPage(context);
  await login(page, url, token);
  const jobs = await apiGet(url, token, "/api/v1/jobs?limit=1000");
  const run = (await apiGet(url, token, "/api/v1/runs?limit=1")).items[0];
  const PAGES = [
    ["overview", "#/", "Overview"],
    ["jobs", "#/jobs", "Jobs"],
    ["job", `#/jobs/${enc("demo-etl/finance_report")}`, null],
    ["runs", "#/runs", "Runs"],
    ["run", `#/runs/${enc(run.uid)}`, null],
    ["lineage", `#/lineage?job=${enc("demo-etl/finance_report")}&depth=3`, "Lineage"],
    ["governance", "#/governance", "Governance"],
    ["audit", "#/audit", "Audit"],
    ["sources", "#/sources", "Sources"],
  ];
  const facts = {};
  for (const width of [1440, 414]) {
    await page.setViewportSize({ width, height: width === 1440 ? 900 : 896 });
    const f = (facts[width] = { pages: {} });
    for (const [name, hash, heading] of PAGES) {
      await page.goto(`${url}/${hash}`);
      if (heading) await page.getByRole("heading", { level: 1, name: heading }).waitFor();
      else await page.locator("main h1").first().waitFor();
      await page.locator(".placeholder[role=status]").first().waitFor({ state: "detached", timeout: 15000 }).catch(() => undefined);
      if (name === "lineage") await page.locator(".react-flow__node").first().waitFor();
      if (name === "jobs") await page.getByTestId("jobs-table").waitFor();
      await page.waitForTimeout(300);
      const m = await page.evaluate(() => {
        const doc = document.documentElement;
        return {
          pageScrollsSideways: doc.scrollWidth > window.innerWidth + 1,
          alerts: document.querySelectorAll("[role=alert]").length,
        };
      });
      f.pages[name] = m;
      await shot(page, `layout-${width}-${name}`);
    }

    // The jobs table: at 1440 px it fits its box (no sideways scroll, every column shown);
    // at 414 px it scrolls sideways inside its box with the job column kept in view.
    await page.goto(`${url}/#/jobs`);
    await page.getByTestId("jobs-table").waitFor();
    f.jobsTable = await page.evaluate(() => {
      const box = document.querySelector(".table-scroll");
      const table = box.querySelector("table");
      const ths = [...table.querySelectorAll("thead th")];
      const boxRect = box.getBoundingClientRect();
      const shown = ths.filter((th) => {
        const r = th.getBoundingClientRect();
        return r.left >= boxRect.left - 1 && r.left + 30 <= boxRect.right;
      }).length;
      const first = table.querySelector("tbody tr td");
      const cut = [...table.querySelectorAll("tbody td")].filter((td) => td.scrollWidth > td.clientWidth + 1);
      return {
        tableWidth: Math.round(table.getBoundingClientRect().width),
        boxWidth: Math.round(box.clientWidth),
        scrollsSideways: box.scrollWidth > box.clientWidth + 1,
        columns: ths.length,
        columnsInView: shown,
        firstColumnSticky: getComputedStyle(first).position === "sticky",
        cutCellsWithoutTooltip: cut.filter((td) => !td.title).length,
        cutCells: cut.length,
      };
    });
    if (width === 414) {
      // Scrolled sideways, the job column stays at the left edge.
      f.jobsTable.firstColumnAfterScroll = await page.evaluate(() => {
        const box = document.querySelector(".table-scroll");
        box.scrollLeft = 400;
        const td = box.querySelector("tbody tr td");
        return Math.round(td.getBoundingClientRect().left - box.getBoundingClientRect().left);
      });
    }

    // The sidebar (or, narrow, the menu bar) at the bottom of a long page.
    await page.goto(`${url}/#/governance`);
    await page.getByTestId("policy-roles").waitFor();
    await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
    await page.waitForTimeout(200);
    await shot(page, `layout-${width}-governance-bottom`);
    f.sidebar = await page.evaluate(() => {
      const nav = document.querySelector(".sidebar");
      const r = nav.getBoundingClientRect();
      const atBottomLeft = document.elementFromPoint(8, window.innerHeight - 4);
      const shellBg = getComputedStyle(document.querySelector(".shell")).backgroundImage;
      return {
        pageTallerThanWindow: document.documentElement.scrollHeight > window.innerHeight + 50,
        top: Math.round(r.top),
        bottom: Math.round(r.bottom),
        width: Math.round(r.width),
        windowHeight: window.innerHeight,
        bottomLeftIsSidebar: !!atBottomLeft?.closest(".sidebar"),
        shellPaintsSidebarColumn: shellBg.includes("gradient"),
        navVisible: getComputedStyle(document.querySelector("#nav-list")).display !== "none",
        toggleVisible: getComputedStyle(document.querySelector(".nav-toggle")).display !== "none",
      };
    });
    if (width === 414) {
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.getByRole("button", { name: /Menu/ }).click();
      await page.locator("#nav-list").waitFor({ state: "visible" });
      await shot(page, "layout-414-menu-open");
      await page.locator("#nav-list").getByRole("link", { name: "Sources" }).click();
      await page.getByRole("heading", { level: 1, name: "Sources" }).waitFor();
      f.menuClosesAfterNavigation = !(await page.locator("#nav-list").isVisible());
    }

    // Lineage: the picker searches every job on the server; no edge text overlaps; the
    // graph fills its canvas; node names in the panel are whole.
    await page.goto(`${url}/#/lineage`);
    const box = page.getByRole("combobox", { name: "start from job" });
    const target = jobs.items[jobs.items.length - 1];
    await box.fill(target.name);
    await page.getByRole("option", { name: new RegExp(target.uid.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) }).first().click();
    await page.waitForFunction((uid) => decodeURIComponent(location.hash).includes(uid), target.uid);
    await page.goto(`${url}/#/lineage?job=${enc("demo-etl/finance_report")}&depth=3`);
    await page.locator(".react-flow__node").first().waitFor();
    await page.waitForTimeout(500);
    f.lineage = await page.evaluate(() => {
      const canvas = document.querySelector("[data-testid=lineage-graph]").getBoundingClientRect();
      const nodes = [...document.querySelectorAll(".react-flow__node")].map((n) => n.getBoundingClientRect());
      const left = Math.min(...nodes.map((r) => r.left));
      const right = Math.max(...nodes.map((r) => r.right));
      const top = Math.min(...nodes.map((r) => r.top));
      const bottom = Math.max(...nodes.map((r) => r.bottom));
      const cutNames = [...document.querySelectorAll(".node-list button")].filter(
        (b) => b.scrollWidth > b.clientWidth + 1,
      ).length;
      const overlaps = [];
      for (let i = 0; i < nodes.length; i++)
        for (let j = i + 1; j < nodes.length; j++) {
          const a = nodes[i];
          const b = nodes[j];
          if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) overlaps.push([i, j]);
        }
      return {
        edgeTexts: document.querySelectorAll(".react-flow__edge-text, .react-flow__edge-textwrapper").length,
        fillWidth: +((right - left) / canvas.width).toFixed(2),
        fillHeight: +((bottom - top) / canvas.height).toFixed(2),
        canvasHeight: Math.round(canvas.height),
        nodesOutside: nodes.filter((r) => r.left < canvas.left - 1 || r.right > canvas.right + 1 || r.top < canvas.top - 1 || r.bottom > canvas.bottom + 1).length,
        overlappingNodes: overlaps.length,
        cutNames,
      };
    });
  }

  // The audit page of the demo shows the demo's own actions (first start).
  await page.setViewportSize({ width: 1440, height: 900 });
  await page.goto(`${url}/#/audit`);
  await page.getByTestId("audit-table").waitFor();
  const auditText = await page.getByTestId("audit-table").textContent();
  facts.auditShows = ["dana", "priya", "trigger", "approve", "pause"].filter((w) => auditText.includes(w));
  assert.deepEqual(errors, []);
  await page.close();
  return facts;
}

ALL.layout = layout;
