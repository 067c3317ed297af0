// Importing a statement (CSV, CAMT, MT940, xlsx, xls, PDF): a preview of
// the lines found and what would become of each, then the import itself.
// The preview is the import run and undone in the database, so what it
// shows is what applying does.
import { h, mount } from '../dom.js';
import { api, sendFile } from '../api.js';
import { money, date } from '../format.js';
import { say } from '../nav.js';

const OUTCOME = {
  applied: (l) => `would be applied to case #${l.case_id}`,
  review: () => 'would wait for review',
  unmatched: () => 'matches no case',
  ignored: () => 'not money received',
};

const WOULD = { applied: 'to apply', review: 'for review', unmatched: 'matching no case', ignored: 'not money received' };

export async function render(main) {
  const mappings = (await api('GET', '/bank-mappings')).items;
  const file = h('input', { type: 'file', id: 'statement-file', name: 'statement', required: true,
    accept: '.csv,.txt,.xml,.sta,.mt940,.940,.xlsx,.xls,.pdf' });
  const mapping = h('select', { id: 'statement-mapping', name: 'mapping' },
    h('option', { value: '' }, 'the usual header names'),
    mappings.map((m) => h('option', { value: m.name }, m.name)));
  const progress = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Sending the file' });
  const result = h('section', { 'aria-live': 'polite', id: 'import-result' });
  const form = h('form', { onsubmit: (e) => { e.preventDefault(); preview(); } },
    h('p', {}, 'CSV in any encoding, ISO 20022 CAMT.052, .053 and .054, SWIFT MT940 and MT942, Excel (xlsx, xls) ',
      'and PDF statements or remittance advices. Nothing is imported until you apply it.'),
    h('label', { for: 'statement-file' }, 'Statement file'), file,
    h('label', { for: 'statement-mapping' }, 'Bank mapping (CSV and spreadsheets)'), mapping,
    h('button', { type: 'submit' }, 'Preview'), progress);
  mount(main, h('h1', {}, 'Import a statement'), form, result);

  function query(extra) {
    const q = new URLSearchParams(extra);
    if (mapping.value) q.set('mapping', mapping.value);
    return `/extractions/statements?${q}`;
  }

  async function send(extra) {
    progress.hidden = false;
    try {
      return await sendFile(query(extra), file.files[0], (p) => { progress.value = p; });
    } finally {
      progress.hidden = true;
    }
  }

  async function preview() {
    if (!file.files.length) return;
    mount(result, h('p', {}, 'Reading the file…'));
    try {
      const seen = await send({ preview: 'true' });
      showPreview(seen);
    } catch (error) {
      mount(result, h('p', { class: 'error', role: 'alert' }, error.message), error.hint ? h('p', {}, error.hint) : null);
    }
  }

  function showPreview(seen) {
    const counts = Object.entries(seen.by_status || {}).map(([s, n]) => `${n} ${WOULD[s] || s}`).join(', ') || 'no payments';
    // a parsed format's lines are counted after the header of the CSV it became: entry n is line n + 1
    const csv = seen.format === 'csv';
    const held = seen.statement?.held || [];
    const shown = seen.lines_found.length;
    mount(result,
      h('h2', {}, 'What the import would do'),
      h('p', { dataset: { format: seen.format } }, `Read as ${seen.format}: ${seen.lines} new line${seen.lines === 1 ? '' : 's'} (${counts})`,
        seen.duplicates ? `, ${seen.duplicates} imported before and left out` : '', '.'),
      held.map((s) => h('p', { class: 'warning' }, `Held for a person: ${s.reason}`)),
      shown ? h('table', { 'aria-label': 'Lines found' },
        h('thead', {}, h('tr', {}, h('th', {}, csv ? 'Line' : 'Entry'), h('th', {}, 'Booked'), h('th', { class: 'num' }, 'Amount'),
          h('th', {}, 'Reference'), h('th', {}, 'Payer'), h('th', {}, 'What happens'), h('th', {}, 'Why'))),
        h('tbody', {}, seen.lines_found.map((l) => h('tr', { dataset: { status: l.status } },
          h('td', {}, l.line_no === null ? '' : csv ? l.line_no : l.line_no - 1), h('td', {}, date(l.booked_on)),
          h('td', { class: 'num' }, l.amount === null ? '' : money(l.amount, l.currency)),
          h('td', {}, l.reference || ''), h('td', {}, l.payer || ''),
          h('td', {}, (OUTCOME[l.status] || (() => l.status))(l)),
          h('td', {}, l.reason || '', l.score ? ` (${l.score})` : ''))))) : null,
      shown < seen.lines ? h('p', {}, `The first ${shown} of ${seen.lines} lines are shown.`) : null,
      seen.lines ? h('button', { type: 'button', onclick: apply }, 'Apply the import') : h('p', {}, 'There is nothing to apply.'));
  }

  async function apply() {
    try {
      const done = await send({});
      const counts = Object.entries(done.by_status || {}).map(([s, n]) => `${n} ${s}`).join(', ');
      mount(result, h('h2', {}, 'Imported'),
        h('p', { dataset: { extraction: done.id } }, `Extraction #${done.id}: ${done.lines} line${done.lines === 1 ? '' : 's'} (${counts}).`),
        h('p', {}, h('a', { href: `#/reconciliation?extraction_id=${done.id}` }, 'See its lines in the reconciliation queue')));
      say('The statement was imported.');
    } catch (error) {
      mount(result, h('p', { class: 'error', role: 'alert' }, error.message));
    }
  }
}
