// Customers: search by name, email or reference, page by page.
import { h, mount, fields, nextPageLink } from '../dom.js';
import { api } from '../api.js';
import { go } from '../nav.js';

export async function render(main, { params }) {
  const query = new URLSearchParams({ limit: '25' });
  for (const name of ['q', 'cursor']) if (params.get(name)) query.set(name, params.get(name));
  const page = await api('GET', `/customers?${query}`);
  const form = h('form', { class: 'filters', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    go('/customers', new URLSearchParams(Object.entries(fields(form)).filter(([, v]) => v)));
  } }, h('label', {}, 'Name, email or reference', h('input', { name: 'q', type: 'search', value: params.get('q') || '' })),
  h('button', { type: 'submit' }, 'Search'));
  mount(main, h('h1', {}, 'Customers'), form,
    h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Reference'), h('th', {}, 'Name'), h('th', {}, 'Email'),
      h('th', {}, 'Locale'))),
    h('tbody', {}, page.items.map((c) => h('tr', {}, h('td', {}, c.external_ref),
      h('td', {}, h('a', { href: `#/customers/${c.id}` }, c.name)), h('td', {}, c.email || ''), h('td', {}, c.locale))))),
    nextPageLink('/customers', params, page.next_cursor));
}
