// The harness keeps CloudFront's invocation rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEPLOYED, runViewerResponse } from './harness.mjs';

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

// What cloudfront-js-2.0 runs ("JavaScript runtime 2.0 features for CloudFront Functions",
// CloudFront Developer Guide): ES 5.1 statements plus const, let, async and await; "async
// arguments and closures are not supported"; the modules crypto, querystring and buffer, and
// cloudfront by import. Node runs far more, so a test here could pass on code CloudFront
// refuses to publish: the gate as deployed is held to the documented subset.

test('the gate uses only statements and modules cloudfront-js-2.0 documents', () => {
  const refused = [
    [/\bfor\s*\([^)]*\bof\b/, 'for...of (not an ES 5.1 statement)'],
    [/\bclass\s+[A-Za-z_$]/, 'class declarations'],
    [/\bfunction\s*\*/, 'generators'],
    [/\basync\s*\(/, 'async arrow functions (closures)'],
    [/\basync\s+function\s*\(/, 'anonymous async functions (closures)'],
    [/\bsetTimeout\b|\bsetInterval\b|\bsetImmediate\b/, 'timers'],
    [/\beval\s*\(|\bnew\s+Function\b/, 'dynamic code evaluation'],
    [/\bfetch\s*\(/, 'network calls'],
  ];
  for (const [pattern, what] of refused) assert.ok(!pattern.test(DEPLOYED), what);
  const required = [...DEPLOYED.matchAll(/require\('([^']+)'\)/g)].map((m) => m[1]);
  assert.deepEqual(required.filter((m) => !['crypto', 'querystring', 'buffer'].includes(m)), []);
  assert.deepEqual([...DEPLOYED.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]),
    ['cloudfront']);
});
