// Loads functions/edge/gate.js as CloudFront would run it, with an in-memory KeyValueStore.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';

export const SOURCE = readFileSync(new URL('../../functions/edge/gate.js', import.meta.url),
  'utf8');
export const V = JSON.parse(readFileSync(new URL('./vectors.json', import.meta.url), 'utf8'));

// The runtime provides `cloudfront` and `require`; under node the harness supplies both.
export function loadGate(store) {
  const body = SOURCE.replace(/^import cf from 'cloudfront';$/m, '');
  assert.notEqual(body, SOURCE, 'gate.js imports cloudfront as the runtime expects');
  const cf = {
    kvs: () => ({
      get: async (key) => {
        if (!(key in store)) throw new Error('KeyNotFound');
        return store[key];
      },
      exists: async (key) => key in store,
    }),
  };
  const requireModule = (name) => {
    if (name !== 'crypto') throw new Error(`module ${name} is not available`);
    return crypto;
  };
  return new Function('cf', 'require', 'Buffer', `${body}\nreturn handler;`)(cf, requireModule,
    Buffer);
}

// A viewer-request event as CloudFront passes it to the function.
export function event({ uri = '/apply', method = 'GET', cookie, accept = 'text/html',
  qs = {} } = {}) {
  const headers = { host: { value: 'portal.example.ca' } };
  if (accept) headers.accept = { value: accept };
  return {
    version: '1.0',
    context: { distributionDomainName: 'd111111abcdef8.cloudfront.net',
      distributionId: 'EDFDVBD6EXAMPLE', eventType: 'viewer-request', requestId: 'r-1' },
    viewer: { ip: '198.51.100.11' },
    request: { method, uri, querystring: qs, headers,
      cookies: cookie === undefined ? {} : { fg_admit: { value: cookie } } },
  };
}
