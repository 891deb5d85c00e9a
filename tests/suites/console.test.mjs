// The web console at /console in a real headless Chromium against a real `twh serve`: sign in
// with an API key, see stock, adjust it (confirmed with the exact change), see a change made
// through the API appear live, register a webhook and replay its dead delivery, run an import
// (dry run row by row, then for real), move a purchase order through a transition, and the
// operator suspending a tenant whose key then stops working. Two tenants never see each other's
// data; without a session only the sign-in page and its assets are served. A screenshot of each
// screen lands in tests/output/.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { client, waitFor } from "../lib/api.mjs";
import { startReceiver } from "../lib/receiver.mjs";
import { startServer } from "../lib/server.mjs";

const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const output = new URL("../output/", import.meta.url).pathname;
const skip = !existsSync(executablePath) && !process.env.CI && `no browser at ${executablePath}`;
const ADMIN_TOKEN = "console-suite-admin-token-0123456789abcdef";
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

let server;
let browser;
let receiver;
let api;
let other; // a second tenant: { apiKey, tenantId }
const problems = [];

before(async () => {
  if (skip) return;
  mkdirSync(output, { recursive: true });
  receiver = await startReceiver();
  server = await startServer({
    env: {
      TWH_ADMIN_TOKEN: ADMIN_TOKEN,
      TWH_WEBHOOK_ALLOW_PRIVATE_TARGETS: "true",
      // Two attempts, then DEAD: the dead letter the console replays.
      TWH_WEBHOOK_RETRY_SCHEDULE: "0,0.2",
    },
  });
  api = client(server);
  const operator = client(server, ADMIN_TOKEN);
  const created = await operator.mutate(
    "createTenant",
    `mutation($input: CreateTenantInput!) { createTenant(input: $input) { apiKey tenant { id } userErrors { code field message } } }`,
    { input: { name: "Second shop" } },
  );
  other = { apiKey: created.apiKey, tenantId: created.tenant.id };
  browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await receiver?.close();
});

/** A fresh browser context (its own cookies) with a page that records errors and CSP reports. */
async function newPage({ width = 1400, height = 900 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error" && !/status of 40[13]/.test(message.text())) problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(error.message));
  return { context, page };
}

async function signIn(page, secret, { operator = false } = {}) {
  await page.goto(`${server.url}/console/`);
  if (operator) await page.getByLabel(/platform operator/i).check();
  await page.getByLabel(operator ? "Admin token" : "API key", { exact: true }).fill(secret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

const levelRow = (page, sku, location) => page.locator(`tr[data-level="${sku}@${location}"]`);
const cell = (row, state) => row.locator(`td[data-state="${state}"]`);

async function level(sku, locationCode) {
  const data = await api.gql(
    `query($sku: String!, $loc: String!) { stockLevel(sku: $sku, locationCode: $loc) { available onHand } }`,
    { sku, loc: locationCode },
  );
  return data.stockLevel;
}

test("without a session only the sign-in page and its assets are served", { skip }, async () => {
  const page = await fetch(`${server.url}/console/stock`);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /assets\/console\.js/);
  assert.doesNotMatch(html, /MUG-12OZ/, "the page itself holds no data");
  assert.match(page.headers.get("content-security-policy"), /frame-ancestors 'none'/);
  assert.equal((await fetch(`${server.url}/console/assets/console.js`)).status, 200);
  assert.equal((await fetch(`${server.url}/console/session`)).status, 401);
  const graphql = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: "{ stockLevels(first: 1) { nodes { sku } } }" }),
  });
  const body = await graphql.json();
  assert.equal(body.errors?.[0]?.extensions?.code, "UNAUTHENTICATED");

  const { context, page: browserPage } = await newPage();
  await browserPage.goto(`${server.url}/console/stock`);
  await browserPage.getByRole("heading", { name: /sign in/i }).waitFor();
  assert.equal(await browserPage.locator("table").count(), 0);
  await browserPage.screenshot({ path: `${output}console-sign-in.png` });
  // A wrong key is refused with its code, and nothing else appears.
  await browserPage.getByLabel("API key", { exact: true }).fill("twh_test_not_a_real_key");
  await browserPage.getByRole("button", { name: "Sign in" }).click();
  await browserPage.getByRole("alert").getByText("UNAUTHENTICATED").waitFor();
  await context.close();
});

test("a tenant signs in, sees stock, adjusts it with a confirmation, and sees API changes live", { skip }, async () => {
  const { context, page } = await newPage();
  await signIn(page, server.apiKey);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "twh_console");
  assert.ok(session, "the session is a cookie");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
  assert.equal(await page.evaluate(() => document.cookie.includes("twh_console")), false, "scripts cannot read it");

  const row = levelRow(page, "MUG-12OZ", "WH-MAIN");
  await row.waitFor();
  const before = await level("MUG-12OZ", "WH-MAIN");
  assert.equal(await cell(row, "available").textContent(), String(before.available));
  await page.screenshot({ path: `${output}console-stock.png` });

  // Adjust +5 through the dialog; the confirmation states the exact change.
  await page.getByRole("button", { name: "Adjust", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: "Adjust stock" });
  await dialog.getByLabel("SKU").fill("MUG-12OZ");
  await dialog.getByLabel("Location").fill("WH-MAIN");
  await dialog.getByLabel(/Change/).fill("5");
  await dialog.getByRole("button", { name: "Review" }).click();
  const confirm = page.getByRole("dialog", { name: "Confirm the change" });
  await confirm
    .getByText(`AVAILABLE of MUG-12OZ at WH-MAIN: +5 (${before.available} → ${before.available + 5}), reason CORRECTION`)
    .waitFor();
  await page.screenshot({ path: `${output}console-stock-confirm.png` });
  await confirm.getByRole("button", { name: "Confirm" }).click();
  await dialog.getByRole("status").getByText(/Done/).waitFor();
  await dialog.getByRole("button", { name: "Close" }).click();
  assert.equal((await level("MUG-12OZ", "WH-MAIN")).available, before.available + 5);
  await waitFor("the row to show the adjustment", () => cell(row, "available").textContent(), (t) => t === String(before.available + 5));

  // A change made through the API appears without a reload.
  const started = Date.now();
  await api.receive("MUG-12OZ", "WH-MAIN", 7);
  await waitFor(
    "the API's change to appear live",
    () => cell(row, "available").textContent(),
    (t) => t === String(before.available + 12),
    { timeoutMs: 5_000, intervalMs: 20 },
  );
  const latencyMs = Date.now() - started;
  assert.ok(latencyMs < 1_000, `the change appeared after ${latencyMs} ms (within a second)`);

  // The ledger of the level, with reasons and actors; why available is lower than on hand.
  await row.getByRole("button", { name: "MUG-12OZ" }).click();
  const ledger = page.getByRole("region", { name: "ledger of MUG-12OZ at WH-MAIN" });
  await ledger.getByRole("cell", { name: "CORRECTION" }).first().waitFor();
  await ledger.getByRole("cell", { name: "RECEIVED" }).first().waitFor();
  await ledger.getByText(/are available|lower than on hand/).waitFor();
  await page.screenshot({ path: `${output}console-ledger.png`, fullPage: true });

  // An integration's mistake, to show up among the recent errors.
  const refused = await api.gql(
    `mutation { adjustStock(input: { reason: CORRECTION, changes: [{ sku: "NO-SUCH-SKU", locationCode: "WH-MAIN", delta: 1 }] }) { userErrors { code message } } }`,
  );
  assert.equal(refused.adjustStock.userErrors[0].code, "UNKNOWN_SKU");

  // Keyboard first: the command palette goes to a screen.
  await page.keyboard.press("Control+k");
  await page.getByRole("dialog", { name: "Command palette" }).getByLabel("Go to").fill("devel");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Developers", level: 1 }).waitFor();
  await page.getByRole("region", { name: "usage" }).getByText(/projected/).waitFor();
  await page.getByRole("region", { name: "audit log" }).getByRole("cell", { name: "stock.adjust" }).first().waitFor();
  const recentErrors = page.getByRole("region", { name: "recent errors" });
  await waitFor(
    "the refused adjustment among the recent errors",
    async () => {
      await recentErrors.getByRole("button", { name: "Refresh" }).click();
      return recentErrors.locator('tr[data-error-code="UNKNOWN_SKU"]').count();
    },
    (n) => n === 1,
    { timeoutMs: 10_000, intervalMs: 300 },
  );
  await page.screenshot({ path: `${output}console-developers.png`, fullPage: true });

  // Usable at 360 px: nothing wider than the screen but the tables' own scrolling.
  await page.setViewportSize({ width: 360, height: 780 });
  await page.getByRole("link", { name: "Stock" }).click();
  await row.waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 360, `the page is ${overflow} px wide at 360`);
  await page.screenshot({ path: `${output}console-stock-360.png`, fullPage: true });
  await context.close();
});

test("a webhook is registered from the console and its dead delivery replayed", { skip }, async () => {
  let fixed = false;
  receiver.on("/console-hook", () => ({ status: fixed ? 200 : 500 }));
  const { context, page } = await newPage();
  await signIn(page, server.apiKey);
  await page.getByRole("link", { name: "Webhooks" }).click();
  const form = page.getByRole("form", { name: "register an endpoint" });
  await form.getByLabel("URL").fill(receiver.url("/console-hook"));
  await form.getByLabel(/Event types/).fill("webhook.test");
  await form.getByRole("button", { name: "Register" }).click();
  await form.getByRole("status").getByText(/whsec_/).waitFor();
  const endpointRow = page.locator("tr[data-endpoint]").filter({ hasText: "/console-hook" });
  await endpointRow.getByRole("button", { name: "Send test event" }).click();
  await endpointRow.getByRole("status").getByText(/queued/).waitFor();

  const deliveries = page.getByRole("region", { name: "deliveries" });
  await waitFor(
    "the test delivery to end DEAD",
    async () => {
      await deliveries.getByRole("button", { name: "Refresh" }).click();
      return deliveries.locator('tr[data-status="DEAD"]').count();
    },
    (n) => n === 1,
    { timeoutMs: 15_000, intervalMs: 300 },
  );
  const dead = deliveries.locator('tr[data-status="DEAD"]');
  await dead.getByRole("button", { name: "Attempts" }).click();
  await deliveries.getByRole("cell", { name: "500" }).first().waitFor();
  await page.screenshot({ path: `${output}console-webhooks.png`, fullPage: true });

  fixed = true;
  const deliveryId = await dead.getAttribute("data-delivery");
  await dead.getByRole("button", { name: "Replay" }).click();
  await deliveries.getByText("Replayed 1 deliveries.").waitFor();
  await waitFor(
    "the replayed delivery to succeed",
    async () => {
      await deliveries.getByRole("button", { name: "Refresh" }).click();
      return page.locator(`tr[data-delivery="${deliveryId}"]`).getAttribute("data-status");
    },
    (s) => s === "SUCCEEDED",
    { timeoutMs: 15_000, intervalMs: 300 },
  );
  const succeeded = receiver.requests("/console-hook");
  assert.equal(succeeded.length, 3, "two failed attempts and the replay reached the receiver");
  await context.close();
});

test("an import runs from the console: dry run row by row, then applied, with live progress", { skip }, async () => {
  const { context, page } = await newPage();
  await signIn(page, server.apiKey);
  await page.getByRole("link", { name: "Imports and exports" }).click();
  const csv = "\uFEFFsku,name,unit\nCONSOLE-NEW-1,\"Console import, first\",each\nMUG-12OZ,Mug renamed by import,each\n,no sku,each\n";
  const form = page.getByRole("form", { name: "import a CSV" });
  await form.getByLabel("File").setInputFiles({ name: "items.csv", mimeType: "text/csv", buffer: Buffer.from(csv) });
  await form.getByLabel("When rows fail").selectOption("REJECT_FAILED_ROWS");
  await form.getByRole("button", { name: "Dry run" }).click();
  const job = page.locator('section[aria-label="job"]');
  await job.and(page.locator('[data-status="SUCCEEDED"]')).getByText("(dry run)").waitFor({ timeout: 20_000 });
  await job.getByRole("cell", { name: "CONSOLE-NEW-1" }).waitFor();
  await job.getByRole("table", { name: "Rows refused" }).waitFor();
  await page.screenshot({ path: `${output}console-import-dry-run.png`, fullPage: true });
  const dryRun = await api.gql(`{ item(sku: "CONSOLE-NEW-1") { id } }`);
  assert.equal(dryRun.item, null, "the dry run changed nothing");

  await form.getByRole("button", { name: "Run import" }).click();
  await job.and(page.locator('[data-status="SUCCEEDED"]')).filter({ hasNotText: "(dry run)" }).waitFor({ timeout: 60_000 });
  assert.equal(await job.locator('[data-count="created"]').textContent(), "1");
  assert.equal(await job.locator('[data-count="failed"]').textContent(), "1");
  const applied = await api.gql(`{ item(sku: "CONSOLE-NEW-1") { name } }`);
  assert.equal(applied.item.name, "Console import, first");
  await page.getByRole("button", { name: /Download .*error/i }).first().waitFor();
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: /Download .*error/i }).first().click();
  const saved = await (await download).path();
  assert.ok(saved, "the error report downloads");
  await page.screenshot({ path: `${output}console-import.png`, fullPage: true });
  await context.close();
});

test("an order moves through a transition from the console", { skip }, async () => {
  const created = await api.mutate(
    "createPurchaseOrder",
    `mutation($input: CreatePurchaseOrderInput!) { createPurchaseOrder(input: $input) { purchaseOrder { id number } userErrors { code field message } } }`,
    { input: { supplier: "Console supplier", lines: [{ sku: "MUG-12OZ", locationCode: "WH-MAIN", quantity: 4 }] } },
  );
  const { context, page } = await newPage();
  await signIn(page, server.apiKey);
  await page.getByRole("link", { name: "Orders" }).click();
  const row = page.getByRole("row").filter({ hasText: created.purchaseOrder.number });
  await row.getByRole("button", { name: "Submit" }).click();
  await row.getByRole("cell", { name: "ORDERED", exact: true }).waitFor();
  await row.getByRole("button", { name: "Receive all outstanding" }).click();
  await row.getByRole("cell", { name: "RECEIVED", exact: true }).waitFor();
  await page.screenshot({ path: `${output}console-orders.png`, fullPage: true });

  // From the ledger to the document behind a movement, and its movements.
  const number = created.purchaseOrder.number;
  await page.getByRole("link", { name: "Stock" }).click();
  await levelRow(page, "MUG-12OZ", "WH-MAIN").getByRole("button", { name: "MUG-12OZ" }).click();
  const ledger = page.getByRole("region", { name: "ledger of MUG-12OZ at WH-MAIN" });
  await ledger.getByRole("link", { name: number }).first().click();
  const documentPanel = page.getByRole("region", { name: "document" });
  await documentPanel.getByRole("heading", { name: `${number}: RECEIVED` }).waitFor();
  assert.equal(await documentPanel.getByRole("cell", { name: "RECEIVED", exact: true }).count() >= 1, true);
  assert.match(page.url(), /\/console\/orders\?document=PurchaseOrder:/);
  await page.screenshot({ path: `${output}console-document.png`, fullPage: true });
  await context.close();
});

test("two tenants see only their own data, and an operator's suspension stops a tenant at once", { skip }, async () => {
  const second = await newPage();
  await signIn(second.page, other.apiKey);
  await second.page.getByText(/No stock yet/).waitFor();
  // The first tenant's change never reaches the second tenant's live screen.
  await api.receive("MUG-12OZ", "WH-MAIN", 1);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  assert.equal(await second.page.locator("tr[data-level]").count(), 0);
  assert.equal(await second.page.getByText("MUG-12OZ").count(), 0);
  await second.page.screenshot({ path: `${output}console-second-tenant.png` });

  const operator = await newPage();
  await signIn(operator.page, ADMIN_TOKEN, { operator: true });
  await operator.page.getByRole("heading", { name: "Operators", level: 1 }).waitFor();
  await operator.page.getByRole("region", { name: "platform health" }).getByText("Outbox lag").waitFor();
  const row = operator.page.locator(`tr[data-tenant="${other.tenantId}"]`);
  await row.getByRole("button", { name: "Suspend" }).click();
  await operator.page.getByRole("dialog", { name: /Suspend Second shop/ }).getByRole("button", { name: "Confirm" }).click();
  await row.locator('td[data-status="suspended"]').waitFor();
  await operator.page.screenshot({ path: `${output}console-operators.png`, fullPage: true });

  const refused = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { authorization: `Bearer ${other.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ query: "{ usage { plan } }" }),
  });
  assert.equal((await refused.json()).errors?.[0]?.extensions?.code, "UNAUTHENTICATED", "the suspended tenant's key stops");
  // Its console session ends too: a reload lands on the sign-in page.
  await second.page.reload();
  await second.page.getByRole("heading", { name: /sign in/i }).waitFor();
  // An operator session is no tenant's credential.
  assert.equal(await operator.page.getByRole("link", { name: "Stock" }).count(), 0, "the operator is not offered tenant screens");
  await second.context.close();
  await operator.context.close();
});

/** axe-core's WCAG 2 A and AA rules on what the page shows now; returns the violations. */
async function accessibilityViolations(page, screen) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => globalThis.axe.run(document, { runOnly: ["wcag2a", "wcag2aa"] }));
  return result.violations.map(
    (v) => `${screen}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`,
  );
}

test("every screen passes axe-core's WCAG 2 A and AA rules, in light and dark", { skip }, async () => {
  const violations = [];
  for (const colorScheme of ["light", "dark"]) {
    const { context, page } = await newPage();
    await page.emulateMedia({ colorScheme });
    await page.goto(`${server.url}/console/`);
    await page.getByRole("heading", { name: /sign in/i }).waitFor();
    violations.push(...(await accessibilityViolations(page, `${colorScheme} sign-in`)));
    // The checker sees a violation when there is one: a button without a name.
    await page.evaluate(() => document.body.append(Object.assign(document.createElement("button"), { id: "planted" })));
    const planted = await accessibilityViolations(page, "planted");
    assert.ok(planted.some((v) => v.includes("button-name")), planted.join("\n"));
    await page.evaluate(() => document.getElementById("planted").remove());
    await signIn(page, server.apiKey);
    for (const [link, ready] of [
      ["Stock", () => levelRow(page, "MUG-12OZ", "WH-MAIN").waitFor()],
      ["Webhooks", () => page.getByRole("region", { name: "deliveries" }).waitFor()],
      ["Orders", () => page.getByRole("tablist").waitFor()],
      ["Imports and exports", () => page.getByRole("region", { name: "recent jobs" }).waitFor()],
      ["Developers", () => page.getByRole("region", { name: "audit log" }).getByRole("row").nth(1).waitFor()],
    ]) {
      await page.getByRole("link", { name: link }).click();
      await ready();
      violations.push(...(await accessibilityViolations(page, `${colorScheme} ${link}`)));
    }
    await page.keyboard.press("Control+k");
    await page.getByRole("dialog", { name: "Command palette" }).waitFor();
    violations.push(...(await accessibilityViolations(page, `${colorScheme} command palette`)));
    await context.close();
  }
  assert.deepEqual(violations, []);
});

test("no errors or Content-Security-Policy violations in any page", { skip }, () => {
  assert.deepEqual(problems, []);
});
