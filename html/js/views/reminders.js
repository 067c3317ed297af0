// Dunning policies and templates, the notification history with delivery
// status, and dead letters to retry (managers).
import { h, mount } from '../dom.js';
import { api, session } from '../api.js';
import { date } from '../format.js';
import { say } from '../app.js';

export async function render(main, { params }) {
  const status = params.get('status') || '';
  const [policies, templates, notifications, delivery] = await Promise.all([
    api('GET', '/dunning-policies'), api('GET', '/templates'),
    api('GET', `/notifications?limit=50${status ? `&status=${encodeURIComponent(status)}` : ''}`), api('GET', '/delivery'),
  ]);
  const manager = ['recovery_manager', 'recovery_admin'].includes(session.me.role);
  mount(main, h('h1', {}, 'Reminders'),
    h('section', { class: 'card' }, h('h2', {}, 'Delivery'),
      h('p', {}, delivery.worker ? 'The delivery worker is running.' : 'The delivery worker is not running.'),
      h('ul', {}, delivery.circuits.map((c) => h('li', {}, `${c.channel}: circuit ${c.state}`,
        c.consecutive_failures ? `, ${c.consecutive_failures} failures in a row` : '')))),
    h('section', { class: 'card' }, h('h2', {}, 'Notifications'),
      h('nav', { class: 'pager' }, ['', 'queued', 'sent', 'failed', 'dead', 'cancelled'].map((s) =>
        h('a', { href: `#/reminders${s ? `?status=${s}` : ''}`, 'aria-current': s === status ? 'page' : null }, s || 'all'))),
      h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Case'), h('th', {}, 'Channel'), h('th', {}, 'Template'),
        h('th', {}, 'Status'), h('th', {}, 'Why'), h('th', {}, 'When'), h('th', {}, ''))),
      h('tbody', {}, notifications.items.map((n) => h('tr', {},
        h('td', {}, h('a', { href: `#/cases/${n.case_id}` }, `#${n.case_id}`)), h('td', {}, n.channel), h('td', {}, n.template || ''),
        h('td', {}, h('span', { class: `badge ${n.status}` }, n.status)), h('td', {}, n.cancel_reason || n.last_error || ''),
        h('td', {}, date(n.sent_at || n.send_after)),
        h('td', {}, manager && n.status === 'dead' ? h('button', { type: 'button', onclick: () => retry(n) }, 'Retry') : null)))))),
    h('section', { class: 'card' }, h('h2', {}, 'Dunning policies'),
      policies.items.map((p) => h('div', {}, h('h3', {}, p.name, p.is_default ? ' (default)' : ''),
        h('ol', {}, p.steps.map((s) => h('li', {}, `day ${s.offset_days}: ${s.channel} "${s.template}"`,
          s.fee ? `, fee ${JSON.stringify(s.fee)}` : '', s.action ? `, then ${s.action}` : '')))))),
    h('section', { class: 'card' }, h('h2', {}, 'Templates'),
      h('table', {}, h('tbody', {}, templates.items.map((t) => h('tr', {}, h('td', {}, t.name), h('td', {}, t.channel),
        h('td', {}, t.locale), h('td', {}, t.subject || ''), h('td', {}, t.body)))))));

  async function retry(n) {
    try {
      await api('POST', `/notifications/${n.id}/retry`);
      say(`Notification ${n.id} is queued again.`);
      await render(main, { params });
    } catch (error) {
      say(error.message);
    }
  }
}
