// The review queue of payments found in statements, emails and SMS.
import { h, mount, nextPageLink } from '../dom.js';
import { api, session } from '../api.js';
import { money, date } from '../format.js';
import { say } from '../nav.js';

// Lines no rule matched are listed per extraction only: a bank statement
// brings many that are none of ours.
export async function render(main, { params }) {
  const extraction = params.get('extraction_id');
  const status = extraction ? params.get('status') || 'review' : 'review';
  const query = new URLSearchParams({ status, limit: '50' });
  for (const name of ['extraction_id', 'cursor']) if (params.get(name)) query.set(name, params.get(name));
  const queue = await api('GET', `/reconciliation?${query}`);
  const canDecide = session.me.may.act;
  mount(main, h('h1', {}, 'Reconciliation'),
    extraction ? h('p', {}, `Only the lines of extraction #${extraction}. `,
      h('a', { href: '#/reconciliation' }, 'Show the whole queue')) : null,
    extraction ? h('nav', { class: 'pager' }, ['review', 'unmatched'].map((s) =>
      h('a', { href: `#/reconciliation?status=${s}&extraction_id=${extraction}`, 'aria-current': s === status ? 'page' : null },
        s === 'review' ? 'waiting for review' : 'matched no case'))) : null,
    queue.items.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Found in'), h('th', {}, 'Booked'),
      h('th', { class: 'num' }, 'Amount'), h('th', {}, 'Reference'), h('th', {}, 'Payer'), h('th', {}, 'Suggested case'),
      h('th', {}, 'Why'), h('th', {}, ''))),
    h('tbody', {}, queue.items.map((l) => h('tr', { dataset: { line: l.id } },
      h('td', {}, h('a', { href: `#/reconciliation?status=${status}&extraction_id=${l.extraction_id}` },
        `${l.source} #${l.extraction_id}`), l.line_no ? `, line ${l.line_no}` : ''), h('td', {}, date(l.booked_on)),
      h('td', { class: 'num' }, l.amount === null ? '' : money(l.amount, l.currency)), h('td', {}, l.reference || ''),
      h('td', {}, l.payer || ''),
      h('td', {}, l.case_id ? h('a', { href: `#/cases/${l.case_id}` }, `#${l.case_id}`) : '–',
        l.case_balance !== null && l.case_balance !== undefined ? ` (balance ${money(l.case_balance, l.currency)})` : ''),
      h('td', {}, l.reason || '', l.score ? ` (${l.score})` : ''),
      h('td', {}, canDecide ? decide(l) : null)))))
      : h('p', {}, status === 'review' ? 'Nothing waits for review.' : 'Every line matched a case.'),
    nextPageLink('/reconciliation', params, queue.next_cursor));

  function decide(line) {
    const caseInput = h('input', { name: 'case_id', type: 'number', min: 1, 'aria-label': 'Case number',
      value: line.case_id || '', size: 6 });
    return h('div', {}, caseInput,
      h('button', { type: 'button', onclick: () => act('confirm', { case_id: Number(caseInput.value) || null }) }, 'Confirm'), ' ',
      h('button', { type: 'button', class: 'secondary', onclick: () => {
        const reason = window.prompt('Why is this payment rejected?');
        if (reason) act('reject', { reason });
      } }, 'Reject'));

    async function act(what, body) {
      try {
        await api('POST', `/reconciliation/${line.id}/${what}`, body);
        await render(main, { params });
        say(what === 'confirm' ? 'The payment was applied.' : 'The payment was rejected.');
      } catch (error) {
        say(error.message);
      }
    }
  }
}
