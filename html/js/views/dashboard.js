// KPIs of the analytics endpoints, aging and recovery by month as charts,
// and the cases assigned to me whose next action is due.
import { h, mount } from '../dom.js';
import { api } from '../api.js';
import { money } from '../format.js';
import { barChart } from '../chart.js';

const percent = (rate) => (rate === null || rate === undefined ? '–' : `${(rate * 100).toFixed(1)} %`);

export async function render(main, { me }) {
  const [summary, aging, months, mine, states] = await Promise.all([
    api('GET', '/analytics/summary'),
    api('GET', '/analytics/aging'),
    api('GET', '/analytics/recovery-by-month'),
    api('GET', `/recovery-cases?assigned_user_id=${me.user_id || 0}&sort=updated_at&limit=200`),
    api('GET', '/case-states'),
  ]);
  // my work today: my open cases whose next action is due by tonight
  const tonight = new Date();
  tonight.setHours(23, 59, 59, 999);
  const closed = states.items.filter((s) => s.terminal).map((s) => s.state);
  mine.items = mine.items
    .filter((c) => !closed.includes(c.state) && c.next_action_at && new Date(c.next_action_at) <= tonight)
    .sort((a, b) => new Date(a.next_action_at) - new Date(b.next_action_at));
  const currencies = summary.by_currency.map((c) => c.currency);
  const chartCurrency = currencies[0];
  mount(main,
    h('h1', {}, 'Dashboard'),
    h('section', { class: 'grid', 'aria-label': 'Key figures' },
      summary.by_currency.map((c) => h('div', { class: 'card kpi', dataset: { currency: c.currency } },
        h('div', { class: 'label' }, `Open in ${c.currency}`),
        h('div', { class: 'value', dataset: { kpi: 'open_balance' } }, money(c.open_balance, c.currency)),
        h('div', {}, h('span', { dataset: { kpi: 'open_cases' } }, String(c.open_cases)), ' open cases'),
        h('div', {}, 'Recovered this month: ', h('span', { dataset: { kpi: 'recovered' } }, money(c.recovered_this_month, c.currency))),
        h('div', {}, 'Recovery rate: ', percent(c.recovery_rate)))),
      h('div', { class: 'card kpi' },
        h('div', { class: 'label' }, 'Promises kept'),
        h('div', { class: 'value', dataset: { kpi: 'promise_kept_rate' } }, percent(summary.promise_kept_rate)))),
    h('div', { class: 'two' },
      h('section', { class: 'card chart' }, h('h2', {}, `Aging of open balances (${chartCurrency})`),
        barChart(`Aging of open balances in ${chartCurrency}`, aging.buckets
          .filter((b) => b.currency === chartCurrency)
          .map((b) => ({ label: `${b.bucket} days`, value: b.balance, caption: String(b.cases) })))),
      h('section', { class: 'card chart' }, h('h2', {}, `Recovery rate by month (${chartCurrency})`),
        barChart(`Recovery rate by month in ${chartCurrency}`, months.months
          .filter((m) => m.currency === chartCurrency)
          .map((m) => ({ label: m.month, value: Math.round((m.recovery_rate || 0) * 1000), caption: percent(m.recovery_rate) }))))),
    h('section', { class: 'card' }, h('h2', {}, 'My work today'),
      mine.items.length ? h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Case'), h('th', {}, 'Customer'), h('th', {}, 'State'),
          h('th', { class: 'num' }, 'Balance'), h('th', {}, 'Next action'))),
        h('tbody', {}, mine.items.map((c) => h('tr', {},
          h('td', {}, h('a', { href: `#/cases/${c.id}` }, `#${c.id}`)), h('td', {}, c.customer_name),
          h('td', {}, h('span', { class: `badge ${c.state}` }, c.state)),
          h('td', { class: 'num' }, money(c.balance, c.currency)),
          h('td', {}, c.next_action_at ? new Date(c.next_action_at).toLocaleString() : '–')))))
        : h('p', { class: 'muted' }, 'Nothing of yours is due today.')));
}
