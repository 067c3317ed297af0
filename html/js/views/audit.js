// The audit trail of a case, a customer or a user, and the chain check.
import { h, mount, fields, nextPageLink } from '../dom.js';
import { api } from '../api.js';
import { date } from '../format.js';
import { go } from '../nav.js';

export async function render(main, { params }) {
  const query = new URLSearchParams({ limit: '50' });
  for (const name of ['table', 'row', 'actor', 'customer_id', 'cursor']) if (params.get(name)) query.set(name, params.get(name));
  const [rows, verify] = await Promise.all([api('GET', `/audit?${query}`),
    params.get('verify') ? api('GET', '/audit/verify') : null]);
  const form = h('form', { class: 'filters', onsubmit: (e) => {
    e.preventDefault();
    go('/audit', new URLSearchParams(Object.entries(fields(form)).filter(([, v]) => v)));
  } },
  h('label', {}, 'Table', h('input', { name: 'table', value: params.get('table') || '', placeholder: 'recovery_cases' })),
  h('label', {}, 'Row', h('input', { name: 'row', value: params.get('row') || '' })),
  h('label', {}, 'Actor', h('input', { name: 'actor', value: params.get('actor') || '' })),
  h('label', {}, 'Customer', h('input', { name: 'customer_id', type: 'number', value: params.get('customer_id') || '' })),
  h('button', { type: 'submit' }, 'Show'));
  const checkParams = new URLSearchParams(params);
  checkParams.set('verify', '1');
  mount(main, h('h1', {}, 'Audit trail'),
    h('section', { class: 'card' }, verify
      ? h('p', { class: verify.ok ? 'ok' : 'error', dataset: { verify: verify.ok } },
        verify.ok ? `The chains verify: ${verify.rows_checked} rows on ${verify.chains} chains.`
          : `The chain is broken at row ${verify.first_broken_id}: ${verify.problem}`)
      : h('a', { href: `#/audit?${checkParams}` }, 'Verify the hash chains')),
    form,
    h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Who'), h('th', {}, 'Action'),
      h('th', {}, 'Row'), h('th', {}, 'Change'))),
    h('tbody', {}, (rows.items || []).map((r) => h('tr', {}, h('td', {}, date(r.occurred_at)), h('td', {}, r.actor),
      h('td', {}, r.action), h('td', {}, `${r.table_name} ${r.row_key}`),
      h('td', {}, h('code', {}, JSON.stringify(r.new_row || r.old_row).slice(0, 300))))))),
    nextPageLink('/audit', params, rows.next_cursor));
}
