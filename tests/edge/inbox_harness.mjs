// Loads functions/edge/inbox.js as CloudFront would run it (components/edge.inbox_code: the
// limits and paths set, whole-line comments and indentation dropped), with an in-memory store.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';

export const SOURCE = readFileSync(new URL('../../functions/edge/inbox.js', import.meta.url),
  'utf8');
export const SECRET = 'receipt-secret';

export const PATTERNS = ['/submit/*', '/renew'];

export function deployed(inlineMax, uploadMax = inlineMax, patterns = PATTERNS) {
  const text = SOURCE.replace('__INLINE_MAX__', String(inlineMax))
    .replace('__UPLOAD_MAX__', String(uploadMax)).replace('__PATTERNS__', JSON.stringify(patterns));
  return `${text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('//'))
    .join('\n')}\n`;
}

// CloudFront Functions' body for a generated or replaced response (runtime 2.0): an object with
// `encoding` ('text' or 'base64') and `data` (CloudFront Developer Guide, "CloudFront Functions
// event structure", status code and body). The harness holds every answer to it.
export function checkBody(result) {
  if (result.body === undefined) return result;
  assert.ok(['text', 'base64'].includes(result.body.encoding), 'body.encoding is text|base64');
  assert.equal(typeof result.body.data, 'string', 'body.data is a string');
  return result;
}

export function loadInbox(store = { 'inbox.secret': SECRET }, { logs = [], inlineMax = 262144,
  uploadMax = 10485760 } = {}) {
  const body = deployed(inlineMax, uploadMax).replace(/^import cf from 'cloudfront';$/m, '');
  const cf = { kvs: () => ({ get: async (key) => {
    if (!(key in store)) throw new Error('KeyNotFound');
    return store[key];
  } }) };
  const console = { log: (line) => logs.push(String(line)) };
  const requireModule = (name) => {
    if (name !== 'crypto') throw new Error(`module ${name} is not available`);
    return crypto;
  };
  const handler = new Function('cf', 'require', 'console', `${body}\nreturn handler;`)(cf,
    requireModule, console);
  return async (event) => {
    // CloudFront does not run viewer-response functions on a status of 400 or more
    // ("Restrictions on all edge functions"): such a call is refused, as in the gate's harness.
    if (event.context.eventType === 'viewer-response' && event.response.statusCode >= 400) {
      throw new Error('CloudFront does not run viewer-response functions on this status');
    }
    return checkBody(await handler(event));
  };
}

export function post({ uri = '/submit/apply', method = 'POST', type = 'application/json',
  length = '2', key, qs = {}, requestId = 'req-1', headers: extra = {} } = {}) {
  const headers = { host: { value: 'portal.example.ca' } };
  if (type !== null) headers['content-type'] = { value: type };
  if (length !== null) headers['content-length'] = { value: length };
  if (key !== undefined) headers['idempotency-key'] = { value: key };
  for (const [name, value] of Object.entries(extra)) headers[name] = { value };
  return {
    version: '1.0',
    context: { eventType: 'viewer-request', requestId, distributionId: 'EDFDVBD6EXAMPLE' },
    viewer: { ip: '198.51.100.11' },
    request: { method, uri, querystring: qs, headers, cookies: {} },
  };
}

export function accepted(options = {}, statusCode = 200) {
  const request = post(options);
  return { ...request, context: { ...request.context, eventType: 'viewer-response' },
    response: { statusCode, statusDescription: 'OK', headers: {}, cookies: {} } };
}
