// The failover-page function under node, with CloudFront viewer-response event shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const SOURCE = readFileSync(new URL('../../functions/edge/failover_page.js', import.meta.url),
  'utf8');
const handler = new Function(`${SOURCE}\nreturn handler;`)();

function event(uri, statusCode, server) {
  const headers = { 'content-type': { value: 'application/xml' } };
  if (server) headers.server = { value: server };
  return {
    version: '1.0',
    context: { eventType: 'viewer-response', distributionId: 'EDFDVBD6EXAMPLE' },
    viewer: { ip: '198.51.100.11' },
    request: { method: 'GET', uri, querystring: {}, headers: {}, cookies: {} },
    response: { statusCode, statusDescription: 'Forbidden', headers, cookies: {} },
  };
}

test('a failed-over deep path missing from the bucket goes to the high-demand page', () => {
  const result = handler(event('/apply/status', 403, 'AmazonS3'));
  assert.equal(result.statusCode, 302);
  assert.equal(result.headers.location.value, '/high-demand/index.html');
  assert.equal(result.headers['cache-control'].value, 'no-store');
});

test('a 404 from the bucket is treated the same way', () => {
  assert.equal(handler(event('/fr/accueil', 404, 'AmazonS3')).statusCode, 302);
});

test("the portal's own 403 and 404 pages are left alone", () => {
  for (const code of [403, 404]) {
    const original = event('/account', code, 'nginx');
    assert.equal(handler(original), original.response);
    const bare = event('/account', code, undefined);
    assert.equal(handler(bare), bare.response);
  }
});

test('successful bucket responses pass', () => {
  const ok = event('/high-demand/index.html', 200, 'AmazonS3');
  assert.equal(handler(ok), ok.response);
});

test('a missing object under /high-demand/ is not redirected to itself', () => {
  const missing = event('/high-demand/missing.css', 403, 'AmazonS3');
  assert.equal(handler(missing), missing.response);
});
