// Payments by due date: status and a range of due dates, page by page.
import { h, mount, fields, nextPageLink } from '../dom.js';
import { api } from '../api.js';
import { money, date } from '../format.js';
import { go } from '../nav.js';

const FILTERS = ['status', 'due_from', 'due_to', 'customer_id'];

export async function render(main, { params }) {
  const query = new URLSearchParams({ limit: '25' });
  for (const name of [...FILTERS, 'cursor']) if (params.get(name)) query.set(name, params.get(name));
  const page = await api('GET', `/payments?${query}`);
  const form = h('form', { class: 'filters', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    go('/payments', new URLSearchParams(Object.entries(fields(form)).filter(([, v]) => v)));
  } },
  h('label', {}, 'Status', h('select', { name: 'status' }, ['', 'pending', 'failed', 'overdue', 'paid'].map((s) =>
    h('option', { value: s, selected: params.get('status') === s }, s || 'any')))),
  h('label', {}, 'Due from', h('input', { name: 'due_from', type: 'date', value: params.get('due_from') || '' })),
  h('label', {}, 'Due to', h('input', { name: 'due_to', type: 'date', value: params.get('due_to') || '' })),
  h('button', { type: 'submit' }, 'Filter'));
  mount(main, h('h1', {}, 'Payments'), form,
    page.items.length ? h('table', { 'aria-label': 'Payments' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Reference'), h('th', {}, 'Customer'), h('th', {}, 'Due'), h('th', {}, 'Status'),
        h('th', { class: 'num' }, 'Amount'), h('th', { class: 'num' }, 'Outstanding'), h('th', {}, 'Case'))),
      h('tbody', {}, page.items.map((p) => h('tr', {},
        h('td', {}, p.external_ref), h('td', {}, h('a', { href: `#/customers/${p.customer_id}` }, `#${p.customer_id}`)),
        h('td', {}, date(p.due_date)), h('td', {}, h('span', { class: `badge ${p.status}` }, p.status)),
        h('td', { class: 'num' }, money(p.amount, p.currency)), h('td', { class: 'num' }, money(p.outstanding, p.currency)),
        h('td', {}, p.case_id ? h('a', { href: `#/cases/${p.case_id}` }, `#${p.case_id}`) : '–')))))
      : h('p', {}, 'No payment matches these filters.'),
    nextPageLink('/payments', params, page.next_cursor));
}
