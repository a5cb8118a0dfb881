// The harness keeps CloudFront's invocation rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runViewerResponse } from './harness.mjs';

const echo = (event) => event.response;
const withStatus = (statusCode) => ({ response: { statusCode, headers: {} }, request: {} });

test('viewer-response functions run on responses below 400', () => {
  assert.equal(runViewerResponse(echo, withStatus(200)).statusCode, 200);
  assert.equal(runViewerResponse(echo, withStatus(304)).statusCode, 304);
});

test('viewer-response functions never run on 4xx or 5xx, as in CloudFront', () => {
  for (const status of [400, 403, 404, 500, 503]) {
    assert.throws(() => runViewerResponse(echo, withStatus(status)), /does not run/);
  }
});
