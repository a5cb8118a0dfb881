// Loads functions/edge/gate.js as CloudFront would run it, with an in-memory KeyValueStore.
import assert from 'node:assert/strict';
import { afterEach, beforeEach } from 'node:test';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';

export const SOURCE = readFileSync(new URL('../../functions/edge/gate.js', import.meta.url),
  'utf8');
// What CloudFront runs, and what every test here runs: components/edge.gate_code deploys the
// file without whole-line comments, indentation and blank lines.
export const DEPLOYED = `${SOURCE.split('\n').map((l) => l.trim())
  .filter((l) => l && !l.startsWith('//')).join('\n')}\n`;
export const V = JSON.parse(readFileSync(new URL('./vectors.json', import.meta.url), 'utf8'));

// The runtime provides `cloudfront` and `require`; under node the harness supplies both.
// `failing` names store keys whose reads throw (as a KeyValueStore read error would); `logs`
// collects what the function logs (console.log goes to CloudWatch Logs in us-east-1).
export function loadGate(store, { failing = [], logs = [] } = {}) {
  const body = DEPLOYED.replace(/^import cf from 'cloudfront';$/m, '');
  assert.notEqual(body, DEPLOYED, 'gate.js imports cloudfront as the runtime expects');
  const cf = {
    kvs: () => ({
      get: async (key) => {
        if (failing.includes(key) || !(key in store)) throw new Error('KeyNotFound');
        return store[key];
      },
      exists: async (key) => {
        if (failing.includes(key)) throw new Error('InternalError');
        return key in store;
      },
    }),
  };
  const console = { log: (line) => logs.push(String(line)) };
  const requireModule = (name) => {
    if (name !== 'crypto') throw new Error(`module ${name} is not available`);
    return crypto;
  };
  return new Function('cf', 'require', 'Buffer', 'console', `${body}\nreturn handler;`)(cf,
    requireModule, Buffer, console);
}

// A viewer-request event as CloudFront passes it to the function. `cookie` is the admission
// token (fg_admit); `cookies` adds any others by name.
export function event({ uri = '/apply', method = 'GET', cookie, accept = 'text/html',
  qs = {}, cookies = {}, requestId = 'r-1', headers: extra = {} } = {}) {
  const headers = { host: { value: 'portal.example.ca' } };
  if (accept) headers.accept = { value: accept };
  for (const [name, value] of Object.entries(extra)) headers[name] = { value };
  const jar = Object.fromEntries(Object.entries(cookies).map(([k, v]) => [k, { value: v }]));
  if (cookie !== undefined) jar.fg_admit = { value: cookie };
  return {
    version: '1.0',
    context: { distributionDomainName: 'd111111abcdef8.cloudfront.net',
      distributionId: 'EDFDVBD6EXAMPLE', eventType: 'viewer-request', requestId },
    viewer: { ip: '198.51.100.11' },
    request: { method, uri, querystring: qs, headers, cookies: jar },
  };
}

// The same request's viewer-response event, with the origin's status and no cookies set yet.
export function responseEvent(options = {}, statusCode = 200) {
  const request = event(options);
  return { ...request, context: { ...request.context, eventType: 'viewer-response' },
    response: { statusCode, statusDescription: 'OK', headers: {}, cookies: {} } };
}

// CloudFront does not invoke viewer-response functions when the origin's status is 400 or
// higher ("Restrictions on all edge functions", CloudFront Developer Guide). The harness
// refuses such a call, as CloudFront does, so no test can pass on an invocation AWS never makes.
export function runViewerResponse(handler, event) {
  const status = event.response.statusCode;
  if (status >= 400) {
    throw new Error(`CloudFront does not run viewer-response functions on status ${status}`);
  }
  return handler(event);
}

// A KeyValueStore holding every signing key of the vectors and the room entry `room` (merged
// over {room: V.room, kid: the vectors' key}: the inlet always names its current key), plus
// `extra` entries.
export function kvsStore(room, extra = {}) {
  const keys = Object.fromEntries(Object.entries(V.keys).map(([k, v]) => [`key.${k}`, v]));
  const entry = { room: V.room, kid: Object.keys(V.keys)[0], ...room };
  return { room: JSON.stringify(entry), ...keys, ...extra };
}

// Every test in the calling file runs at the vectors' instant.
export function pinClock() {
  const realNow = Date.now;
  beforeEach(() => { Date.now = () => V.now * 1000; });
  afterEach(() => { Date.now = realNow; });
}

// The gate let the request through (it returned the request, not a response).
export const passes = (result) => result.uri !== undefined && result.statusCode === undefined;
