// The web app end to end in Debian's Chromium (playwright-core), against
// the nginx and PostgreSQL that make test starts; prints TAP.  Screenshots
// of the main pages go to $SCREENSHOTS_DIR (tmp/screenshots by default).
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// axe-core checks each page against WCAG 2 A and AA
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
async function accessibilityProblems(page) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa'] }));
  return result.violations.filter((v) => ['serious', 'critical'].includes(v.impact))
    .map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
}

const base = process.env.RECOVERY_HTTP;
const shots = process.env.SCREENSHOTS_DIR || 'tmp/screenshots';
mkdirSync(shots, { recursive: true });
let n = 0;
let failed = 0;
function ok(condition, name, diag) {
  n += 1;
  if (!condition) failed += 1;
  console.log(`${condition ? 'ok' : 'not ok'} ${n} - ${name}`);
  if (!condition && diag !== undefined) console.log(`# ${JSON.stringify(diag)}`);
}
const is = (got, want, name) => ok(got === want, name, { got, want });

// An assertion on the page waits for it: probe() is read again every 100 ms
// until check(value) holds, and fails only at the deadline, saying what it
// waited for and what it saw last.  Nothing is read once right after an action.
const DEADLINE_MS = 20000;
async function eventually(name, probe, check, waitingFor) {
  const deadline = Date.now() + DEADLINE_MS;
  let last;
  for (;;) {
    try { last = await probe(); } catch (error) { last = `error: ${error.message.split('\n')[0]}`; }
    if (check(last)) { ok(true, name); return last; }
    if (Date.now() > deadline) {
      ok(false, name, { waited_ms: DEADLINE_MS, for: waitingFor, last });
      return last;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
const eventuallyIs = (name, probe, want) => eventually(name, probe, (v) => v === want, want);

async function apiAs(email, password) {
  const login = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password }) });
  const { token } = await login.json();
  return async (method, path, body) => {
    const res = await fetch(`${base}/api/v1${path}`, { method, headers: { Authorization: `Bearer ${token}`,
      'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, json: await res.json().catch(() => null) };
  };
}

const tag = `e2e${Date.now()}`;
const agentApi = await apiAs('agent@demo.example', 'agent-demo-pass');
// a case of our own: a customer, a payment of 100.00 EUR that failed
async function newCase(name = `Customer ${tag}`) {
  const customer = (await agentApi('POST', '/customers', { external_ref: `${tag}-${Math.random()}`, name })).json;
  const payment = (await agentApi('POST', '/payments', { customer_id: customer.id, external_ref: 'INV-1', amount: 10000,
    currency: 'EUR', due_date: '2026-10-01' })).json;
  const opened = (await agentApi('POST', `/payments/${payment.id}/fail`, { reason: 'card declined' })).json;
  return { customer, id: opened.case.id };
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
const dialogs = [];
// the page has rendered what its URL says
const settled = (page) => page.waitForFunction(() => document.getElementById('main').dataset.view === (location.hash || ''));
async function signIn(email, password) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  await page.goto(`${base}/`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  return page;
}

try {
  // sign in, the dashboard's figures, sign out
  const page = await signIn('agent@demo.example', 'agent-demo-pass');
  ok(true, 'an agent signs in and lands on the dashboard');
  const summary = (await agentApi('GET', '/analytics/summary')).json;
  for (const c of summary.by_currency) {
    await eventuallyIs(`the dashboard shows the API's open cases in ${c.currency}`,
      () => page.locator(`[data-currency="${c.currency}"] [data-kpi="open_cases"]`).textContent(), String(c.open_cases));
  }
  await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });
  await eventuallyIs('the token is kept in session storage, not in a cookie', async () =>
    !!(await page.evaluate(() => sessionStorage.getItem('recovery.token'))) && !(await page.context().cookies()).length, true);

  // the case list: filter and page, the place kept in the URL
  await page.getByRole('link', { name: 'Cases' }).click();
  await page.getByLabel('State').selectOption('open');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/state=open/);
  await settled(page);
  await eventually('filtering by state shows only open cases',
    () => page.locator('table[aria-label="Cases"] tbody .badge').allTextContents(),
    (states) => states.length > 0 && states.every((s) => s === 'open'), 'rows, every one open');
  const firstPage = await page.locator('tbody tr').first().getAttribute('data-case');
  await page.getByRole('link', { name: 'Next page' }).click();
  await page.waitForURL(/cursor=/);
  await settled(page);
  const secondPage = await eventually('the next page shows other cases, with the cursor in the URL',
    () => page.locator('tbody tr').first().getAttribute('data-case'), (id) => id && id !== firstPage,
    `a first row other than case ${firstPage}`);
  await page.reload();
  await settled(page);
  await eventuallyIs('reloading keeps the place', () => page.locator('tbody tr').first().getAttribute('data-case'), secondPage);
  await page.screenshot({ path: `${shots}/cases.png`, fullPage: true });

  // a case: a promise, then money until it resolves, each in the timeline
  const mine = await newCase();
  await page.goto(`${base}/#/cases/${mine.id}`);
  await page.getByRole('heading', { name: `Case #${mine.id}` }).waitFor();
  const promise = page.locator('form[data-event="promise"]');
  await promise.getByLabel('Amount (EUR)').fill('40.00');
  await promise.getByLabel('By').fill('2026-12-24');
  await promise.getByRole('button').click();
  await page.locator('[data-field="state"]', { hasText: 'promised' }).waitFor();
  await eventuallyIs('a promise is recorded and shown in the timeline',
    () => page.locator('.timeline li[data-kind="promise"]').count(), 1);
  const money = page.locator('form[data-action="payment"]');
  await money.getByLabel('Money received (EUR)').fill('40');
  await money.getByRole('button').click();
  await eventually('money received lowers the balance', () => page.locator('[data-field="balance"]').textContent(),
    (balance) => balance.includes('60'), 'a balance of 60.00');
  await money.getByLabel('Money received (EUR)').fill('60.00');
  await money.getByRole('button').click();
  await page.locator('[data-field="state"]', { hasText: 'resolved' }).waitFor();
  await eventuallyIs('paid in full, the case resolves, both receipts in the timeline',
    () => page.locator('.timeline li[data-kind="receipt"]').count(), 2);
  await eventually('and the resolution too', () => page.locator('.timeline li[data-kind="event"]', { hasText: 'resolve' }).count(),
    (count) => count >= 1, 'a resolve event in the timeline');
  await page.screenshot({ path: `${shots}/case.png`, fullPage: true });

  // an expired token: back to sign in, and what was typed is still there
  await page.goto(`${base}/#/cases/${mine.id}`);
  await settled(page);
  const note = page.locator('form[data-action="note"] textarea');
  await note.fill(`Called twice (${tag}), will try Friday.`);
  await page.evaluate(() => sessionStorage.setItem('recovery.token', 'expired.token.value'));
  await page.locator('form[data-action="note"]').getByRole('button').click();
  await page.getByText('Your session ended').waitFor();
  await page.getByLabel('Email').fill('agent@demo.example');
  await page.getByLabel('Password').fill('agent-demo-pass');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: `Case #${mine.id}` }).waitFor();
  await eventuallyIs('an expired token brings the user back to sign in, then to the case with the note still typed',
    () => page.locator('form[data-action="note"] textarea').inputValue(), `Called twice (${tag}), will try Friday.`);
  await page.locator('form[data-action="note"]').getByRole('button').click();
  await page.locator('.timeline li[data-kind="note"]').waitFor();
  ok(true, 'and the note is added');

  // a stale version from a second browser
  const other = await newCase();
  const second = await signIn('manager@demo.example', 'manager-demo-pass');
  await page.goto(`${base}/#/cases/${other.id}`);
  await second.goto(`${base}/#/cases/${other.id}`);
  await page.locator('form[data-event="dispute"]').waitFor();
  await second.locator('form[data-event="escalate"]').waitFor();
  const dispute = page.locator('form[data-event="dispute"]');
  await dispute.getByLabel('Reason').fill('says it was paid');
  await dispute.getByRole('button').click();
  await page.locator('[data-field="state"]', { hasText: 'disputed' }).waitFor();
  await second.locator('form[data-event="escalate"]').getByRole('button').click();
  await second.locator('#status', { hasText: 'Someone else changed this case' }).waitFor();
  await eventuallyIs('the second browser is told that someone else changed the case, and sees its new state',
    () => second.locator('[data-field="state"]').textContent(), 'disputed');

  // documents: upload with progress, download the same bytes
  const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
                          '1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082', 'hex');
  await page.goto(`${base}/#/cases/${mine.id}`);
  await page.getByLabel('Upload a document').setInputFiles({ name: `proof-${tag}.png`, mimeType: 'image/png', buffer: png });
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.locator('.timeline li[data-kind="document"]').waitFor();
  ok(true, 'a document is uploaded and appears in the timeline');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download' }).click()]);
  const stream = await download.createReadStream();
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  ok(Buffer.concat(chunks).equals(png), 'and downloaded byte for byte');
  await page.getByRole('button', { name: 'Preview' }).click();
  await page.locator('.preview img').waitFor();
  await page.waitForFunction(() => document.querySelector('.preview img').complete);
  await eventuallyIs('an image can be previewed (a blob: URL the Content-Security-Policy allows)',
    () => page.locator('.preview img').evaluate((img) => img.naturalWidth), 1);

  // importing a statement: a preview of what would happen, then the import
  const importCase = await newCase(`Import ${tag}`);
  const importDay = new Date().toISOString().slice(0, 10);
  const camt = '<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">' +
    `<BkToCstmrStmt><Stmt><Id>E2E-${tag}</Id><Ntry><Amt Ccy="EUR">100.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>` +
    `<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>${importDay}</Dt></BookgDt><NtryDtls><TxDtls><RltdPties><Dbtr><Pty><Nm>Import ${tag}</Nm>` +
    `</Pty></Dbtr></RltdPties><RmtInf><Ustrd>RC-${String(importCase.id).padStart(6, '0')} ${tag}</Ustrd></RmtInf></TxDtls></NtryDtls>` +
    '</Ntry></Stmt></BkToCstmrStmt></Document>\n';
  await page.getByRole('link', { name: 'Import' }).click();
  await settled(page);
  await page.getByLabel('Statement file').setInputFiles({ name: `statement-${tag}.xml`, mimeType: 'application/xml',
    buffer: Buffer.from(camt) });
  await page.getByRole('button', { name: 'Preview' }).click();
  await eventually('the preview of a CAMT statement shows its line would be applied to the case',
    () => page.locator('table[aria-label="Lines found"] tbody tr').first().textContent(),
    (row) => typeof row === 'string' && row.includes(`would be applied to case #${importCase.id}`), `a row naming case #${importCase.id}`);
  await eventuallyIs('and reads the format from the bytes',
    () => page.locator('[data-format]').getAttribute('data-format'), 'camt.053.001.08');
  is((await agentApi('GET', `/recovery-cases/${importCase.id}`)).json.balance, 10000, 'the preview (finished) changed nothing');
  await page.screenshot({ path: `${shots}/import-preview.png`, fullPage: true });
  await page.getByRole('button', { name: 'Apply the import' }).click();
  await page.locator('[data-extraction]').waitFor();
  ok(true, 'applying the import says which extraction it made');
  await eventuallyIs('and the case is paid', async () => (await agentApi('GET', `/recovery-cases/${importCase.id}`)).json.balance, 0);

  // a role without the permission
  const viewer = await signIn('viewer@demo.example', 'viewer-demo-pass');
  await viewer.goto(`${base}/#/cases/${other.id}`);
  await viewer.getByText('Your role can read this case but not change it.').waitFor();
  is(await viewer.locator('form[data-action="payment"]').count(), 0, 'a viewer does not see the actions');
  const forced = await viewer.evaluate(async (id) => {
    const res = await fetch(`/api/v1/recovery-cases/${id}/payments`, { method: 'POST', headers: {
      Authorization: `Bearer ${sessionStorage.getItem('recovery.token')}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ amount: 1, currency: 'EUR' }) });
    return { status: res.status, body: await res.json() };
  }, other.id);
  ok(forced.status === 403 && /permission denied/.test(forced.body.message),
     'and calling the API anyway gets a clear 403', forced);

  // XSS: the name renders as text
  const payload = '<img src=x onerror=alert(1)>';
  const victim = await newCase(payload);
  await page.goto(`${base}/#/customers/${victim.customer.id}`);
  await settled(page);
  await eventuallyIs('a customer named like HTML shows as exactly that text', () => page.locator('main h1').textContent(), payload);
  await page.goto(`${base}/#/cases/${victim.id}`);
  await settled(page);
  await eventuallyIs('on the case too', () => page.locator('[data-field="customer"]').textContent(), payload);
  is(await page.locator('main img').count(), 0, 'and no element is made of it');
  is(dialogs.length, 0, 'no script ran');

  // managers edit templates; an unknown placeholder is refused by name
  await second.goto(`${base}/#/reminders`);
  await settled(second);
  const editor = second.locator('form[data-editor="template"]');
  await editor.getByLabel('Name').fill(`t-${tag}`);
  await editor.getByLabel('Channel').selectOption('sms');
  await editor.getByLabel('Body').fill('Pay {{amount}} by {{due_dat}}');
  await editor.getByRole('button').click();
  await editor.locator('.notice', { hasText: 'unknown placeholder due_dat' }).waitFor();
  ok(true, 'a template with an unknown placeholder is refused, naming it');
  await editor.getByLabel('Body').fill('Pay {{amount}} by {{due_date}}');
  await editor.getByRole('button').click();
  await second.locator('#status', { hasText: `Template t-${tag} saved.` }).waitFor();
  await eventuallyIs('and saved once it is right', () => second.locator('td', { hasText: `t-${tag}` }).count(), 1);
  await page.goto(`${base}/#/reminders`);
  await settled(page);
  await page.getByRole('heading', { name: 'Templates' }).waitFor();
  is(await page.locator('form[data-editor="template"]').count(), 0, 'an agent sees the templates but has no template editor');

  // payments by status
  await page.goto(`${base}/#/payments?status=overdue`);
  await settled(page);
  await eventually('payments filtered by status', () => page.locator('table[aria-label="Payments"] tbody .badge').allTextContents(),
    (states) => states.length > 0 && states.every((s) => s === 'overdue'), 'rows, every one overdue');

  // finding a case by its reference
  await page.goto(`${base}/#/cases`);
  await settled(page);
  await page.getByLabel('Find a case').fill(`RC-${String(mine.id).padStart(6, '0')}`);
  await page.getByRole('button', { name: 'Find' }).click();
  await page.getByRole('heading', { name: `Case #${mine.id}` }).waitFor();
  ok(true, 'a case reference typed in the search opens the case');

  // the review queue: a payment found by the payer's name is confirmed
  const payer = `Payer ${tag}`;
  const owed = await newCase(payer);
  const statement = `Date,Description,Amount,Currency,Payer Name\n25/11/2026,transfer,100.00,EUR,${payer}\n`
    + `25/11/2026,transfer,42.00,EUR,Nobody ${tag}\n`;
  const imported = await fetch(`${base}/api/v1/extractions/statements`, { method: 'POST', body: statement,
    headers: { Authorization: `Bearer ${await page.evaluate(() => sessionStorage.getItem('recovery.token'))}`,
      'Content-Type': 'text/csv' } }).then((r) => r.json());
  is(imported.by_status?.review, 1, 'a statement line matched by the payer\'s name waits for review');
  await page.goto(`${base}/#/reconciliation`);
  await settled(page);
  const row = page.locator('tr', { hasText: payer });
  await row.getByRole('button', { name: 'Confirm' }).click();
  await page.locator('#status', { hasText: 'The payment was applied.' }).waitFor();
  is((await agentApi('GET', `/recovery-cases/${owed.id}`)).json.state, 'resolved', 'confirmed in the queue, the money resolves the case');
  await page.goto(`${base}/#/reconciliation?extraction_id=${imported.id}`);
  await settled(page);
  await page.getByRole('link', { name: 'matched no case' }).click();
  await settled(page);
  await eventuallyIs('the statement\'s line that matched no case is listed with its extraction',
    () => page.locator('tr', { hasText: `Nobody ${tag}` }).count(), 1);

  // an auditor reads the trail of a case and verifies the chains
  const auditor = await signIn('auditor@demo.example', 'auditor-demo-pass');
  await auditor.goto(`${base}/#/audit?table=recovery_cases&row=${owed.id}`);
  await settled(auditor);
  await eventually('an auditor sees the trail of a case', () => auditor.locator('main tbody tr').count(),
    (rows) => rows >= 2, 'two rows of audit trail or more');
  await auditor.getByRole('link', { name: 'Verify the hash chains' }).click();
  await settled(auditor);
  await eventuallyIs('and the chains verify', () => auditor.locator('[data-verify]').getAttribute('data-verify'), 'true');
  await auditor.screenshot({ path: `${shots}/audit.png`, fullPage: true });
  is(await page.getByRole('link', { name: 'Audit' }).count(), 0, 'an agent has no audit page in the menu');

  // the main pages: screenshots, and no serious accessibility problem
  for (const [path, name, heading] of [['#/', 'dashboard', 'Dashboard'], ['#/cases', 'cases', 'Cases'],
    [`#/cases/${mine.id}`, 'case', `Case #${mine.id}`], ['#/customers', 'customers', 'Customers'],
    ['#/payments?status=overdue', 'payments', 'Payments'],
    ['#/reminders', 'reminders', 'Reminders'], ['#/reconciliation', 'reconciliation', 'Reconciliation'],
    ['#/import', 'import', 'Import a statement']]) {
    await page.goto(`${base}/${path}`);
    await settled(page);
    await page.getByRole('heading', { name: heading }).first().waitFor();
    await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
    const problems = await accessibilityProblems(page);
    ok(problems.length === 0, `${heading}: no serious WCAG 2 AA problem (axe-core)`, problems);
  }
  await page.setViewportSize({ width: 820, height: 1180 });
  await page.goto(`${base}/#/cases/${mine.id}`);
  await settled(page);
  await page.screenshot({ path: `${shots}/case-tablet.png`, fullPage: true });
  ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
     'at a tablet\'s width nothing scrolls sideways');
  await page.setViewportSize({ width: 1280, height: 900 });
  ok(true, `screenshots of the main pages are in ${shots}`);

  // live: a change in a second browser shows on the first one's open case
  // without a reload, saying who made it; payments to review raise a toast
  const livePayer = `Live Payer ${tag}`;
  const shared = await newCase(livePayer);
  await page.goto(`${base}/#/cases/${shared.id}`);
  await settled(page);
  await eventuallyIs('the web app keeps a live event stream open', () => page.evaluate(() => document.body.dataset.live), 'on');
  await page.evaluate(() => { window.notReloaded = true; });
  const colleague = await signIn('manager@demo.example', 'manager-demo-pass');
  await colleague.goto(`${base}/#/cases/${shared.id}`);
  await settled(colleague);
  const noteText = `Live note ${tag}`;
  const noteForm = colleague.locator('form[data-action="note"]');
  await noteForm.locator('textarea, input[name="body"]').fill(noteText);
  await noteForm.getByRole('button', { name: 'Add note' }).click();
  await eventually('the first browser shows the colleague one\'s note without a reload',
    () => page.locator('.timeline li[data-kind="note"]').allTextContents(),
    (notes) => notes.some((t) => t.includes(noteText)), `a note "${noteText}" in the timeline`);
  await eventually('and says who changed the case', () => page.locator('#status').textContent(),
    (status) => status.includes('manager@demo.example'), 'the status line naming manager@demo.example');
  ok(await page.evaluate(() => window.notReloaded === true), 'the page was not reloaded');
  await colleague.context().close();
  await fetch(`${base}/api/v1/extractions/statements`, { method: 'POST',
    headers: { Authorization: `Bearer ${(await page.evaluate(() => sessionStorage.getItem('recovery.token')))}`,
      'Content-Type': 'text/csv' },
    body: `Date;Amount;Currency;Reference;Payer\r\n2026-11-25;1.00;EUR;part ${tag};${livePayer}\r\n` });
  await eventually('payments waiting for review raise a toast', () => page.locator('.toast').allTextContents(),
    (toasts) => toasts.some((t) => /wait for review/.test(t)), 'a toast about payments to review');
  await page.screenshot({ path: `${shots}/live-case.png`, fullPage: true });

  // signing out forgets the token
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  ok(!(await page.evaluate(() => sessionStorage.getItem('recovery.token'))), 'signing out forgets the token');
  await page.goto(`${base}/#/cases`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  ok(true, 'and the pages ask to sign in again');
} catch (error) {
  ok(false, `the web app test ran to its end: ${error.message.split('\n')[0]}`);
} finally {
  await browser.close();
}
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
