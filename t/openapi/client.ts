// An agent's day through a client generated from conf/openapi.json
// (openapi-typescript, openapi-fetch): it must type-check under
// tsc --strict without a single cast, or the document does not describe
// what a client sends and gets.  client.t checks it; nothing runs it.
import createClient from 'openapi-fetch';
import type { components, paths } from './api.js';

type Case = components['schemas']['Case'];

export async function workday(baseUrl: string, email: string, password: string): Promise<Case> {
  const client = createClient<paths>({ baseUrl });

  const login = await client.POST('/api/v1/auth/login', { body: { email, password } });
  if (!login.data) throw new Error(login.error?.message ?? 'no token');
  const headers = { Authorization: `Bearer ${login.data.token}` };

  const me = await client.GET('/api/v1/auth/me', { headers });
  const mayAct: boolean = me.data?.may.act ?? false;
  if (!mayAct) throw new Error('an agent is needed');

  const customer = await client.POST('/api/v1/customers', {
    headers, body: { external_ref: 'C-0001', name: 'Ada Lovelace', email: 'ada@example.com' },
  });
  if (!customer.data) throw new Error(customer.error?.message);
  const consent = await client.PATCH('/api/v1/customers/{customer_id}', {
    headers, params: { path: { customer_id: customer.data.id } },
    body: { expected_version: customer.data.version, contact_preferences: { sms: false } },
  });
  if (!consent.data) throw new Error(consent.error?.message);

  const payment = await client.POST('/api/v1/payments', {
    headers, body: { customer_id: customer.data.id, external_ref: 'INV-1', amount: 12550,
                     currency: 'EUR', due_date: '2026-12-01' },
  });
  if (!payment.data) throw new Error(payment.error?.message);
  const failed = await client.POST('/api/v1/payments/{payment_id}/fail', {
    headers, params: { path: { payment_id: payment.data.id } },
    body: { reason: 'insufficient funds', status: 'failed' },
  });
  if (!failed.data) throw new Error(failed.error?.message);
  const opened: Case = failed.data.case;

  // a promise, then a plan: each event with the details it needs
  const promised = await client.POST('/api/v1/recovery-cases/{case_id}/transitions', {
    headers, params: { path: { case_id: opened.id } },
    body: { event: 'promise', expected_version: opened.version,
            details: { amount: 5000, due_date: '2026-12-20' } },
  });
  if (!promised.data) throw new Error(promised.error?.hint ?? promised.error?.message);
  const plan = await client.POST('/api/v1/recovery-cases/{case_id}/transitions', {
    headers, params: { path: { case_id: opened.id } },
    body: { event: 'plan', expected_version: promised.data.version,
            details: { instalments: [{ amount: 6000, due_date: '2027-01-15' },
                                     { amount: 6550, due_date: '2027-02-15' }] } },
  });
  if (!plan.data) throw new Error(plan.error?.message);

  const note = await client.POST('/api/v1/recovery-cases/{case_id}/notes', {
    headers, params: { path: { case_id: opened.id } }, body: { body: 'Called; agreed a plan.' },
  });
  const noted: string | undefined = note.data?.author;

  const received = await client.POST('/api/v1/recovery-cases/{case_id}/payments', {
    headers, params: { path: { case_id: opened.id } },
    body: { amount: 6000, currency: 'EUR', reference: `RC-${opened.id} ${noted ?? ''}` },
  });
  if (!received.data) throw new Error(received.error?.message);
  const balance: number = received.data.case.balance;

  const open = await client.GET('/api/v1/recovery-cases', {
    headers, params: { query: { state: 'plan', min_balance: balance, sort: '-balance', limit: 10 } },
  });
  for (const item of open.data?.items ?? []) {
    const state: Case['state'] = item.state;
    if (state === 'resolved') throw new Error('a resolved case is not in plan');
  }

  const task = await client.POST('/api/v1/automation/tasks/schedule', {
    headers, body: { kind: 'export.csv', payload: { cases: [opened.id] }, max_attempts: 3 },
  });
  if (task.data && task.data.state === 'dead') throw new Error(task.data.last_error ?? 'dead');

  return received.data.case;
}
