// Every answer the HTTP tests got from the suite's gateway (recorded by
// t/lib/Recovery/HTTP.pm in $RECOVERY_CONTRACT_LOG) checked against the
// OpenAPI document: the operation is documented, its status too, the
// content type, the headers it must carry, and the body against the
// schema, with additionalProperties: false added to every object schema
// so that a field the document does not name is a failure.  TAP out.
import { readFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const doc = JSON.parse(readFileSync(new URL('../../conf/openapi.json', import.meta.url)));
const log = process.env.RECOVERY_CONTRACT_LOG;
let n = 0, failed = 0;
const ok = (pass, what, diag) => {
  n++;
  if (!pass) failed++;
  console.log(`${pass ? 'ok' : 'not ok'} ${n} - ${what}`);
  // on stderr, so that prove shows why without -v
  if (!pass && diag) console.error(diag.split('\n').map((l) => `# ${l}`).join('\n'));
};

// $refs resolved, every object schema closed
const resolve = (node) => {
  if (node && typeof node === 'object' && node.$ref) {
    return resolve(node.$ref.slice(2).split('/').reduce((at, key) => at[key.replace(/~1/g, '/')], doc));
  }
  return node;
};
const strict = (schema) => {
  schema = resolve(schema);
  if (Array.isArray(schema)) return schema.map(strict);
  if (!schema || typeof schema !== 'object') return schema;
  const out = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'properties') {
      out.properties = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, strict(v)]));
    } else if (['items', 'additionalProperties', 'not', 'if', 'then', 'else'].includes(key)) {
      out[key] = strict(value);
    } else if (['oneOf', 'anyOf', 'allOf', 'prefixItems'].includes(key)) {
      out[key] = value.map(strict);
    } else {
      out[key] = value;
    }
  }
  if (out.properties && out.additionalProperties === undefined && !out.oneOf && !out.anyOf && !out.allOf) {
    out.additionalProperties = false;
  }
  return out;
};

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
const templates = Object.keys(doc.paths).map((path) => ({
  path, pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}$`),
}));
const validators = new Map();
const validator = (key, schema) => {
  if (!validators.has(key)) validators.set(key, ajv.compile(strict(schema)));
  return validators.get(key);
};

let lines = [];
try {
  lines = readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
} catch (error) {
  ok(false, `the HTTP tests' answers are recorded in RECOVERY_CONTRACT_LOG`, `${log}: ${error.message}\nrun t/http/ first (scripts/test.sh does)`);
}
ok(lines.length > 500, `the HTTP tests recorded their answers (${lines.length})`);

// one assertion per operation and status seen, listing every answer that breaks it
const seen = new Map();
let skipped = 0;
for (const r of lines) {
  const head = r.method === 'head';
  if (head) r.method = 'get';    // HEAD is a GET without its body
  const template = templates.find((t) => t.pattern.test(r.path));
  // a method a path does not have (405) or a path there is not (404 from
  // nginx) is the same answer everywhere, documented once in info
  if (!template || !doc.paths[template.path][r.method]) {
    if (![404, 405].includes(r.status)) {
      const key = `${r.method.toUpperCase()} ${r.path}`;
      if (!seen.has(key)) seen.set(key, []);
      seen.get(key).push(`an undocumented operation answered ${r.status}`);
    } else skipped++;
    continue;
  }
  const op = doc.paths[template.path][r.method];
  const key = `${op.operationId} ${r.status}`;
  if (!seen.has(key)) seen.set(key, []);
  const problems = seen.get(key);
  const response = resolve(op.responses[String(r.status)]);
  if (!response) {
    problems.push(`${r.status} is not documented for ${r.method.toUpperCase()} ${template.path}`);
    continue;
  }
  const type = (r.headers['content-type'] || '').split(';')[0].trim();
  const media = response.content && (response.content[type] || response.content['*/*']);
  if (response.content && !media) problems.push(`content type ${type || 'none'}, documented: ${Object.keys(response.content)}`);
  for (const [name, header] of Object.entries(response.headers || {})) {
    const value = r.headers[name.toLowerCase()];
    const h = resolve(header);
    if (value === undefined) {
      if (h.required) problems.push(`${r.method.toUpperCase()} ${r.path} ${r.status}: no ${name} header`);
      continue;
    }
    const schema = resolve(h.schema);
    const parsed = schema && schema.type === 'integer' ? Number(value) : value;
    const check = validator(`header ${name} ${JSON.stringify(schema)}`, schema || {});
    if (!check(parsed)) problems.push(`header ${name}: ${value}: ${ajv.errorsText(check.errors)}`);
  }
  if (media && media.schema && type === 'application/json' && !head) {
    let body;
    try { body = JSON.parse(r.body); } catch { problems.push('the body is not JSON'); continue; }
    const check = validator(`${key} ${type}`, media.schema);
    if (!check(body)) {
      problems.push(`${r.method.toUpperCase()} ${r.path}: ${check.errors.slice(0, 4).map((e) => `${e.instancePath || '/'} ${e.message}${e.params && e.params.additionalProperty ? ` (${e.params.additionalProperty})` : ''}`).join('; ')}`);
    }
  }
}
for (const [key, problems] of [...seen.entries()].sort()) {
  const distinct = [...new Set(problems)];
  ok(distinct.length === 0, `${key}: every answer as documented`, distinct.slice(0, 6).join('\n'));
}
ok(skipped < lines.length / 2, `405 and 404 answers of routes there are not: ${skipped}`);
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
