// Browser test of the dashboard against a running API that serves it:
// playwright-core driving Debian's Chromium (never a downloaded browser).
//
//   BASE_URL=http://127.0.0.1:8003 ADMIN_EMAIL=admin@inventiv.local \
//   ADMIN_PASSWORD=... node e2e/run.mjs
//
// Always: logs in, creates an organization, sets its color, activates the
// mock catalog items, sets a monthly token budget with a hard limit on the
// organization (later edited; invalid values shown refused, nothing
// stored), deploys a model through the dialog (the instance
// page shows its timeline), creates an API key, removes its limit and
// revokes it, revokes another session, edits a price in the catalog
// settings, checks the runtime models and usage pages (and the CSV export),
// the FinOps page (burn rate, series, CSV exports), the marketplace and
// statements pages (the billable statement's exports, last month closed by
// the owner), the provider settings (Scaleway credentials saved, the
// secret never shown back, Verify failing clearly, worker settings bounds,
// removal), the hosts page (a host registered with the key to authorize
// shown, bad bounds and a duplicate refused, verified unreachable,
// drained, undrained, its history, removed), the reconciliation page without credentials and the catalog
// sync refused without them, checks that the script is served compressed
// without a public source map and that a page load does not fetch
// /openapi.json, checks every page at 1440 × 900 and 390 × 844 (layout.mjs:
// nothing wider than the viewport, row actions on screen, the phone's
// drawer; axe-core: no serious or critical violation), opens every page and
// writes a screenshot of each into screenshots/. Any
// console error or uncaught exception in a page fails the run.
//
// With OUTBOX_DIR (the API's $INVENTIV_STATE_DIR/outbox, where mails go
// without SMTP): invites someone, accepts in a second browser profile (new
// account), and checks that a `user` sees no admin module.
//
// With FULL=1 (needs the orchestrator and the mock provider, as `make run`
// gives): waits for the deployment to reach progress 100 and `ready`, for
// the CPU and memory charts to show heartbeat samples, streams a chat in the
// playground (time to first token, tokens/s, stop), sends the same long
// prompt twice with an API key (the second answer reports cached prompt
// tokens, the usage page shows them on the key's line, the request log shows
// the key's two calls and the latency per model the model, the budget shows
// the tokens used), finds the model's
// instance and requests on the runtime models page, publishes the model as
// a priced offering, shares it with a second organization that accepts it on
// the marketplace and calls it with its own key, checks the consumer's
// statement debit (exactly Σ tokens × price) and the provider's credit,
// lists the instance's boot volume, reads the worker's log on the instance
// page (the bootstrap's output, the real agent through its relay; the
// download), sees the engine's line for a chat sent from another tab arrive
// live in the followed log, checks the instance page's metering
// check (the drift job's verdict: not enough traffic), terminates the instance (the volume
// shown deleted) and archives it. OUTBOX_DIR defaults to
// ../.local/outbox then.
//
// Other settings: CHROMIUM (default /usr/bin/chromium), SCREENSHOTS
// (default screenshots/), DEPLOY_TIMEOUT_SECS (default 300), HEADED=1.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { axeProblems, DESKTOP, layoutProblems, PHONE, phoneShellProblems } from './layout.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const BASE_URL = (process.env.BASE_URL ?? 'http://127.0.0.1:8003').replace(/\/$/, '');
const ADMIN_EMAIL = process.env.ADMIN_EMAIL ?? 'admin@inventiv.local';
const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD;
const FULL = process.env.FULL === '1';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = resolve(process.env.SCREENSHOTS ?? join(here, '..', 'screenshots'));
const OUTBOX = process.env.OUTBOX_DIR ?? (FULL ? resolve(here, '..', '..', '.local', 'outbox') : '');
const DEPLOY_TIMEOUT = Number(process.env.DEPLOY_TIMEOUT_SECS ?? 300) * 1000;
const RUN = Date.now().toString(36);

if (!ADMIN_PASSWORD) {
  console.error('e2e: set ADMIN_PASSWORD (and BASE_URL, ADMIN_EMAIL if not the defaults)');
  process.exit(2);
}

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let passed = 0;
let failed = 0;
let skipped = 0;
let shot = 0;
const profiles = [];

/** A fresh Chromium profile; console errors are collected per page. */
async function openBrowser(name) {
  const dir = mkdtempSync(join(tmpdir(), `inventiv-e2e-${name}-`));
  profiles.push(dir);
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: process.env.HEADED !== '1',
    args: process.env.HEADED === '1' ? ARGS.filter((a) => a !== '--headless') : ARGS,
    viewport: DESKTOP,
    permissions: ['clipboard-read', 'clipboard-write'],
    baseURL: BASE_URL,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`${name} console: ${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => errors.push(`${name} exception: ${err.message}`));
  page.on('dialog', (dialog) => void dialog.accept());
  return { context, page, errors, name };
}

/**
 * Runs one step; `allow` lists console errors the step expects (e.g. the
 * browser's own "Failed to load resource" line for a 404 it asks for).
 */
async function step(b, title, fn, { allow = [] } = {}) {
  const before = b.errors.length;
  const started = Date.now();
  try {
    await fn();
    const unexpected = b.errors.slice(before).filter((e) => !allow.some((re) => re.test(e)));
    if (unexpected.length) throw new Error(`console errors:\n    ${unexpected.join('\n    ')}`);
    passed += 1;
    console.log(`ok   ${title} (${Date.now() - started} ms)`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL ${title}: ${err instanceof Error ? err.message : err}`);
    await screenshot(b.page, `FAILED-${title}`).catch(() => undefined);
  }
  b.errors.length = before;
}

function skip(title, why) {
  skipped += 1;
  console.log(`skip ${title}: ${why}`);
}

async function screenshot(page, name) {
  shot += 1;
  const file = join(SHOTS, `${String(shot).padStart(2, '0')}-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.png`);
  await page.evaluate(() => window.scrollTo(0, 0)).catch(() => undefined);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
async function until(what, check, timeoutMs = 15_000, everyMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

/** `text` as a literal in a regular expression. */
function escapeRe(text) {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

async function heading(page, text) {
  await page.getByRole('heading', { level: 1, name: text }).waitFor();
}

/** Visits a page of the app the way a person does: through its address. */
async function visit(b, path, title, name) {
  await b.page.goto(path);
  await heading(b.page, title);
  // Let the page's queries settle before the picture.
  await b.page.waitForLoadState('networkidle').catch(() => undefined);
  await b.page.getByRole('status', { name: /Loading/ }).waitFor({ state: 'detached' }).catch(() => undefined);
  await screenshot(b.page, name);
}

async function login(page, email, password) {
  await page.goto('/login');
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { level: 1, name: /^Hello/ }).waitFor();
}

/** The newest mail of the outbox whose text matches `re`; quoted-printable undone. */
function lastMail(re) {
  const files = readdirSync(OUTBOX)
    .filter((f) => f.endsWith('.eml'))
    .map((f) => join(OUTBOX, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  for (const f of files) {
    const text = readFileSync(f, 'utf8').replace(/\r/g, '').replace(/=\n/g, '').replace(/=3D/g, '=');
    if (re.test(text)) return text;
  }
  return null;
}

/** A separate API session (bearer token) working in the organization `org`. */
async function apiSession(org) {
  const call = async (token, method, path, body) => {
    const response = await fetch(`${BASE_URL}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    return response.status === 204 ? null : response.json();
  };
  const login = await fetch(`${BASE_URL}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  if (!login.ok) throw new Error(`login: ${login.status}`);
  let { access_token: token } = await login.json();
  const orgs = await call(token, 'GET', '/organizations');
  const target = orgs.find((o) => o.name === org);
  if (!target) throw new Error(`no organization ${org}`);
  ({ access_token: token } = await call(token, 'PUT', '/organizations/current', { organization_id: target.id }));
  return (method, path, body) => call(token, method, path, body);
}

async function switchOn(page, name) {
  const toggle = page.getByRole('switch', { name });
  await toggle.waitFor();
  if (await toggle.isChecked()) return;
  await toggle.click();
  await until(`${name} on`, () => toggle.isChecked());
}

/** A decimal string as an integer count of 10^-`places` (exact, no float). */
function scaled(decimal, places = 12) {
  const [int, frac = ''] = decimal.split('.');
  if (!/^\d+$/.test(int) || !/^\d*$/.test(frac) || frac.length > places) throw new Error(`not a decimal: ${decimal}`);
  return BigInt(int + frac.padEnd(places, '0'));
}

/** Runs `call` (an apiSession call) and requires it to be refused with `status`. */
async function refused(status, call) {
  try {
    await call();
  } catch (err) {
    if (new RegExp(`: ${status} `).test(err.message)) return;
    throw err;
  }
  throw new Error(`accepted, expected a ${status}`);
}

/** The organization budget's card on the budgets page. */
function budgetCard(page) {
  return page.getByRole('region', { name: /^Organization · \d{4}-\d{2}$/ });
}

/** The tokens the organization budget's card shows used, and its limit. */
async function budgetTokens(page) {
  const text = (await budgetCard(page).locator('.budget-meter-head span').first().textContent()) ?? '';
  const m = /^(\d+) of (\d+)/.exec(text.trim());
  if (!m) throw new Error(`no "used of limit" on the budget: ${text}`);
  return { used: Number(m[1]), limit: Number(m[2]) };
}

/** Makes `orgId` the browser's current organization through the switcher. */
async function switchTo(page, orgId, name) {
  await page.goto('/');
  await heading(page, /^Hello/);
  await page.getByRole('combobox', { name: 'Organization' }).selectOption(orgId);
  await page.getByRole('note', { name: 'Current workspace' }).getByText(name).waitFor();
  await heading(page, /^Hello/);
}

mkdirSync(SHOTS, { recursive: true });
for (const f of readdirSync(SHOTS)) if (f.endsWith('.png')) rmSync(join(SHOTS, f));

const admin = await openBrowser('admin');
const { page } = admin;
const orgName = `E2E ${RUN}`;
const invitee = `e2e-${RUN}@example.com`;
let instanceId = null;
let modelId = 'Qwen/Qwen2.5-0.5B-Instruct';
const BUDGET_TOKENS = 1_000_000;
// The calls of the cached-tokens step: the key's name, Σ cached tokens and Σ tokens.
let repeated = null;

try {
  await step(admin, 'login page (axe-core: no serious or critical violation, at 1440 and 390 px)', async () => {
    const problems = [];
    try {
      for (const viewport of [PHONE, DESKTOP]) {
        await page.setViewportSize(viewport);
        await page.goto('/login');
        await heading(page, 'Log in');
        problems.push(...[...(await layoutProblems(page)), ...(await axeProblems(page))].map((p) => `${viewport.width} px: ${p}`));
      }
    } finally {
      await page.setViewportSize(DESKTOP);
    }
    if (problems.length) throw new Error(problems.join('\n    '));
    await screenshot(page, 'login');
  });

  await step(admin, 'wrong password is refused', async () => {
    await page.getByLabel('E-mail').fill(ADMIN_EMAIL);
    await page.getByLabel('Password').fill('not-the-password-at-all');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').waitFor();
  }, { allow: [/status of 401/] });

  await step(admin, 'log in', async () => {
    await login(page, ADMIN_EMAIL, ADMIN_PASSWORD);
    await screenshot(page, 'dashboard-personal');
  });

  await step(admin, 'the script is served compressed, its source map is not public, a page load asks nothing of /openapi.json', async () => {
    const asked = [];
    const onRequest = (request) => asked.push(new URL(request.url()).pathname);
    page.on('request', onRequest);
    try {
      await page.goto('/');
      await heading(page, /^Hello/);
      await page.getByLabel('Versions').getByText(/^API v\d/).waitFor();
      await page.waitForLoadState('networkidle').catch(() => undefined);
    } finally {
      page.off('request', onRequest);
    }
    if (asked.includes('/openapi.json')) throw new Error('the page load fetched /openapi.json');
    const src = await page.locator('script[type="module"][src]').first().getAttribute('src');
    const script = await fetch(new URL(src ?? '', BASE_URL), { headers: { 'accept-encoding': 'br, gzip' } });
    const encoding = script.headers.get('content-encoding');
    const size = (await script.arrayBuffer()).byteLength;
    if (script.status !== 200 || !/^(gzip|br)$/.test(encoding ?? '')) throw new Error(`${src}: ${script.status}, content-encoding ${encoding}`);
    const map = await fetch(new URL(`${src}.map`, BASE_URL));
    if (map.status !== 404) throw new Error(`${src}.map answers ${map.status}`);
    console.log(`     ${src}: ${encoding}, ${size} bytes once decoded; no source map`);
  });

  await step(admin, 'create an organization and switch to it', async () => {
    await page.getByRole('button', { name: 'New organization' }).click();
    const dialog = page.getByRole('dialog', { name: 'New organization' });
    await dialog.getByLabel('Name', { exact: true }).fill(orgName);
    await dialog.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('note', { name: 'Current workspace' }).getByText(orgName).waitFor();
    await heading(page, /^Hello/);
    const selected = await page.getByRole('combobox', { name: 'Organization' }).inputValue();
    if (!selected) throw new Error('the switcher shows no organization');
  });

  await step(admin, 'organization page: color the workspace', async () => {
    await visit(admin, '/organization', 'Organization', 'organization');
    await page.getByLabel('Sidebar color').fill('#0e7490');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved.').waitFor();
    const banner = page.getByRole('note', { name: 'Current workspace' });
    await until('the banner in the new color', async () =>
      (await banner.evaluate((el) => getComputedStyle(el).backgroundColor)) === 'rgb(14, 116, 144)',
    );
    await screenshot(page, 'organization-colored');
  });

  await step(admin, "dashboard: a fresh organization's first-run checklist, nothing done", async () => {
    await visit(admin, '/', /^Hello/, 'dashboard');
    const start = page.getByRole('region', { name: 'Get started' });
    await start.getByText('0 of 4 done').waitFor();
    for (const item of ['Activate a path', 'Deploy a model', 'Create an API key', 'Call it']) {
      await start.getByRole('listitem', { name: `${item}: to do` }).waitFor();
    }
  });

  await step(admin, 'budgets: a monthly token budget with a hard limit on the organization', async () => {
    await visit(admin, '/budgets', 'Budgets', 'budgets-empty');
    await page.getByText('No budget yet.').waitFor();
    await page.getByRole('button', { name: 'New budget' }).click();
    const dialog = page.getByRole('dialog', { name: 'New budget' });
    await dialog.getByRole('combobox', { name: 'Scope' }).selectOption('organization');
    await dialog.getByLabel('Tokens per month').fill(String(BUDGET_TOKENS));
    await dialog.getByLabel('Alert thresholds (%)').fill('50, 80, 100');
    const hard = dialog.getByRole('checkbox', { name: /Hard limit/ });
    if (!(await hard.isChecked())) await hard.check();
    await screenshot(page, 'budget-dialog');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'hidden' });
    const card = budgetCard(page);
    const bar = card.getByRole('progressbar', { name: 'Tokens used' });
    await bar.waitFor();
    if ((await bar.getAttribute('aria-valuenow')) !== '0') throw new Error(`a new organization's budget is ${await bar.getAttribute('aria-valuenow')} % used`);
    const { used, limit } = await budgetTokens(page);
    if (used !== 0 || limit !== BUDGET_TOKENS) throw new Error(`budget shows ${used} of ${limit}`);
    await card.getByText('Alerts at 50, 80, 100 % · hard limit').waitFor();
    const stored = await (await page.request.get('/organizations/current/budgets')).json();
    if (stored.length !== 1 || stored[0].monthly_tokens !== BUDGET_TOKENS || !stored[0].hard_limit) throw new Error(`stored: ${JSON.stringify(stored)}`);
    await screenshot(page, 'budgets-created');
  });

  await step(admin, 'first run: the checklist opens the deploy dialog; the path not activated is activated in one click; the cost estimate; deploy', async () => {
    await page.goto('/');
    await page.getByRole('region', { name: 'Get started' }).getByRole('link', { name: 'Choose a path' }).click();
    await page.waitForURL(/\/instances(\?deploy=1)?$/);
    await heading(page, 'Instances');
    const dialog = page.getByRole('dialog', { name: 'Deploy a model' });
    await dialog.waitFor();
    await dialog.getByRole('combobox', { name: 'Provider' }).selectOption('mock');
    await dialog.getByRole('combobox', { name: 'Zone' }).selectOption('mock-zone-1');
    const typeSelect = dialog.getByRole('combobox', { name: 'Instance type' });
    await until('the instance types', async () => (await typeSelect.locator('option').count()) > 1);
    await typeSelect.selectOption((await typeSelect.locator('option', { hasText: 'mock-1gpu-24g' }).first().getAttribute('value')) ?? '');
    const modelSelect = dialog.getByRole('combobox', { name: 'Model', exact: true });
    await until('the compatible models', async () => (await modelSelect.locator('option', { hasText: 'Qwen2.5 0.5B' }).count()) > 0);
    // The model is mandatory: no deploy without it.
    if (await dialog.getByRole('button', { name: 'Deploy' }).isEnabled()) throw new Error('Deploy enabled without a model');
    const option = modelSelect.locator('option', { hasText: 'Qwen2.5 0.5B' }).first();
    await modelSelect.selectOption((await option.getAttribute('value')) ?? '');
    // A fresh organization: nothing of the path is activated; one click
    // switches on both sides of the four items.
    const gaps = dialog.getByRole('group', { name: 'Not activated' });
    const missing = (await gaps.textContent()) ?? '';
    for (const item of ['Mock (local processes)', 'Mock zone 1', 'mock-1gpu-24g', 'Qwen2.5 0.5B Instruct']) {
      if (!missing.includes(`${item} (technical and economic)`)) throw new Error(`not said missing: ${item} in "${missing}"`);
    }
    if (await dialog.getByRole('button', { name: 'Deploy' }).isEnabled()) throw new Error('Deploy enabled on a path not activated');
    await screenshot(page, 'deploy-dialog-not-activated');
    await dialog.getByRole('button', { name: 'Activate this path' }).click();
    await gaps.waitFor({ state: 'detached' });
    const cost = (await dialog.getByRole('group', { name: 'Cost estimate' }).textContent()) ?? '';
    if (!/\d EUR\/h .*\d EUR\/day .*\d EUR\/month/.test(cost)) throw new Error(`cost estimate: ${cost}`);
    console.log(`     ${cost}`);
    await dialog.getByLabel('Name (optional)').fill(`e2e-${RUN}`);
    await screenshot(page, 'deploy-dialog');
    await dialog.getByRole('button', { name: 'Deploy' }).click();
    await page.waitForURL(/\/instances\/[0-9a-f-]{36}$/);
    instanceId = page.url().split('/').pop();
    await heading(page, `e2e-${RUN}`);
    await page.getByRole('progressbar', { name: 'Provisioning progress' }).waitFor();
    await screenshot(page, 'instance-timeline');
    await page.getByRole('region', { name: 'Volumes' }).waitFor();
  });

  if (FULL) {
    await step(admin, 'deployment reaches progress 100 and ready, live', async () => {
      // Still on the instance page opened by the deploy: record every value
      // the progress bar shows, with no reload, until ready.
      if (!page.url().endsWith(`/instances/${instanceId}`)) throw new Error('not on the new instance page');
      await page.evaluate(() => {
        window.__progress = [];
        const tick = () => {
          const v = document.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow');
          if (v !== undefined && v !== null && window.__progress.at(-1) !== Number(v)) window.__progress.push(Number(v));
          window.__progressTimer = requestAnimationFrame(tick);
        };
        tick();
      });
      await until('progress 100', async () => (await page.evaluate(() => window.__progress.at(-1))) === 100, DEPLOY_TIMEOUT, 200);
      await page.locator('.card').first().locator('.badge', { hasText: /^ready$/ }).waitFor({ timeout: DEPLOY_TIMEOUT });
      // A notice says so, on whatever page one is (here, the instance's).
      await page.getByRole('status', { name: 'Notifications' }).getByRole('link', { name: `e2e-${RUN} is ready` }).waitFor();
      const seen = await page.evaluate(() => window.__progress);
      console.log(`     progress seen: ${seen.join(' → ')}`);
      if (seen.length < 2) throw new Error(`the page never saw the progress move: ${seen.join(', ')}`);
      await page.getByText(/^WORKER_|^PROVIDER_|^HEALTH_CHECK/).first().waitFor();
      await screenshot(page, 'instance-ready');
    });

    await step(admin, 'instance observability: charts from the heartbeats', async () => {
      const cpu = page.getByRole('img', { name: /^CPU, latest:/ });
      // The agent's heartbeats carry CPU and memory samples (no GPU on this
      // machine, so the GPU charts rightly say "no data").
      await until('a CPU sample in the chart', async () => {
        if (/CPU: \d/.test((await cpu.getAttribute('aria-label')) ?? '')) return true;
        await page.reload();
        await heading(page, `e2e-${RUN}`);
        return false;
      }, 60_000, 3000);
      await page.getByRole('img', { name: /^Memory, latest: Memory: \d/ }).waitFor();
      await page.getByRole('img', { name: /^Requests per minute, latest:/ }).waitFor();
      await page.getByRole('region', { name: 'Observability' }).scrollIntoViewIfNeeded();
      await screenshot(page, 'instance-observability');
    });

    await step(admin, 'instance page: its volumes', async () => {
      // The mock provider creates a root volume with the server; the
      // orchestrator records it (boot) and resizes it to the model's size.
      const volumes = page.getByRole('table', { name: 'Volumes' });
      await volumes.getByRole('row', { name: /boot/ }).waitFor();
      const row = await volumes.getByRole('row', { name: /boot/ }).textContent();
      if (!/\d+ GB/.test(row ?? '') || !/attached/.test(row ?? '') || !/deleted/.test(row ?? '')) throw new Error(`boot volume row: ${row}`);
      await page.getByRole('region', { name: 'Volumes' }).scrollIntoViewIfNeeded();
      await screenshot(page, 'instance-volumes');
    });

    await step(admin, 'instance page: the worker log, through the relay (bootstrap, agent, engine lines; download)', async () => {
      // The bootstrap's output comes from the install steps of the action
      // log; the API reads the agent's /logs through the node's relay: the
      // agent logged its registration and its engine becoming ready.
      const panel = page.getByRole('region', { name: 'Logs' });
      const log = panel.getByRole('log', { name: 'Worker log' });
      await log.locator('.log-from-bootstrap', { hasText: /verified|installed in|agent healthy/ }).first().waitFor();
      await until('lines of the worker log', async () => {
        if (/register_ok|engine_ready/.test((await log.textContent().catch(() => '')) ?? '')) return true;
        await panel.getByRole('button', { name: 'Refresh' }).click();
        return false;
      }, 30_000, 1000);
      const [download] = await Promise.all([page.waitForEvent('download'), panel.getByRole('button', { name: 'Download' }).click()]);
      const saved = readFileSync((await download.path()) ?? '', 'utf8');
      if (!/ bootstrap info /.test(saved) || !/ agent info (register_ok|engine_ready)/.test(saved)) throw new Error(`the download lacks lines:\n${saved.slice(0, 400)}`);
      await panel.getByRole('checkbox', { name: 'Follow' }).check();
      await panel.getByText(/following/).waitFor();
      await panel.scrollIntoViewIfNeeded();
      await screenshot(page, 'instance-logs');
    });
  }

  await step(admin, 'catalog: the path activated in one click is on, both sides; another zone switched on here', async () => {
    await visit(admin, '/catalog', 'Catalog', 'catalog');
    for (const item of ['Mock (local processes)', 'Mock zone 1', 'mock-1gpu-24g', 'Qwen2.5 0.5B Instruct']) {
      for (const side of ['Technical', 'Economic']) {
        if (!(await page.getByRole('switch', { name: `${side} activation of ${item}` }).isChecked())) throw new Error(`${side} activation of ${item} is off`);
      }
    }
    await switchOn(page, 'Technical activation of Mock zone 2');
    await switchOn(page, 'Economic activation of Mock zone 2');
    await screenshot(page, 'catalog-activated');
  });

  await step(admin, 'instances table shows the new instance live', async () => {
    await visit(admin, '/instances', 'Instances', 'instances');
    await page.getByRole('link', { name: `e2e-${RUN}` }).waitFor();
    await page.getByRole('progressbar', { name: `Progress of e2e-${RUN}` }).waitFor();
    await page.getByText('● Live').waitFor();
  });

  await step(admin, 'instances table follows changes made elsewhere, live', async () => {
    // Another client (a script with a bearer token) deploys and terminates;
    // this page must show both without a reload, through the events stream.
    const other = await apiSession(orgName);
    const marker = await page.evaluate(() => (window.__e2eMarker = Math.random()));
    const deployed = await other('POST', '/deployments', {
      provider: 'mock',
      zone: 'mock-zone-1',
      instance_type: 'mock-1gpu-24g',
      model_id: 'Qwen/Qwen2.5-0.5B-Instruct',
      name: `e2e-live-${RUN}`,
    });
    const row = page.getByRole('row', { name: new RegExp(`e2e-live-${RUN}`) });
    await row.waitFor();
    await other('DELETE', `/instances/${deployed.id}`);
    await row.getByText(/^terminat(ing|ed)$/).waitFor();
    if ((await page.evaluate(() => window.__e2eMarker)) !== marker) throw new Error('the page was reloaded');
    await screenshot(page, 'instances-live');
  });

  await step(admin, 'instances table: hide a column, and it stays hidden', async () => {
    await page.getByText('Columns', { exact: true }).click();
    await page.getByRole('checkbox', { name: 'Zone', exact: true }).uncheck();
    await page.reload();
    await heading(page, 'Instances');
    await page.getByRole('table', { name: 'Instances' }).waitFor();
    const headers = await page.getByRole('columnheader').allTextContents();
    if (headers.some((h) => h.includes('Zone'))) throw new Error('the hidden column came back');
    await page.getByText('Columns', { exact: true }).click();
    await page.getByRole('checkbox', { name: 'Zone', exact: true }).check();
    await page.getByText('Columns', { exact: true }).click();
  });

  await step(admin, 'services: create one at zero through the dialog (cold), policy bounds refused, edited, paused live, deleted', async () => {
    // min 0: no replica is created and, without requests, none ever is: the
    // instances of the steps below are untouched.
    const name = `e2e-svc-${RUN}`;
    await visit(admin, '/services', 'Services', 'services-empty');
    await page.getByRole('button', { name: 'Create a service' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create a service' });
    await dialog.getByRole('combobox', { name: 'Provider' }).selectOption('mock');
    for (const zone of ['mock-zone-1', 'mock-zone-2']) {
      await dialog.getByRole('combobox', { name: 'Zone' }).selectOption(zone);
      const typeSelect = dialog.getByRole('combobox', { name: 'Instance type' });
      await until('the instance types', async () => (await typeSelect.locator('option', { hasText: 'mock-1gpu-24g' }).count()) > 0);
      await typeSelect.selectOption((await typeSelect.locator('option', { hasText: 'mock-1gpu-24g' }).first().getAttribute('value')) ?? '');
      await dialog.getByRole('button', { name: 'Add placement' }).click();
    }
    const placements = await dialog.getByRole('list', { name: 'Placements' }).getByRole('listitem').allTextContents();
    if (!(placements.length === 2 && placements[0].includes('mock-zone-1') && placements[1].includes('mock-zone-2'))) throw new Error(`placements: ${placements.join(' | ')}`);
    await dialog.getByRole('button', { name: 'Move placement 2 up' }).click();
    await dialog.getByRole('button', { name: 'Move placement 2 up' }).waitFor();
    if (!((await dialog.getByRole('list', { name: 'Placements' }).getByRole('listitem').first().textContent()) ?? '').includes('mock-zone-2')) throw new Error('the placements were not reordered');
    const modelSelect = dialog.getByRole('combobox', { name: 'Model', exact: true });
    await until('the compatible models', async () => (await modelSelect.locator('option', { hasText: 'Qwen2.5 0.5B' }).count()) > 0);
    await modelSelect.selectOption((await modelSelect.locator('option', { hasText: 'Qwen2.5 0.5B' }).first().getAttribute('value')) ?? '');
    await dialog.getByLabel('Name (optional)').fill(name);
    await dialog.getByLabel('Minimum replicas').fill('0');
    await dialog.getByLabel('Maximum replicas').fill('2');
    await dialog.getByLabel('Target outstanding per replica').fill('4');
    await screenshot(page, 'service-dialog');
    await dialog.getByRole('button', { name: 'Create', exact: true }).click();
    await page.waitForURL(/\/services\/[0-9a-f-]{36}$/);
    const serviceId = page.url().split('/').pop();
    await heading(page, name);
    await page.getByRole('region', { name: 'Status' }).getByText('cold', { exact: true }).waitFor();
    await page.getByRole('list', { name: 'Service timeline' }).getByText(/created/).first().waitFor();
    await screenshot(page, 'service-page');

    // Refused in the form (nothing sent), then a change the API takes.
    await page.getByRole('button', { name: 'Edit policy' }).click();
    const form = page.getByRole('form', { name: 'Edit the policy' });
    await form.getByLabel('Minimum replicas').fill('3');
    await form.getByRole('button', { name: 'Save policy' }).click();
    await form.getByText('Minimum replicas: at most the maximum (2)').waitFor();
    await form.getByLabel('Minimum replicas').fill('0');
    await form.getByLabel('Idle window (s)').fill('600');
    await form.getByRole('button', { name: 'Save policy' }).click();
    await page.getByRole('region', { name: 'Policy' }).getByText('600 s').waitFor();
    const stored = await (await page.request.get(`/services/${serviceId}`)).json();
    if (stored.idle_window_s !== 600 || stored.min_replicas !== 0 || stored.max_replicas !== 2) throw new Error(`stored: ${JSON.stringify(stored)}`);

    // In the list, cold; then paused by another client, live, without a reload.
    await page.goto('/services');
    await heading(page, 'Services');
    const row = page.getByRole('row', { name: new RegExp(name) });
    await row.getByText('cold', { exact: true }).waitFor();
    await row.getByText('0 / 0 (0–2)').waitFor();
    const marker = await page.evaluate(() => (window.__e2eMarker = Math.random()));
    const other = await apiSession(orgName);
    await other('POST', `/services/${serviceId}/pause`);
    await row.getByText('paused', { exact: true }).waitFor();
    if ((await row.getByText('cold', { exact: true }).count()) > 0) throw new Error('a paused service shown cold');
    if ((await page.evaluate(() => window.__e2eMarker)) !== marker) throw new Error('the page was reloaded');
    await screenshot(page, 'services');

    await page.getByRole('link', { name }).click();
    await heading(page, name);
    await page.getByRole('list', { name: 'Service timeline' }).getByText(/paused/).first().waitFor();
    await page.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('region', { name: 'Status' }).getByText(/^delet(ing|ed)$/).waitFor();
  });

  await step(admin, 'hosts: register one (the key to authorize shown, bounds refused first, a duplicate refused by the API), verify (unreachable), drain, undrain, history, remove', async () => {
    // 192.0.2.0/24 is TEST-NET-1 (documentation): nothing answers there.
    const label = `e2e-host-${RUN}`;
    await visit(admin, '/hosts', 'Hosts', 'hosts-empty');
    const open = async () => {
      await page.getByRole('button', { name: 'Register a host' }).click();
      const dialog = page.getByRole('dialog', { name: 'Register a host' });
      const key = dialog.getByLabel('Public key to authorize');
      await until('the key to authorize', async () => (await key.inputValue()).startsWith('ssh-ed25519 '));
      await dialog.getByLabel('Label', { exact: true }).fill(label);
      await dialog.getByLabel('SSH user', { exact: true }).fill('e2e');
      await dialog.getByLabel('Pool', { exact: true }).fill('e2e-rack-1');
      await dialog.getByLabel('GPUs', { exact: true }).fill('1');
      await dialog.getByLabel('GPU model', { exact: true }).fill('NVIDIA L4');
      await dialog.getByLabel('VRAM per GPU (MiB)', { exact: true }).fill('24576');
      await dialog.getByLabel('Hourly cost (EUR)', { exact: true }).fill('0.45');
      return dialog;
    };
    let dialog = await open();
    await dialog.getByLabel('Address', { exact: true }).fill('-oProxyCommand=x');
    await dialog.getByRole('button', { name: 'Register', exact: true }).click();
    await dialog.getByText('Address: an IP address or a DNS name').waitFor();
    await screenshot(page, 'host-register-refused');
    await dialog.getByLabel('Address', { exact: true }).fill('192.0.2.10');
    await dialog.getByRole('button', { name: 'Register', exact: true }).click();
    await dialog.waitFor({ state: 'hidden' });
    const row = page.getByRole('row', { name: new RegExp(escapeRe(label)) });
    await row.getByText('registered', { exact: true }).waitFor();
    await row.getByText('e2e@192.0.2.10:22').waitFor();
    await row.getByText('1 × NVIDIA L4 × 24 GiB').waitFor();
    await row.getByText('0.45 EUR/h').waitFor();

    dialog = await open();
    await dialog.getByLabel('Address', { exact: true }).fill('192.0.2.10');
    await dialog.getByRole('button', { name: 'Register', exact: true }).click();
    await dialog.getByRole('alert').getByText('192.0.2.10:22 is already registered in this organization').waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();

    // Nothing answers there: the verification answers, with the host unreachable and why.
    await row.getByRole('button', { name: `Verify ${label}` }).click();
    await row.getByText('unreachable', { exact: true }).waitFor({ timeout: 30_000 });
    await row.getByText('failed', { exact: true }).waitFor();
    await page.getByRole('status').getByText(`${label}:`).waitFor();
    await row.getByRole('button', { name: `Drain ${label}` }).click();
    await row.getByText('draining', { exact: true }).waitFor();
    await row.getByRole('button', { name: `Undrain ${label}` }).click();
    await row.getByText('unreachable', { exact: true }).waitFor();
    await screenshot(page, 'hosts');

    await row.getByRole('link', { name: label }).click();
    await heading(page, label);
    const history = page.getByRole('list', { name: 'Host history' });
    await until('the host history', async () => (await history.getByRole('listitem').count()) === 4);
    await page.getByRole('button', { name: `Remove ${label}` }).click();
    await page.getByRole('region', { name: 'Host', exact: true }).getByText('removed', { exact: true }).waitFor();
    await until('the removal in the history', async () => (await history.getByRole('listitem').count()) === 5);
    await screenshot(page, 'host');
  }, { allow: [/status of 409/] });

  if (FULL) {
    await step(admin, 'playground streams a chat', async () => {
      await visit(admin, '/playground', 'Playground', 'playground-empty');
      // The heading shows before the model list is fetched (a session
      // refresh, then /v1/models): counting the options at once raced that
      // fetch, and on a loaded machine lost it on every reload. Wait for the
      // list's answer (an option, or the hint that none is ready) first.
      const options = page.locator('datalist option');
      const none = page.getByText('No model is ready in this organization');
      await until('a ready model', async () => {
        await page.reload();
        await heading(page, 'Playground');
        await options.first().or(none).waitFor({ state: 'attached', timeout: 15_000 });
        return (await options.count()) > 0;
      }, 60_000, 2000);
      modelId = (await page.locator('datalist option').first().getAttribute('value')) ?? modelId;
      await page.getByLabel('Model', { exact: true }).fill(modelId);
      await page.getByLabel('Message').fill('Say hello in five words.');
      await page.getByRole('button', { name: 'Send' }).click();
      const ttft = page.locator('.stats dd').first();
      await until('the time to first token', async () => /ms$/.test((await ttft.textContent()) ?? ''), 60_000);
      await page.locator('.message-assistant').first().waitFor();
      await screenshot(page, 'playground-answer');
    });

    await step(admin, 'playground: stop a long answer', async () => {
      await page.getByLabel('Max tokens').fill('4000');
      await page.getByLabel('Message').fill('Count from 1 to 1000, one number a line.');
      await page.getByRole('button', { name: 'Send' }).click();
      // A fast engine (the mock one answers in microseconds) may finish
      // before anyone can press Stop: then there is nothing to stop.
      try {
        await page.getByRole('button', { name: 'Stop' }).click({ timeout: 2_000 });
        await page.getByRole('button', { name: 'Send' }).waitFor();
        console.log('     stopped mid-answer');
      } catch {
        await page.getByRole('button', { name: 'Send' }).waitFor();
        console.log('     the answer ended before Stop could be pressed (fast engine)');
      }
      if ((await page.getByRole('alert').count()) > 0) throw new Error(await page.getByRole('alert').first().textContent());
    });

    await step(admin, "instance page: the engine's lines appear live while following", async () => {
      // The instance page follows its log; a chat sent from another tab
      // makes the engine write a line, which arrives without a reload.
      await page.goto(`/instances/${instanceId}`);
      await heading(page, `e2e-${RUN}`);
      const panel = page.getByRole('region', { name: 'Logs' });
      const log = panel.getByRole('log', { name: 'Worker log' });
      await log.waitFor();
      await panel.getByRole('combobox', { name: 'Source' }).selectOption('engine');
      await panel.getByRole('checkbox', { name: 'Follow' }).check();
      const chats = () => log.locator('.log-from-engine', { hasText: 'POST /v1/chat/completions' }).count();
      const before = await chats();
      const other = await admin.context.newPage();
      try {
        await other.goto('/playground');
        await heading(other, 'Playground');
        await other.getByLabel('Model', { exact: true }).fill(modelId);
        await other.getByLabel('Message').fill('Say hello again.');
        await other.getByRole('button', { name: 'Send' }).click();
        await other.locator('.message-assistant').first().waitFor();
      } finally {
        await other.close();
      }
      await until('a new engine line on the followed log', async () => (await chats()) > before, 20_000, 250);
      console.log(`     engine lines for chats: ${before} → ${await chats()}`);
      await panel.scrollIntoViewIfNeeded();
      await screenshot(page, 'instance-logs-live');
    });

    await step(admin, 'API key: the same long prompt twice, the second served from the prefix cache', async () => {
      // What a developer does: a key, then the same long prompt (a document
      // to summarize) twice. The mock engine imitates vLLM's prefix caching
      // with --enable-prompt-tokens-details (the orchestrator starts it so).
      const a = await apiSession(orgName);
      const name = `cache ${RUN}`;
      const { key } = await a('POST', '/api-keys', { name });
      const document = 'The control plane meters every answered request and prices cached prompt tokens at their own rate. '.repeat(40);
      const usages = [];
      for (let n = 0; n < 2; n += 1) {
        const response = await fetch(`${BASE_URL}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: modelId, messages: [{ role: 'user', content: `Summarize: ${document}` }], max_tokens: 16 }),
        });
        if (!response.ok) throw new Error(`call ${n + 1}: ${response.status} ${await response.text()}`);
        usages.push((await response.json()).usage);
      }
      const cached = usages.map((u) => u.prompt_tokens_details?.cached_tokens ?? 0);
      if (!(cached[1] > 0 && cached[1] <= usages[1].prompt_tokens)) throw new Error(`the repeated prompt shows no cached tokens: ${JSON.stringify(usages)}`);
      console.log(`     ${usages[1].prompt_tokens} prompt tokens, ${cached[1]} cached the second time (${cached[0]} the first)`);
      repeated = {
        name,
        cached: cached[0] + cached[1],
        tokens: usages.reduce((t, u) => t + u.prompt_tokens + u.completion_tokens, 0),
      };
    });
  } else {
    skip('deployment reaches progress 100; playground streaming', 'set FULL=1 against an API with its orchestrator');
  }

  await step(admin, 'runtime models: instances and requests per model', async () => {
    await visit(admin, '/runtime', 'Runtime models', 'runtime-models');
    if (!FULL) return;
    const cells = await page.getByRole('row', { name: new RegExp(escapeRe(modelId)) }).getByRole('cell').allTextContents();
    const [, instances, ready, , , , requests] = cells.map((c) => Number.parseInt(c, 10));
    if (!(instances >= 1 && ready >= 1 && requests >= 1)) throw new Error(`unexpected runtime line: ${cells.join(' | ')}`);
  });

  await step(admin, 'usage: totals and the CSV export', async () => {
    await visit(admin, '/usage', 'Usage', 'usage');
    const href = await page.getByRole('link', { name: 'Download CSV' }).getAttribute('href');
    const csv = await page.request.get(href ?? '');
    if (csv.status() !== 200 || !csv.headers()['content-type']?.startsWith('text/csv')) throw new Error(`CSV export: ${csv.status()} ${csv.headers()['content-type']}`);
    const text = await csv.text();
    if (!text.startsWith('group,requests,prompt_tokens,completion_tokens,cached_prompt_tokens,reasoning_tokens,errors')) throw new Error(`CSV export: ${text.slice(0, 200)}`);
    if (FULL) {
      await page.getByRole('row', { name: new RegExp(escapeRe(modelId)) }).waitFor();
      if (!text.includes(modelId)) throw new Error(`the CSV has no line for ${modelId}: ${text}`);
    }
  });

  if (FULL) {
    await step(admin, 'dashboard: the first-run checklist is done (activated, deployed, a key, calls) and gives way', async () => {
      await until('the checklist gone', async () => {
        await page.goto('/');
        await heading(page, /^Hello/);
        await page.getByRole('region', { name: 'Usage, last 30 days' }).getByText(/requests/).waitFor();
        // Every query answered: an absent checklist is not one still loading.
        await page.waitForLoadState('networkidle');
        return (await page.getByRole('region', { name: 'Get started' }).count()) === 0;
      }, 30_000, 1000);
    });

    await step(admin, 'usage: the cached prompt tokens of the repeated prompt, per API key', async () => {
      if (!repeated) throw new Error('the repeated prompt was not sent');
      const table = page.getByRole('table', { name: 'Usage' });
      // The usage rows are written by a batching writer just after the answers.
      const cells = await until("the key's line with its cached tokens", async () => {
        await page.goto('/usage');
        await heading(page, 'Usage');
        await page.getByLabel('Group by').selectOption('api_key');
        const headers = await table.getByRole('columnheader').allTextContents();
        const column = headers.findIndex((h) => h.includes('Cached prompt tokens'));
        if (column < 0) throw new Error(`no cached tokens column: ${headers.join(' | ')}`);
        const row = table.getByRole('row', { name: new RegExp(escapeRe(repeated.name)) });
        await row.waitFor({ timeout: 3_000 });
        const all = await row.getByRole('cell').allTextContents();
        return Number(all[column].replace(/,/g, '')) === repeated.cached ? all : null;
      }, 20_000, 1000);
      console.log(`     usage line of ${repeated.name}: ${cells.join(' | ')}`);
      const total = (await page.getByText(/^Total: /).textContent()) ?? '';
      const totalCached = Number(/\(([\d,]+) cached\)/.exec(total)?.[1]?.replace(/,/g, ''));
      if (!(totalCached >= repeated.cached)) throw new Error(`the total does not count the cached tokens: ${total}`);
      await screenshot(page, 'usage-cached-tokens');
    });

    await step(admin, "requests: the key's two calls in the log, filtered by key; the model's latency above", async () => {
      if (!repeated) throw new Error('the repeated prompt was not sent');
      await visit(admin, '/requests', 'Requests', 'requests');
      await page.getByRole('table', { name: 'Latency per model' }).getByRole('row', { name: new RegExp(escapeRe(modelId)) }).waitFor();
      await page.getByLabel('API key').selectOption({ label: repeated.name });
      await page.getByRole('button', { name: 'Apply' }).click();
      const rows = page.getByRole('table', { name: 'Requests' }).getByRole('row', { name: new RegExp(escapeRe(repeated.name)) });
      await until("the key's two requests", async () => (await rows.count()) === 2, 15_000, 250);
      const cells = await rows.first().getByRole('cell').allTextContents();
      if (!cells.some((c) => c.trim() === '200') || !cells.some((c) => c.includes(modelId))) throw new Error(`unexpected request line: ${cells.join(' | ')}`);
      console.log(`     request line: ${cells.join(' | ')}`);
      await screenshot(page, 'requests-by-key');
    });
  }

  await step(admin, 'budgets: consumption, an edit, invalid values refused and not stored', async () => {
    await visit(admin, '/budgets', 'Budgets', 'budgets');
    const card = budgetCard(page);
    if (FULL) {
      if (!repeated) throw new Error('no chat was sent');
      // The page refreshes every 30 s; a person reloads.
      const { used } = await until('the chats in the consumption', async () => {
        await page.reload();
        await heading(page, 'Budgets');
        // Read once the budget is fetched, not while it loads.
        await card.locator('.budget-meter-head span').first().waitFor();
        const now = await budgetTokens(page);
        return now.used >= repeated.tokens ? now : null;
      }, 20_000, 1000);
      console.log(`     ${used} tokens used of ${BUDGET_TOKENS}`);
      await screenshot(page, 'budgets-consumption');
    }
    const [before] = await (await page.request.get('/organizations/current/budgets')).json();
    const problem = /Amounts are non-negative numbers .* thresholds are up to 10 percentages from 1 to 100/;
    for (const [tokens, thresholds] of [['-5', '50, 80, 100'], ['2000000', '50, 150']]) {
      await card.getByRole('button', { name: 'Edit' }).click();
      const dialog = page.getByRole('dialog', { name: 'Edit budget' });
      await dialog.getByLabel('Tokens per month').fill(tokens);
      await dialog.getByLabel('Alert thresholds (%)').fill(thresholds);
      await dialog.getByRole('button', { name: 'Save' }).click();
      await dialog.getByText(problem).waitFor();
      await screenshot(page, `budget-invalid-${tokens}`);
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      await dialog.waitFor({ state: 'hidden' });
    }
    // Nor does the API take them from a script.
    const a = await apiSession(orgName);
    const body = { monthly_eur: null, monthly_tokens: BUDGET_TOKENS, monthly_gpu_hours: null, thresholds: [50, 80, 100], hard_limit: true, stop_running: false };
    await refused(400, () => a('PUT', `/organizations/current/budgets/${before.id}`, { ...body, monthly_tokens: -5 }));
    await refused(400, () => a('PUT', `/organizations/current/budgets/${before.id}`, { ...body, thresholds: [50, 150] }));
    const [after] = await (await page.request.get('/organizations/current/budgets')).json();
    for (const field of ['monthly_tokens', 'thresholds', 'hard_limit', 'updated_at']) {
      if (JSON.stringify(after[field]) !== JSON.stringify(before[field])) throw new Error(`an invalid edit changed ${field}: ${JSON.stringify(before[field])} → ${JSON.stringify(after[field])}`);
    }
    await card.getByRole('button', { name: 'Edit' }).click();
    const dialog = page.getByRole('dialog', { name: 'Edit budget' });
    await dialog.getByLabel('Tokens per month').fill(String(2 * BUDGET_TOKENS));
    await dialog.getByLabel('Alert thresholds (%)').fill('90, 50');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await card.getByText('Alerts at 50, 90 % · hard limit').waitFor();
    await until('the new limit on the card', async () => (await budgetTokens(page)).limit === 2 * BUDGET_TOKENS);
    await screenshot(page, 'budgets-edited');
  });

  await step(admin, 'FinOps: burn rate, cost and token series, CSV exports', async () => {
    await visit(admin, '/finops', 'FinOps', 'finops');
    const amounts = await page.locator('dl[aria-label="Burn rate"] dd').allTextContents();
    if (amounts.length !== 6 || !amounts.every((a) => /^\d[\d,]*(\.\d+)? EUR$/.test(a))) throw new Error(`burn rate: ${amounts.join(' | ')}`);
    if (FULL) {
      await page.getByRole('table', { name: 'Running instances' }).getByRole('row', { name: new RegExp(escapeRe(modelId)) }).waitFor();
      if (amounts[1] === '0.00 EUR') throw new Error('a running instance burns nothing per hour');
    }
    await page.getByLabel('Bucket').selectOption('minute');
    await page.getByLabel('Cost by').selectOption('instance');
    await page.getByRole('img', { name: /^Cost per minute, latest:/ }).waitFor();
    await page.getByRole('img', { name: /^Tokens per hour, latest:/ }).waitFor();
    for (const [name, header] of [['Download cost CSV', 'bucket,group,cost_eur'], ['Download tokens CSV', 'bucket,group,requests']]) {
      const href = await page.getByRole('link', { name }).getAttribute('href');
      const csv = await page.request.get(href ?? '');
      const text = await csv.text();
      if (csv.status() !== 200 || !csv.headers()['content-type']?.startsWith('text/csv') || !text.startsWith(header)) {
        throw new Error(`${name}: ${csv.status()} ${text.slice(0, 120)}`);
      }
    }
    await page.getByRole('region', { name: 'Cost recovery per offering' }).waitFor();
    await screenshot(page, 'finops-minutes-by-instance');
  });

  await step(admin, 'marketplace and statements pages', async () => {
    await visit(admin, '/marketplace', 'Marketplace', 'marketplace');
    await page.getByRole('switch', { name: 'Hide paid offerings' }).waitFor();
    await visit(admin, '/statements', 'Statements', 'statements');
    await page.getByLabel('Month (UTC)').waitFor();
    // The billable statement: open this month, with its exports.
    const current = page.getByRole('region', { name: /^Statement of \d{4}-\d{2}$/ });
    await current.getByText('Open', { exact: true }).waitFor();
    for (const [name, type] of [['Export statement as CSV', 'text/csv'], ['Export statement as JSON', 'application/json']]) {
      const response = await page.request.get((await current.getByRole('link', { name }).getAttribute('href')) ?? '');
      if (response.status() !== 200 || !response.headers()['content-type']?.startsWith(type)) {
        throw new Error(`${name}: ${response.status()} ${response.headers()['content-type']}`);
      }
    }
    // The owner closes last month: the marker says who and what.
    const last = new Date();
    last.setUTCDate(1);
    last.setUTCMonth(last.getUTCMonth() - 1);
    const lastMonth = `${last.getUTCFullYear()}-${String(last.getUTCMonth() + 1).padStart(2, '0')}`;
    await page.getByLabel('Month (UTC)').fill(lastMonth);
    const closing = page.getByRole('region', { name: `Statement of ${lastMonth}` });
    await closing.getByLabel('Note (optional)').fill(`e2e ${RUN}`);
    await closing.getByRole('button', { name: `Close ${lastMonth}` }).click();
    await closing.getByText('Closed', { exact: true }).waitFor();
    await closing.getByText(new RegExp(`e2e ${RUN}`)).waitFor();
    await screenshot(page, 'statement-closed');
  });

  if (FULL) {
    // The provider is this organization (A); the consumer a second one (B)
    // of the same admin, who switches to it in the browser to accept.
    const consumerName = `Consumer ${RUN}`;
    let provider = null;
    let consumer = null;
    let address = '';
    await step(admin, 'offerings: publish the deployed model, switch it on, price it', async () => {
      const a = await apiSession(orgName);
      provider = (await a('GET', '/organizations')).find((o) => o.name === orgName);
      consumer = await a('POST', '/organizations', { name: consumerName });
      address = `${provider.slug}/${modelId}`;
      await visit(admin, '/offerings', 'Offerings', 'offerings-empty');
      await page.getByRole('button', { name: 'Publish a model' }).click();
      const dialog = page.getByRole('dialog', { name: 'Publish a model' });
      await dialog.getByLabel('Model', { exact: true }).fill(modelId);
      await dialog.getByLabel('Visibility').selectOption('private');
      await dialog.getByRole('button', { name: 'Publish', exact: true }).click();
      await page.getByRole('row', { name: new RegExp(escapeRe(address)) }).waitFor();
      if (!(await page.getByRole('switch', { name: `Technical activation of ${address}` }).isChecked())) throw new Error('published technically off');
      await switchOn(page, `Economic activation of ${address}`);
      await page.getByRole('button', { name: `New price for ${address}` }).click();
      const price = page.getByRole('dialog', { name: 'New price' });
      await price.getByLabel('Input EUR per 1k tokens', { exact: true }).fill('0.002');
      await price.getByLabel('Output EUR per 1k tokens', { exact: true }).fill('0.006');
      await price.getByRole('button', { name: 'Save price' }).click();
      await page.getByRole('row', { name: new RegExp(escapeRe(address)) }).getByText('0.002000 in · 0.006000 out').waitFor();
      await screenshot(page, 'offerings');
    });

    await step(admin, 'offerings: share with a second organization', async () => {
      await page.getByRole('button', { name: `Shares of ${address}` }).click();
      const shares = page.getByRole('region', { name: `Shares of ${address}` });
      await shares.getByRole('button', { name: 'Share with an organization' }).click();
      const share = page.getByRole('dialog', { name: `Share ${address}` });
      await share.getByLabel('Organization slug').fill(consumer.slug);
      await share.getByRole('button', { name: 'Share', exact: true }).click();
      await share.waitFor({ state: 'hidden' });
      const row = shares.getByRole('row', { name: new RegExp(escapeRe(consumer.slug)) });
      await row.getByText('active', { exact: true }).waitFor();
      // Pause and resume: the buttons follow the share's status.
      await row.getByRole('button', { name: `Pause the share with ${consumer.slug}` }).click();
      await row.getByText('paused', { exact: true }).waitFor();
      await row.getByRole('button', { name: `Resume the share with ${consumer.slug}` }).click();
      await row.getByText('active', { exact: true }).waitFor();
      await screenshot(page, 'offering-shares');
    });

    let expected = null;
    await step(admin, 'marketplace: the second organization accepts, hides paid offerings', async () => {
      await switchTo(page, consumer.id, consumerName);
      await visit(admin, '/marketplace', 'Marketplace', 'marketplace-shared');
      const row = page.getByRole('row', { name: new RegExp(escapeRe(address)) });
      await row.getByText('0.002000 in · 0.006000 out').waitFor();
      await row.getByRole('button', { name: `Accept ${address}` }).click();
      // Accepting states the price and asks to confirm it.
      const confirm = page.getByRole('dialog', { name: `Accept ${address}?` });
      await confirm.getByText('0.002000 in · 0.006000 out per 1k').waitFor();
      await confirm.getByRole('button', { name: 'Accept this price' }).click();
      await row.getByText('active', { exact: true }).waitFor();
      // A paid offering disappears while paid ones are hidden, and comes back.
      await switchOn(page, 'Hide paid offerings');
      await row.waitFor({ state: 'detached' });
      const hidePaid = page.getByRole('switch', { name: 'Hide paid offerings' });
      await hidePaid.click();
      await until('paid offerings shown', async () => !(await hidePaid.isChecked()));
      await row.waitFor();
      await screenshot(page, 'marketplace-accepted');
    });

    await step(admin, "the consumer's key calls the shared model", async () => {
      const b = await apiSession(consumerName);
      const { key } = await b('POST', '/api-keys', { name: `shared ${RUN}` });
      // The proxy's routing table follows the acceptance at once (event) or within a second.
      const answer = await until('a routed call', async () => {
        const response = await fetch(`${BASE_URL}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: address, messages: [{ role: 'user', content: 'Hello from the consumer.' }], max_tokens: 16 }),
        });
        if (response.status === 404) return null;
        if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
        return response.json();
      }, 10_000, 200);
      const { prompt_tokens: p, completion_tokens: c } = answer.usage;
      if (!(p > 0 && c > 0)) throw new Error(`no usage in the answer: ${JSON.stringify(answer.usage)}`);
      // (p × 0.002 + c × 0.006) / 1000 EUR, in 10^-12 EUR.
      expected = (BigInt(p) * 2n + BigInt(c) * 6n) * 1_000_000n;
      console.log(`     ${p} prompt + ${c} completion tokens`);
    });

    await step(admin, "statements: the consumer's debit is Σ tokens × price, exactly", async () => {
      if (expected === null) throw new Error('no call was made');
      // The usage row is written once the answer is sent: wait for it, then look.
      const { statement, line } = await until('the call on the statement', async () => {
        const statement = await (await page.request.get('/finops/statements')).json();
        const line = statement.lines.find((l) => l.address === address && l.direction === 'debit');
        return line ? { statement, line } : null;
      });
      await visit(admin, '/statements', 'Statements', 'statement-consumer');
      if (scaled(line.amount_eur) !== expected || scaled(statement.debit_total_eur) !== expected) {
        throw new Error(`expected ${expected} pEUR, statement: ${JSON.stringify(statement)}`);
      }
      const row = page
        .getByRole('region', { name: /^Share chargeback of/ })
        .getByRole('row', { name: new RegExp(escapeRe(address)) });
      await row.getByText('Debit (consumed)').waitFor();
      // Amounts read rounded; every digit is on hover (the title), and it is the exact debit.
      const exact = async (locator) => scaled(((await locator.getAttribute('title')) ?? '').replace(/ EUR$/, '').replace(/,/g, ''));
      if ((await exact(row.locator('.num[title]'))) !== expected) throw new Error(`the line's exact amount: ${await row.locator('.num[title]').getAttribute('title')}`);
      if ((await exact(page.locator('dl[aria-label="Totals"] dd .num').first())) !== expected) throw new Error('the exact debit total differs');
      const csv = await page.request.get((await page.getByRole('link', { name: 'Download CSV' }).getAttribute('href')) ?? '');
      if (csv.status() !== 200 || !(await csv.text()).includes(address)) throw new Error(`statement CSV: ${csv.status()}`);
    });

    await step(admin, "statements: the provider's credit", async () => {
      await switchTo(page, provider.id, orgName);
      await visit(admin, '/statements', 'Statements', 'statement-provider');
      const row = page
        .getByRole('region', { name: /^Share chargeback of/ })
        .getByRole('row', { name: new RegExp(escapeRe(address)) });
      await row.getByText('Credit (provided)').waitFor();
      await row.getByText(consumer.slug, { exact: true }).waitFor();
    });

    await step(admin, 'marketplace: the second organization leaves the offering after a confirmation', async () => {
      await switchTo(page, consumer.id, consumerName);
      await visit(admin, '/marketplace', 'Marketplace', 'marketplace-before-leave');
      const row = page.getByRole('row', { name: new RegExp(escapeRe(address)) });
      await row.getByRole('button', { name: `Leave ${address}` }).click();
      const confirm = page.getByRole('dialog', { name: `Leave ${address}?` });
      await confirm.getByText(/are refused from now on/).waitFor();
      await screenshot(page, 'marketplace-leave');
      await confirm.getByRole('button', { name: 'Yes, leave it' }).click();
      await row.getByText('not accepted', { exact: true }).waitFor();
      await row.getByRole('button', { name: `Accept ${address}` }).waitFor();
      await switchTo(page, provider.id, orgName);
    });
  } else {
    skip('offerings, sharing, acceptance and statements', 'set FULL=1: they need a deployed model');
  }

  await step(admin, 'playground page', async () => {
    await visit(admin, '/playground', 'Playground', 'playground');
    await page.getByRole('tab', { name: 'Python' }).click();
    const code = await page.getByRole('tabpanel').textContent();
    if (!code?.includes(`${BASE_URL}/v1`)) throw new Error('the snippet does not use the page origin + /v1');
    await screenshot(page, 'playground-python');
  });

  await step(admin, 'API keys: create (shown once, copy), remove its limit, revoke', async () => {
    await visit(admin, '/keys', 'API keys', 'keys-empty');
    await page.getByRole('button', { name: 'Create a key' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create a key' });
    await dialog.getByLabel('Name').fill(`e2e key ${RUN}`);
    await dialog.getByLabel('Requests per minute (optional)').fill('60');
    await dialog.getByRole('button', { name: 'Create' }).click();
    const secret = page.getByLabel('New API key');
    const key = await secret.inputValue();
    if (!/^inv_[A-Za-z0-9]+_[A-Za-z0-9_-]+$/.test(key)) throw new Error(`unexpected key ${key}`);
    await page.getByRole('region', { name: 'Your new key' }).getByRole('button', { name: 'Copy' }).click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    await screenshot(page, 'keys-created');
    const models = await fetch(`${BASE_URL}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    if (models.status === 401) throw new Error('the new key is refused by /v1/models');
    await page.getByRole('button', { name: 'I stored it' }).click();
    // Remove the limit: an emptied field sends null, which clears it.
    const keyRow = page.getByRole('row', { name: new RegExp(`e2e key ${RUN}`) });
    await keyRow.getByText('60 req/min').waitFor();
    await page.getByRole('button', { name: `Edit e2e key ${RUN}` }).click();
    const edit = page.getByRole('dialog', { name: `Edit e2e key ${RUN}` });
    await edit.getByLabel('Requests per minute').fill('');
    await edit.getByRole('button', { name: 'Save' }).click();
    await edit.waitFor({ state: 'hidden' });
    await keyRow.getByText('none', { exact: true }).waitFor();
    await screenshot(page, 'keys-limit-removed');
    await page.getByRole('button', { name: `Revoke e2e key ${RUN}` }).click();
    await page.getByRole('row', { name: new RegExp(`e2e key ${RUN}`) }).getByText('revoked').waitFor();
    const after = await fetch(`${BASE_URL}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    if (after.status !== 401) throw new Error(`a revoked key still answers ${after.status}`);
    await screenshot(page, 'keys-revoked');
  });

  await step(admin, 'sessions: revoke the other sessions', async () => {
    // A second session of the same account (a script logging in).
    const other = await apiSession(orgName);
    await other('GET', '/auth/me');
    await visit(admin, '/sessions', 'Sessions', 'sessions');
    const revoke = page.getByRole('button', { name: /^Revoke the session/ });
    await revoke.first().waitFor();
    while ((await revoke.count()) > 0) {
      const before = await revoke.count();
      await revoke.first().click();
      await until('the session revoked', async () => (await revoke.count()) < before);
    }
    await page.getByText('this browser').waitFor();
    await other('GET', '/auth/me').then(
      () => {
        throw new Error('a revoked session still works');
      },
      (err) => {
        if (!/: 401 /.test(err.message)) throw err;
      },
    );
    await screenshot(page, 'sessions-revoked');
  });

  await step(admin, 'catalog settings (platform admin): price an instance type', async () => {
    await visit(admin, '/settings/catalog', 'Catalog settings', 'catalog-settings');
    const price = page.getByLabel('Price per hour of mock-4gpu-80g');
    const before = await price.inputValue();
    const row = page.getByRole('row', { name: /mock-4gpu-80g/ });
    await price.fill('12.3456');
    await row.getByRole('button', { name: 'Save' }).click();
    await until('the new price saved', async () => (await row.getByRole('button', { name: 'Save' }).isDisabled()) && (await price.inputValue()) === '12.3456');
    await price.fill('not a price');
    if (!(await row.getByRole('button', { name: 'Save' }).isDisabled())) throw new Error('an invalid price can be saved');
    await price.fill(before);
    await row.getByRole('button', { name: 'Save' }).click();
    await until('the price restored', async () => (await row.getByRole('button', { name: 'Save' }).isDisabled()) && (await price.inputValue()) === before);
  });

  await step(admin, 'catalog settings: sync from Scaleway without credentials is refused clearly', async () => {
    const card = page.getByRole('region', { name: 'Sync from Scaleway' });
    await card.getByRole('button', { name: 'Sync from Scaleway' }).click();
    await card.getByRole('alert').getByText(/scaleway credentials first/).waitFor();
    await card.scrollIntoViewIfNeeded();
    await screenshot(page, 'catalog-sync-refused');
  }, { allow: [/status of 409/] });

  const secretKey = randomUUID();
  await step(admin, 'providers: save Scaleway credentials, the secret never shown back', async () => {
    await visit(admin, '/settings/providers', 'Providers', 'providers');
    const state = page.getByTestId('credentials-state');
    await state.getByText(/^Not set/).waitFor();
    const form = page.getByRole('form', { name: 'Scaleway credentials' });
    await form.getByLabel('Access key').fill('SCWE2E' + RUN.toUpperCase().replace(/[^A-Z0-9]/g, '0').padEnd(14, '0').slice(0, 14));
    if ((await form.getByLabel('Secret key').getAttribute('type')) !== 'password') throw new Error('the secret key is not a password field');
    await form.getByLabel('Secret key').fill('not-a-uuid');
    await form.getByLabel('Project id').fill(randomUUID());
    await form.getByLabel('Organization id').fill(randomUUID());
    await form.getByLabel('Default zone').selectOption('fr-par-2');
    await form.getByRole('button', { name: 'Save the credentials' }).click();
    await form.getByRole('alert').getByText(/^Secret key/).waitFor();
    await form.getByLabel('Secret key').fill(secretKey);
    await form.getByRole('button', { name: 'Save the credentials' }).click();
    await state.getByText('SCWE2E').waitFor();
    if ((await form.getByLabel('Secret key').inputValue()) !== '') throw new Error('the secret stays in the form once saved');
    const shown = await page.content();
    const read = await page.evaluate(() => fetch('/organizations/current/providers/scaleway/credentials', { credentials: 'include' }).then((r) => r.text()));
    if (shown.includes(secretKey) || read.includes(secretKey)) throw new Error('the secret key is shown back');
    await screenshot(page, 'providers-credentials-set');
  });

  await step(admin, 'providers: Verify against an unreachable Scaleway fails with a clear message', async () => {
    await page.getByRole('button', { name: 'Verify' }).click();
    const verification = page.getByTestId('verification');
    await verification.locator('.badge', { hasText: /^failed$/ }).waitFor({ timeout: 30_000 });
    const text = (await verification.textContent()) ?? '';
    if (!/PROVIDER_[A-Z_]+: \S/.test(text)) throw new Error(`no error code and message in the verification: ${text}`);
    await screenshot(page, 'providers-verify-failed');
  });

  await step(admin, 'providers: worker settings keep their bounds', async () => {
    const form = page.getByRole('form', { name: 'Worker settings' });
    await form.getByLabel('Start-up timeout (s)').fill('59');
    await form.getByRole('button', { name: 'Save the worker settings' }).click();
    await form.getByRole('alert').getByText('startup_timeout_secs: 60 to 7200').waitFor();
    await form.getByLabel('Start-up timeout (s)').fill('1200');
    await form.getByRole('button', { name: 'Save the worker settings' }).click();
    await form.getByRole('status').getByText('Saved.').waitFor();
    await page.reload();
    await heading(page, 'Providers');
    await until('the saved timeout after a reload', async () => (await page.getByLabel('Start-up timeout (s)').inputValue()) === '1200');
    await screenshot(page, 'providers-worker-settings');
  });

  await step(admin, 'providers: remove the credentials', async () => {
    await page.getByRole('button', { name: 'Remove' }).click();
    await page.getByTestId('credentials-state').getByText(/^Not set/).waitFor();
  });

  await step(admin, 'reconciliation: without credentials, an empty state', async () => {
    await visit(admin, '/reconciliation', 'Reconciliation', 'reconciliation');
    await page.getByText(/No Scaleway credentials for this organization/).waitFor();
    await page.getByRole('link', { name: 'Set them' }).waitFor();
  }, { allow: [/status of 409/] });

  await step(admin, 'members: invite someone', async () => {
    await visit(admin, '/members', 'Members', 'members');
    const form = page.getByRole('form', { name: 'Invite someone' });
    await form.getByLabel('E-mail to invite').fill(invitee);
    await form.getByRole('combobox', { name: 'Role' }).selectOption('user');
    await form.getByRole('button', { name: 'Invite' }).click();
    await page.getByText(`Invitation sent to ${invitee}.`).waitFor();
    await page.getByRole('row', { name: new RegExp(invitee) }).waitFor();
    await screenshot(page, 'members-invited');
  });

  if (OUTBOX) {
    const user = await openBrowser('invitee');
    try {
      await step(user, 'invitee accepts in a second browser and becomes a user', async () => {
        const mail = await until('the invitation mail', () => lastMail(new RegExp(`To: ${invitee.replace(/[.+]/g, '\\$&')}`)), 15_000);
        const token = /\/invitations\/([A-Za-z0-9_-]+)/.exec(mail)?.[1];
        if (!token) throw new Error('no invitation link in the mail');
        await user.page.goto(`/invitations/${token}`);
        await heading(user.page, `Join ${orgName}`);
        await screenshot(user.page, 'invitation');
        await user.page.getByLabel('Your name').fill('E2E Invitee');
        await user.page.getByLabel('Choose a password').fill(`e2e-password-${RUN}`);
        await user.page.getByRole('button', { name: 'Create my account and join' }).click();
        await user.page.getByRole('heading', { level: 1, name: /^Hello/ }).waitFor();
        await user.page.getByRole('note', { name: 'Current workspace' }).getByText(orgName).waitFor();
      });

      await step(user, 'a user sees no admin module', async () => {
        const nav = user.page.getByRole('navigation', { name: 'Main' });
        for (const hidden of ['Members', 'Catalog', 'Catalog settings', 'FinOps', 'Statements', 'Offerings', 'Providers', 'Reconciliation']) {
          if ((await nav.getByRole('link', { name: hidden, exact: true }).count()) > 0) throw new Error(`a user sees ${hidden}`);
        }
        for (const shown of ['Instances', 'Services', 'Hosts', 'Runtime models', 'Usage', 'Requests', 'Playground', 'API keys', 'Marketplace', 'Sessions']) {
          await nav.getByRole('link', { name: shown, exact: true }).waitFor();
        }
        await screenshot(user.page, 'user-dashboard');
        await user.page.goto('/members');
        await user.page.getByRole('alert').getByText('not available to you').waitFor();
        await screenshot(user.page, 'user-members-refused');
        await user.page.goto('/instances');
        await heading(user.page, 'Instances');
        await user.page.getByRole('link', { name: `e2e-${RUN}` }).waitFor();
        if ((await user.page.getByRole('button', { name: 'Deploy a model' }).count()) > 0) throw new Error('a user can deploy');
        if ((await user.page.getByRole('button', { name: /^Terminate/ }).count()) > 0) throw new Error('a user can terminate');
        await screenshot(user.page, 'user-instances');
      });
    } finally {
      await user.context.close();
    }
  } else {
    skip('invitation acceptance and the user-role check', 'set OUTBOX_DIR to the API state dir outbox (FULL=1 uses ../.local/outbox)');
  }

  if (FULL) {
    await step(admin, 'instance page: the metering check', async () => {
      await page.goto(`/instances/${instanceId}`);
      await heading(page, `e2e-${RUN}`);
      const card = page.getByRole('region', { name: 'Metering check' });
      await card.waitFor();
      // The drift job runs every 2 s here (e2e-run.sh); its first verdict
      // needs a heartbeat's engine counters. This run's traffic is far below
      // the tokens a verdict needs: "not enough traffic", never an alert.
      const status = await until('a metering verdict', async () => {
        const badge = card.locator('dd .badge');
        if ((await badge.count()) > 0) return badge.textContent();
        await page.reload();
        await heading(page, `e2e-${RUN}`);
        return null;
      }, 60_000, 2000);
      if (status !== 'not enough traffic') throw new Error(`metering check: ${status}`);
      // The engines' counters came with the heartbeats and count this run's chats.
      const engines = (await card.locator('dt:text-is("Engines counted") + dd').textContent()) ?? '';
      const proxy = (await card.locator('dt:text-is("Proxy metered") + dd').textContent()) ?? '';
      if (!/^[1-9][\d,]* prompt \/ [\d,]+ generated$/.test(engines)) throw new Error(`engines counted: ${engines}`);
      console.log(`     metering check: ${status}; engines counted ${engines}, proxy metered ${proxy}`);
      await card.scrollIntoViewIfNeeded();
      await screenshot(page, 'instance-metering-check');
    });
  }

  await step(admin, 'every page at 1440 × 900 and 390 × 844: nothing wider than the viewport, row actions on screen, a drawer on the phone; axe-core: no serious or critical violation', async () => {
    await page.goto('/');
    await heading(page, /^Hello/);
    const links = await page.getByRole('navigation', { name: 'Main' }).getByRole('link').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    const paths = [...links, ...(instanceId ? [`/instances/${instanceId}`] : [])];
    const problems = [];
    try {
      for (const viewport of [DESKTOP, PHONE]) {
        await page.setViewportSize(viewport);
        for (const path of paths) {
          await page.goto(path);
          await page.locator('h1').first().waitFor();
          await page.waitForLoadState('networkidle').catch(() => undefined);
          await page.getByRole('status', { name: /Loading/ }).first().waitFor({ state: 'detached' }).catch(() => undefined);
          const found = [
            ...(await layoutProblems(page)),
            ...(viewport === PHONE ? await phoneShellProblems(page) : []),
            ...(await axeProblems(page)),
          ];
          if (viewport === PHONE) await screenshot(page, `phone${path.replace(/\//g, '-')}`);
          problems.push(...found.map((p) => `${viewport.width} px ${path}: ${p}`));
        }
      }
    } finally {
      await page.setViewportSize(DESKTOP);
    }
    console.log(`     ${paths.length} pages × 2 viewports checked`);
    if (problems.length) throw new Error(problems.join('\n    '));
  }, { allow: [/status of 409/] });

  await step(admin, 'dark mode follows the system setting (axe-core: no serious or critical violation in it)', async () => {
    const problems = [];
    try {
      await page.emulateMedia({ colorScheme: 'dark' });
      for (const [path, title] of [['/', /^Hello/], ['/instances', 'Instances'], [`/instances/${instanceId}`, `e2e-${RUN}`], ['/keys', 'API keys'], ['/usage', 'Usage'], ['/requests', 'Requests']]) {
        await page.goto(path);
        await heading(page, title);
        await page.waitForLoadState('networkidle').catch(() => undefined);
        const bg = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
        const [r, g, b] = (bg.match(/\d+/g) ?? []).map(Number);
        if (!(r + g + b < 120)) problems.push(`${path}: the page is not dark (${bg})`);
        problems.push(...(await axeProblems(page)).map((p) => `${path}: ${p}`));
        if (path === '/instances') await screenshot(page, 'instances-dark');
      }
    } finally {
      await page.emulateMedia({ colorScheme: 'light' });
    }
    if (problems.length) throw new Error(problems.join('\n    '));
  });

  await step(admin, 'instance: terminate', async () => {
    await page.goto(`/instances/${instanceId}`);
    await heading(page, `e2e-${RUN}`);
    await page.getByRole('button', { name: 'Terminate' }).click();
    // The confirmation states what breaks: nothing else serves the model
    // (with FULL, the offering published from it stops answering).
    const dialog = page.getByRole('dialog', { name: `Terminate e2e-${RUN}?` });
    await dialog.getByText(/Nothing else serves/).waitFor();
    if (FULL) await dialog.getByText(/stop answering/).waitFor();
    await screenshot(page, 'instance-terminate-confirm');
    await dialog.getByRole('button', { name: 'Yes, terminate it' }).click();
    await until('terminating', async () => (await page.locator('.card').first().textContent())?.includes('terminat'));
    await screenshot(page, 'instance-terminating');
  });

  if (FULL) {
    await step(admin, 'instance: terminated, then archived', async () => {
      await page.getByRole('button', { name: 'Archive' }).waitFor({ timeout: DEPLOY_TIMEOUT });
      // Nothing is left of the worker: the page does not say it is ready.
      await page.getByRole('region', { name: 'Status', exact: true }).getByText('none (the instance is terminated)').waitFor();
      // Termination deleted the volume before the instance became terminated.
      await page.getByRole('table', { name: 'Volumes' }).getByRole('row', { name: /boot/ }).locator('.badge', { hasText: /^deleted$/ }).waitFor();
      await page.getByRole('button', { name: 'Archive' }).click();
      await page.waitForURL(/\/instances$/);
      await heading(page, 'Instances');
    });
  }

  await step(admin, 'public pages', async () => {
    await visit(admin, '/forgot-password', 'Reset your password', 'forgot-password');
    const problems = await axeProblems(page);
    await visit(admin, '/reset-password?token=not-a-real-token', 'Choose a new password', 'reset-password');
    problems.push(...(await axeProblems(page)));
    if (problems.length) throw new Error(problems.join('\n    '));
    await page.goto('/invitations/not-a-real-token');
    await page.getByText('This invitation link is not valid').waitFor();
    await screenshot(page, 'invitation-invalid');
  }, { allow: [/status of 404/] });

  await step(admin, 'unknown page', () => visit(admin, '/no-such-page', 'Page not found', 'not-found'));

  await step(admin, 'log out', async () => {
    await page.goto('/');
    await heading(page, /^Hello/);
    await page.getByRole('button', { name: 'Log out' }).click();
    await heading(page, 'Log in');
    await page.goto('/keys');
    await heading(page, 'Log in');
    if (!page.url().includes('next=%2Fkeys')) throw new Error(`no way back after login: ${page.url()}`);
  }, { allow: [/status of 401/] });
} finally {
  await admin.context.close();
  for (const dir of profiles) rmSync(dir, { recursive: true, force: true });
}

console.log(`\nscreenshots: ${SHOTS}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
