// The web app: a hash router over the views; every page needs a signed-in
// user except sign in.  Views render text only (dom.js) and call the API.
import { h, mount } from './dom.js';
import { api, session } from './api.js';
import { parseHash, go, say } from './nav.js';
import * as live from './live.js';
import * as signin from './views/signin.js';
import * as dashboard from './views/dashboard.js';
import * as cases from './views/cases.js';
import * as caseView from './views/case.js';
import * as customers from './views/customers.js';
import * as customer from './views/customer.js';
import * as payments from './views/payments.js';
import * as reminders from './views/reminders.js';
import * as reconciliation from './views/reconciliation.js';
import * as statementImport from './views/import.js';
import * as audit from './views/audit.js';

// pattern, view, and for the menu its label and link
const routes = [
  [/^\/signin$/, signin],
  [/^\/$/, dashboard, 'Dashboard', '#/'],
  [/^\/cases$/, cases, 'Cases', '#/cases'],
  [/^\/cases\/(\d+)$/, caseView],
  [/^\/customers$/, customers, 'Customers', '#/customers'],
  [/^\/customers\/(\d+)$/, customer],
  [/^\/payments$/, payments, 'Payments', '#/payments'],
  [/^\/reminders$/, reminders, 'Reminders', '#/reminders'],
  [/^\/reconciliation$/, reconciliation, 'Reconciliation', '#/reconciliation'],
  [/^\/import$/, statementImport, 'Import', '#/import'],
  [/^\/audit$/, audit, 'Audit', '#/audit'],
];

const main = document.getElementById('main');

function navigation(current) {
  const canAudit = session.me?.may?.audit;
  const canAct = session.me?.may?.act;
  mount(document.getElementById('nav'), routes
    .filter(([, , label]) => label && (label !== 'Audit' || canAudit) && (label !== 'Import' || canAct))
    .map(([pattern, , label, href]) => h('a', { href, 'aria-current': current === pattern ? 'page' : null }, label)));
  mount(document.getElementById('who'), session.me ? [
    h('span', {}, `${session.me.display_name} (${session.me.role.replace('recovery_', '')})`),
    h('button', { type: 'button', onclick: signOut }, 'Sign out'),
  ] : []);
}

function signOut() {
  live.stop();
  session.token = null;
  session.me = null;
  go('/signin');
}

async function render() {
  const { path, params } = parseHash();
  say('');
  const route = routes.find(([pattern]) => pattern.test(path)) || routes[1];
  const [pattern, view] = route;
  if (view !== signin && !session.token) {
    go('/signin', new URLSearchParams({ next: location.hash || '#/' }));
    return;
  }
  if (session.token && !session.me) {
    try { session.me = await api('GET', '/auth/me'); } catch { return; }
  }
  navigation(pattern);
  if (session.me) live.start();
  const shown = location.hash;
  main.dataset.view = 'loading';
  mount(main, h('p', { class: 'loading' }, 'Loading…'));
  try {
    await view.render(main, { params, match: path.match(pattern), me: session.me });
  } catch (error) {
    if (error.status === 401) return;
    mount(main, h('p', { class: 'notice', role: 'alert' }, `Could not load this page: ${error.message}`));
  }
  // what the page shows now (the tests wait for it)
  main.dataset.view = shown;
  main.focus();
}

// What changes elsewhere shows here: the open case redraws and says who
// changed it, the dashboard and the case list refresh (a burst of changes
// once, at most twice a second), and a failed reminder or payments to
// review raise a toast.  A page is never redrawn under someone's hands:
// while a field has the focus, the redraw waits until it loses it.
let refreshing = null;
let refreshMessage = null;
function typing() {
  const el = document.activeElement;
  return !!el && main.contains(el) && ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName);
}

function refreshSoon(message) {
  if (message) refreshMessage = message;
  if (refreshing) return;
  refreshing = setTimeout(async () => {
    refreshing = null;
    const said = refreshMessage;
    refreshMessage = null;
    if (main.dataset.view === 'loading') return;
    if (typing()) {
      if (said) say(`${said} The page is redrawn when you leave the field.`);
      main.addEventListener('focusout', () => refreshSoon(said), { once: true });
      return;
    }
    await render();
    if (said) say(said);
  }, 500);
}

function toast(text, href) {
  const box = document.getElementById('toasts');
  const item = h('div', { class: 'toast', role: 'status' }, href ? h('a', { href }, text) : text);
  box.append(item);
  setTimeout(() => item.remove(), 10000);
}

const CHANGES = { transition: 'moved it on', payment: 'recorded money received', balance: 'added to its balance',
  assignment: 'reassigned it', note: 'added a note', document: 'added a document', opened: 'opened it', updated: 'updated it' };

live.on((type, e) => {
  const { path } = parseHash();
  if (type === 'reset') {
    refreshSoon('Some changes were missed while offline: the page was reloaded.');
  } else if (type === 'case.changed') {
    const open = path.match(/^\/cases\/(\d+)$/);
    if (open && Number(open[1]) === e.case_id) {
      // your own change: the page has already redrawn after it
      if (e.actor === session.me?.email) return;
      refreshSoon(`${e.actor} ${CHANGES[e.change] || 'changed it'} just now${e.state ? ` (${e.state})` : ''}.`);
    } else if (path === '/' || path === '/cases') {
      refreshSoon();
    }
  } else if (type === 'notification.failed' || type === 'notification.dead') {
    toast(`A ${e.channel} reminder for case #${e.case_id} ${type === 'notification.dead' ? 'will not be delivered' : 'failed; it will be retried'}.`,
      `#/cases/${e.case_id}`);
  } else if (type === 'reconciliation.review') {
    toast(`${e.lines} payment${e.lines === 1 ? '' : 's'} found in an import wait for review.`, '#/reconciliation');
    if (path === '/reconciliation') refreshSoon();
  } else if (type === 'extraction.finished' && path === '/reconciliation') {
    refreshSoon();
  }
});

window.addEventListener('hashchange', render);
render();
