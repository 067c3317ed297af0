// Cases with filters, sort and keyset pagination; the page's place is in the URL.
import { h, mount, fields, nextPageLink } from '../dom.js';
import { api } from '../api.js';
import { money } from '../format.js';
import { go } from '../nav.js';

const SORTS = [['-updated_at', 'Recently changed'], ['-balance', 'Largest balance'], ['balance', 'Smallest balance'],
  ['opened_at', 'Oldest'], ['id', 'Case number']];
const FILTERS = ['state', 'min_overdue_days', 'min_balance', 'max_balance', 'customer_id', 'assigned_user_id', 'sort'];

export async function render(main, { params, me }) {
  const query = new URLSearchParams();
  for (const name of [...FILTERS, 'cursor']) if (params.get(name)) query.set(name, params.get(name));
  query.set('limit', '25');
  const [page, states] = await Promise.all([api('GET', `/recovery-cases?${query}`), api('GET', '/case-states')]);
  const form = h('form', { class: 'filters', role: 'search', onsubmit: filter },
    h('label', {}, 'State', h('select', { name: 'state' },
      ['', ...states.items.map((s) => s.state)].map((s) =>
        h('option', { value: s, selected: params.get('state') === s }, s || 'any')))),
    h('label', {}, 'Overdue days at least', h('input', { name: 'min_overdue_days', type: 'number', min: 0,
      value: params.get('min_overdue_days') || '' })),
    h('label', {}, 'Balance from (minor units)', h('input', { name: 'min_balance', type: 'number', min: 0,
      value: params.get('min_balance') || '' })),
    h('label', {}, 'to', h('input', { name: 'max_balance', type: 'number', min: 0, value: params.get('max_balance') || '' })),
    h('label', {}, 'Assigned to', h('select', { name: 'assigned_user_id' },
      h('option', { value: '' }, 'anyone'),
      h('option', { value: String(me.user_id), selected: params.get('assigned_user_id') === String(me.user_id) }, 'me'))),
    h('label', {}, 'Sort', h('select', { name: 'sort' },
      SORTS.map(([v, label]) => h('option', { value: v, selected: (params.get('sort') || '-updated_at') === v }, label)))),
    h('button', { type: 'submit' }, 'Filter'));

  const search = h('form', { class: 'filters', role: 'search', onsubmit: find },
    h('label', {}, 'Find a case (RC-000042, 42) or a customer',
      h('input', { name: 'find', type: 'search', required: true })),
    h('button', { type: 'submit', class: 'secondary' }, 'Find'));
  mount(main, h('h1', {}, 'Cases'), search, form,
    page.items.length ? h('table', { 'aria-label': 'Cases' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Case'), h('th', {}, 'Customer'), h('th', {}, 'State'),
        h('th', { class: 'num' }, 'Balance'), h('th', { class: 'num' }, 'Days overdue'), h('th', {}, 'Updated'))),
      h('tbody', {}, page.items.map((c) => h('tr', { dataset: { case: c.id } },
        h('td', {}, h('a', { href: `#/cases/${c.id}` }, `#${c.id}`)),
        h('td', {}, c.customer_name),
        h('td', {}, h('span', { class: `badge ${c.state}` }, c.state)),
        h('td', { class: 'num' }, money(c.balance, c.currency)),
        h('td', { class: 'num' }, c.overdue_days ?? ''),
        h('td', {}, new Date(c.updated_at).toLocaleDateString())))))
      : h('p', {}, 'No case matches these filters.'),
    nextPageLink('/cases', params, page.next_cursor));

  // a case number or reference opens the case; anything else searches customers
  function find(event) {
    event.preventDefault();
    const text = fields(search).find.trim();
    const number = text.match(/^(?:rc[- ]?|#)?0*(\d{1,12})$/i);
    if (number) go(`/cases/${number[1]}`);
    else go('/customers', new URLSearchParams({ q: text }));
  }

  function filter(event) {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const [k, v] of Object.entries(fields(form))) if (v) chosen.set(k, v);
    go('/cases', chosen);
  }
}
