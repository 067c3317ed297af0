// Live events: one EventSource per tab on GET /api/v1/events.  EventSource
// cannot send the Authorization header, and the token must not go into a
// URL (logs, history): the stream opens with a ticket from
// POST /api/v1/events/ticket, good for 30 s and for this stream only.
// EventSource reconnects by itself with Last-Event-ID while the server is
// away; when the ticket has expired by then (or the session ended: an
// "expired" event), a new ticket opens it again after the last event seen,
// so nothing is missed.
import { api, session } from './api.js';

const handlers = new Set();
let source = null;
let lastId = null;
let retry = null;
let delay = 1000;

// handler(type, event): every event, and 'reset' when what is shown must reload
export function on(handler) {
  handlers.add(handler);
}

function emit(type, data) {
  for (const handler of handlers) {
    try { handler(type, data); } catch (error) { console.error('live event handler', error); }
  }
}

export function start() {
  if (source || retry || !session.token) return;
  open();
}

export function stop() {
  clearTimeout(retry);
  retry = null;
  if (source) source.close();
  source = null;
  lastId = null;
}

async function open() {
  retry = null;
  let ticket;
  try {
    ({ ticket } = await api('POST', '/events/ticket'));
  } catch {
    again();
    return;
  }
  if (!session.token) return;
  const query = new URLSearchParams({ ticket });
  if (lastId) query.set('after', lastId);
  source = new EventSource(`/api/v1/events?${query}`);
  source.onopen = () => { delay = 1000; document.body.dataset.live = 'on'; };
  source.onerror = () => {
    // CONNECTING: EventSource tries again itself; CLOSED: it gave up (the
    // ticket is no longer good), so a new ticket it is
    if (source && source.readyState === EventSource.CLOSED) again();
  };
  for (const type of ['case.changed', 'notification.sent', 'notification.failed', 'notification.dead',
    'notification.cancelled', 'extraction.finished', 'reconciliation.review', 'task.dead']) {
    source.addEventListener(type, (message) => {
      lastId = message.lastEventId || lastId;
      let data = null;
      try { data = JSON.parse(message.data); } catch { return; }
      emit(type, data);
    });
  }
  source.addEventListener('reset', () => emit('reset', null));
  source.addEventListener('expired', () => again());
}

function again() {
  if (source) source.close();
  source = null;
  document.body.dataset.live = 'off';
  if (!session.token) return;
  retry = setTimeout(open, delay);
  delay = Math.min(delay * 2, 15000);
}
