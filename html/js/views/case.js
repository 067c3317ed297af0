// One case: its customer, balance, payments and timeline, and only the
// actions the state machine allows now (from the API, not repeated here),
// each with the form its event needs.  A stale version says that someone
// else changed the case and shows it as it is now.
import { h, mount, fields, keepDraft } from '../dom.js';
import { api, upload, session } from '../api.js';
import { money, parseMoney, date } from '../format.js';
import { say } from '../nav.js';

export async function render(main, { match }) {
  const id = match[1];
  const c = await api('GET', `/recovery-cases/${id}`);
  const canAct = session.me.may.act;
  mount(main,
    h('h1', {}, `Case #${c.id} `, h('span', { class: `badge ${c.state}`, dataset: { field: 'state' } }, c.state)),
    h('div', { class: 'two' },
      h('div', {},
        h('section', { class: 'card grid' },
          h('div', { class: 'kpi' }, h('div', { class: 'label' }, 'Balance'),
            h('div', { class: 'value', dataset: { field: 'balance' } }, money(c.balance, c.currency))),
          h('div', {}, h('div', { class: 'label muted' }, 'Customer'),
            h('a', { href: `#/customers/${c.customer.id}`, dataset: { field: 'customer' } }, c.customer.name),
            h('div', { class: 'muted' }, c.customer.email || '')),
          h('div', {}, h('div', { class: 'label muted' }, 'Days overdue'), String(c.overdue_days ?? '–'),
            h('div', { class: 'muted' }, `version ${c.version}`))),
        payments(c),
        h('section', { class: 'card' }, h('h2', {}, 'Timeline'), timeline(c.timeline)),
        documents(c, canAct)),
      h('aside', { class: 'card' }, h('h2', {}, 'Actions'),
        canAct ? actions(c) : h('p', { class: 'muted' }, 'Your role can read this case but not change it.'))));
}

function payments(c) {
  return h('section', { class: 'card' }, h('h2', {}, 'Payments'),
    h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Reference'), h('th', {}, 'Due'), h('th', {}, 'Kind'),
      h('th', { class: 'num' }, 'Amount'), h('th', { class: 'num' }, 'Outstanding'))),
    h('tbody', {}, (c.payments || []).map((p) => h('tr', {}, h('td', {}, p.external_ref), h('td', {}, date(p.due_date)),
      h('td', {}, p.kind || 'principal'), h('td', { class: 'num' }, money(p.amount, p.currency || c.currency)),
      h('td', { class: 'num' }, money(p.outstanding, p.currency || c.currency)))))));
}

function describe(entry) {
  switch (entry.kind) {
    case 'event': return [`${entry.event}`, entry.to_state && entry.from_state !== entry.to_state ? ` → ${entry.to_state}` : '',
      entry.reason ? `: ${entry.reason}` : '', ` (${entry.actor})`];
    case 'promise': return [`${entry.promise_kind} of ${money(entry.amount, entry.currency)} by ${date(entry.due_date)}: ${entry.outcome}`];
    case 'receipt': return [`money received: ${money(entry.amount, entry.currency)}`, entry.reference ? ` (${entry.reference})` : ''];
    case 'notification': return [`${entry.channel} message: ${entry.status}`, entry.cancel_reason ? ` (${entry.cancel_reason})` : '',
      entry.last_error ? ` (${entry.last_error})` : ''];
    case 'document': return [`document ${entry.filename} (${entry.content_type})`];
    case 'note': return [`note by ${entry.author}: `, entry.body];
    case 'hold': return [`reminders on hold until ${date(entry.ends_at)}: ${entry.reason}`];
    default: return [entry.kind];
  }
}

function timeline(entries) {
  return h('ol', { class: 'timeline', reversed: true }, [...entries].reverse().map((entry) =>
    h('li', { dataset: { kind: entry.kind } }, h('div', { class: 'when' }, date(entry.at)), h('div', {}, ...describe(entry)))));
}

// the fields an event's details need
function detailInputs(names, currency) {
  return names.map((name) => {
    if (name === 'amount') return h('label', {}, `Amount (${currency})`, h('input', { name, required: true, inputmode: 'decimal' }));
    if (name === 'due_date') return h('label', {}, 'By', h('input', { name, type: 'date', required: true }));
    if (name === 'instalments') return h('label', {}, 'Instalments: amount and date per line',
      h('textarea', { name, rows: 3, required: true, placeholder: '50.00 2026-12-15' }));
    return h('label', {}, name, h('input', { name, required: true }));
  });
}

function details(values, currency) {
  const out = {};
  for (const [name, value] of Object.entries(values)) {
    if (name === 'amount') out.amount = parseMoney(value, currency);
    else if (name === 'instalments') {
      out.instalments = value.split('\n').filter((l) => l.trim()).map((line) => {
        const [amount, dueDate] = line.trim().split(/\s+/);
        return { amount: parseMoney(amount, currency), due_date: dueDate };
      });
    } else if (value) out[name] = value;
  }
  return out;
}

function actions(c) {
  const message = h('p', { role: 'alert' });
  const act = (run) => async (event) => {
    event.preventDefault();
    const form = event.target;
    form.querySelector('button').disabled = true;
    message.textContent = '';
    try {
      await run(fields(form));
      form.forgetDraft?.();
      // redrawn first, then said: the status never describes a page not yet drawn
      await render(document.getElementById('main'), { match: [null, String(c.id)] });
      say('Saved.');
    } catch (error) {
      if (error.status === 409) {
        await render(document.getElementById('main'), { match: [null, String(c.id)] });
        say('Someone else changed this case meanwhile. This is how it is now; check it, then try again.');
      } else {
        message.className = 'notice';
        message.textContent = [error.message, error.hint].filter(Boolean).join(' ');
        form.querySelector('button').disabled = false;
      }
    }
  };
  const transitionForms = (c.transitions || []).map((t) => h('form', { dataset: { event: t.event },
      onsubmit: act((values) => api('POST', `/recovery-cases/${c.id}/transitions`,
        { event: t.event, expected_version: c.version, details: details(values, c.currency) })) },
    ...detailInputs(t.required_details.filter((n) => n !== 'reason'), c.currency),
    h('label', {}, t.required_details.includes('reason') ? 'Reason' : 'Reason (optional)',
      h('input', { name: 'reason', required: t.required_details.includes('reason') })),
    h('button', { type: 'submit' }, `${t.event.replace('_', ' ')} → ${t.to_state}`)));
  const panel = h('div', { class: 'actions' }, message,
    c.closed_at ? null : h('form', { dataset: { action: 'payment' },
        onsubmit: act((v) => {
          const amount = parseMoney(v.amount, c.currency);
          if (amount === null) throw new Error(`Write the amount as a number, for example 12.50.`);
          return api('POST', `/recovery-cases/${c.id}/payments`, { amount, currency: c.currency, reference: v.reference || null });
        }) },
      h('label', {}, `Money received (${c.currency})`, h('input', { name: 'amount', required: true, inputmode: 'decimal' })),
      h('label', {}, 'Reference', h('input', { name: 'reference' })),
      h('button', { type: 'submit' }, 'Record money')),
    transitionForms.length ? transitionForms : h('p', { class: 'muted' }, 'No event is possible in this state.'),
    h('form', { dataset: { action: 'note' }, onsubmit: act((v) => api('POST', `/recovery-cases/${c.id}/notes`, { body: v.body })) },
      h('label', {}, 'Note', h('textarea', { name: 'body', rows: 2, required: true })),
      h('button', { type: 'submit' }, 'Add note')));
  for (const form of panel.querySelectorAll('form')) {
    form.forgetDraft = keepDraft(form, `case:${c.id}:${form.dataset.event || form.dataset.action}`);
  }
  return panel;
}

function documents(c, canAct) {
  const list = h('ul', {});
  const preview = h('div', { class: 'preview' });
  const progress = h('progress', { max: 1, value: 0, hidden: true });
  const message = h('p', { role: 'alert' });
  const docs = c.timeline.filter((e) => e.kind === 'document');
  for (const d of docs) {
    list.append(h('li', {}, d.filename, ' ',
      h('button', { type: 'button', class: 'secondary', onclick: () => download(d) }, 'Download'), ' ',
      /^(image\/|application\/pdf)/.test(d.content_type)
        ? h('button', { type: 'button', class: 'secondary', onclick: () => show(d) }, 'Preview') : null));
  }
  const form = h('form', { class: 'inline', onsubmit: send },
    h('label', {}, 'Upload a document', h('input', { type: 'file', name: 'file', required: true })),
    h('button', { type: 'submit' }, 'Upload'), progress);
  return h('section', { class: 'card' }, h('h2', {}, 'Documents'),
    docs.length ? list : h('p', { class: 'muted' }, 'No documents yet.'), canAct ? form : null, message, preview);

  async function blob(d) {
    const res = await api('GET', `/documents/${d.id}/content`, undefined, { raw: true });
    return URL.createObjectURL(await res.blob());
  }
  async function download(d) {
    const a = h('a', { href: await blob(d), download: d.filename });
    document.body.append(a);
    a.click();
    a.remove();
  }
  async function show(d) {
    const url = await blob(d);
    mount(preview, d.content_type.startsWith('image/')
      ? h('img', { src: url, alt: d.filename }) : h('iframe', { src: url, title: d.filename }));
  }
  async function send(event) {
    event.preventDefault();
    const file = form.querySelector('input[type=file]').files[0];
    progress.hidden = false;
    message.textContent = '';
    try {
      await upload(`/recovery-cases/${c.id}/documents`, file, (share) => { progress.value = share; });
      await render(document.getElementById('main'), { match: [null, String(c.id)] });
      say(`Uploaded ${file.name}.`);
    } catch (error) {
      message.className = 'notice';
      message.textContent = error.message;
      progress.hidden = true;
    }
  }
}
