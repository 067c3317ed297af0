// Dunning policies and templates, the notification history with delivery
// status, and dead letters to retry (managers).
import { h, mount, fields, nextPageLink } from '../dom.js';
import { api, session } from '../api.js';
import { date } from '../format.js';
import { say } from '../nav.js';

export async function render(main, { params }) {
  const status = params.get('status') || '';
  const [policies, templates, notifications, delivery] = await Promise.all([
    api('GET', '/dunning-policies'), api('GET', '/templates'),
    api('GET', `/notifications?limit=50${status ? `&status=${encodeURIComponent(status)}` : ''}${
      params.get('cursor') ? `&cursor=${encodeURIComponent(params.get('cursor'))}` : ''}`), api('GET', '/delivery'),
  ]);
  const manager = session.me.may.manage;
  mount(main, h('h1', {}, 'Reminders'),
    h('section', { class: 'card' }, h('h2', {}, 'Delivery'),
      h('p', {}, delivery.worker ? 'The delivery worker is running.' : 'The delivery worker is not running.'),
      delivery.problem ? h('p', { class: 'notice', role: 'alert', dataset: { problem: 'delivery' } },
        `${delivery.problem.message} ${delivery.problem.hint}`) : null,
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
        h('td', {}, manager && n.status === 'dead' ? h('button', { type: 'button', onclick: () => retry(n) }, 'Retry') : null))))),
      nextPageLink('/reminders', params, notifications.next_cursor)),
    h('section', { class: 'card' }, h('h2', {}, 'Dunning policies'),
      policies.items.map((p) => h('div', {}, h('h3', {}, p.name, p.is_default ? ' (default)' : ''),
        h('ol', {}, p.steps.map((s) => h('li', {}, `day ${s.offset_days}: ${s.channel} "${s.template}"`,
          s.fee ? `, fee ${JSON.stringify(s.fee)}` : '', s.action ? `, then ${s.action}` : '')))))),
    manager ? policyEditor() : null,
    h('section', { class: 'card' }, h('h2', {}, 'Templates'),
      h('p', { class: 'muted' }, `Placeholders: ${templates.placeholders.map((p) => `{{${p}}}`).join(' ')}`),
      h('table', {}, h('tbody', {}, templates.items.map((t) => h('tr', {}, h('td', {}, t.name), h('td', {}, t.channel),
        h('td', {}, t.locale), h('td', {}, t.subject || ''), h('td', {}, t.body))))),
      manager ? templateEditor() : null));

  // managers: save a template; an unknown placeholder is refused with its name
  function templateEditor() {
    const message = h('p', { role: 'alert' });
    const form = h('form', { class: 'inline', dataset: { editor: 'template' }, onsubmit: async (e) => {
      e.preventDefault();
      const v = fields(form);
      try {
        await api('POST', '/templates', { name: v.name, channel: v.channel, locale: v.locale,
          subject: v.subject || null, body: v.body });
        // redrawn first, then said: the status never describes a page not yet drawn
        await render(main, { params });
        say(`Template ${v.name} saved.`);
      } catch (error) {
        message.className = 'notice';
        message.textContent = [error.message, error.detail].filter(Boolean).join(' ');
      }
    } },
    h('label', {}, 'Name', h('input', { name: 'name', required: true, pattern: '[a-z][a-z0-9_.-]*' })),
    h('label', {}, 'Channel', h('select', { name: 'channel' }, ['email', 'sms', 'letter', 'webhook'].map((c) => h('option', {}, c)))),
    h('label', {}, 'Locale', h('input', { name: 'locale', required: true, value: 'en-GB', size: 6 })),
    h('label', {}, 'Subject (email)', h('input', { name: 'subject' })),
    h('label', {}, 'Body', h('textarea', { name: 'body', required: true, rows: 3, cols: 40 })),
    h('button', { type: 'submit' }, 'Save template'), message);
    return h('div', {}, h('h3', {}, 'New or changed template'), form);
  }

  // managers: save a policy's steps, as JSON
  function policyEditor() {
    const message = h('p', { role: 'alert' });
    const form = h('form', { class: 'inline', dataset: { editor: 'policy' }, onsubmit: async (e) => {
      e.preventDefault();
      const v = fields(form);
      let steps;
      try { steps = JSON.parse(v.steps); } catch {
        message.className = 'notice';
        message.textContent = 'The steps are not JSON: write them as in the example.';
        return;
      }
      try {
        await api('POST', '/dunning-policies', { name: v.name, steps, description: v.description || null });
        await render(main, { params });
        say(`Dunning policy ${v.name} saved.`);
      } catch (error) {
        message.className = 'notice';
        message.textContent = error.message;
      }
    } },
    h('label', {}, 'Name', h('input', { name: 'name', required: true })),
    h('label', {}, 'Description', h('input', { name: 'description' })),
    h('label', {}, 'Steps (JSON)', h('textarea', { name: 'steps', required: true, rows: 4, cols: 60,
      placeholder: '[{"offset_days": 3, "channel": "email", "template": "payment-overdue"}]' })),
    h('button', { type: 'submit' }, 'Save policy'), message);
    return h('section', { class: 'card' }, h('h2', {}, 'New or changed dunning policy'), form);
  }

  async function retry(n) {
    try {
      await api('POST', `/notifications/${n.id}/retry`);
      await render(main, { params });
      say(`Notification ${n.id} is queued again.`);
    } catch (error) {
      say(error.message);
    }
  }
}
