// What the document forbids must not type-check: money as a string, an
// instalment without its date, a state no case has.  client.t expects tsc
// to refuse each line marked "refused", and nothing else.
import createClient from 'openapi-fetch';
import type { components, paths } from './api.js';

const client = createClient<paths>({ baseUrl: 'http://127.0.0.1' });

export async function wrong(): Promise<void> {
  await client.POST('/api/v1/recovery-cases/{case_id}/payments', {
    params: { path: { case_id: 1 } },
    body: { amount: '60.00', currency: 'EUR' },                      // refused: amount is minor units
  });
  await client.POST('/api/v1/recovery-cases/{case_id}/transitions', {
    params: { path: { case_id: 1 } },
    body: { event: 'plan', expected_version: 1, details: { instalments: [{ amount: 1 }] } },  // refused: no due_date
  });
  const state: components['schemas']['Case']['state'] = 'lost';      // refused: no such state
  void state;
}
