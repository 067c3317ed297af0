// A customer, their cases and payments; erasure for admins, confirmed first.
import { h, mount } from '../dom.js';
import { api, session } from '../api.js';
import { money, date } from '../format.js';
import { say } from '../nav.js';

export async function render(main, { match }) {
  const id = match[1];
  const [c, payments] = await Promise.all([api('GET', `/customers/${id}`), api('GET', `/payments?customer_id=${id}&limit=50`)]);
  const message = h('p', { role: 'alert' });
  mount(main, h('h1', {}, c.name),
    h('section', { class: 'card grid' },
      h('div', {}, h('div', { class: 'muted' }, 'Reference'), c.external_ref),
      h('div', {}, h('div', { class: 'muted' }, 'Email'), c.email || '–'),
      h('div', {}, h('div', { class: 'muted' }, 'Phone'), c.phone || '–'),
      h('div', {}, h('div', { class: 'muted' }, 'Locale and time zone'), `${c.locale}, ${c.time_zone}`)),
    h('section', { class: 'card' }, h('h2', {}, 'Cases'),
      h('ul', {}, (c.cases || []).map((k) => h('li', {}, h('a', { href: `#/cases/${k.id}` }, `#${k.id}`), ' ',
        h('span', { class: `badge ${k.state}` }, k.state), ' ', money(k.balance, k.currency))))),
    h('section', { class: 'card' }, h('h2', {}, 'Payments'),
      h('table', {}, h('tbody', {}, payments.items.map((p) => h('tr', {}, h('td', {}, p.external_ref),
        h('td', {}, date(p.due_date)), h('td', {}, p.status), h('td', { class: 'num' }, money(p.amount, p.currency))))))),
    session.me.may.administer && !c.erased_at ? h('section', { class: 'card' }, h('h2', {}, 'Erasure'),
      h('p', {}, 'Removes this customer\'s personal data everywhere, the audit trail included. Amounts and history stay.'),
      h('button', { type: 'button', class: 'danger', onclick: erase }, 'Erase personal data'), message) : null);

  async function erase() {
    if (!window.confirm(`Erase the personal data of ${c.name}? This cannot be undone.`)) return;
    try {
      await api('POST', `/customers/${id}/erase`);
      await render(main, { match });
      say('The customer\'s personal data was erased.');
    } catch (error) {
      message.className = 'notice';
      message.textContent = error.message;
    }
  }
}
