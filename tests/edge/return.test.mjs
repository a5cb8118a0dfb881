// Issue 26: the waiting room's return path stays on the portal for every input. The pages run
// in browsers, whose URL parser is WHATWG's (https://url.spec.whatwg.org/); Node's URL is an
// implementation of the same standard, so what resolves here resolves there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

const ORIGIN = 'https://portal.example';
const PAGE = `${ORIGIN}/waiting-room/index.html`;

function load() {
  const sandbox = { URL };
  sandbox.globalThis = sandbox;
  vm.runInNewContext(readFileSync('functions/pages/waiting-room/return.js', 'utf8'), sandbox);
  return sandbox.floodgateReturn;
}
const safeReturn = load();

// Where a browser goes on location.replace(value) from the waiting page.
const lands = (value) => new URL(value, PAGE);

function assertStays(value) {
  const back = safeReturn(value, ORIGIN);
  assert.equal(typeof back, 'string', value);
  assert.match(back, /^\/(?![/\\])/, `${JSON.stringify(value)} -> ${back}`);
  assert.equal(lands(back).origin, ORIGIN, `${JSON.stringify(value)} -> ${back}`);
  assert.ok(!lands(back).pathname.startsWith('/waiting-room/'), `${value} -> ${back}`);
  return back;
}

test('the seven payloads that left the site stay on it', () => {
  // As the page reads them: URLSearchParams has already decoded ?return=%2F..%2F%2Fevil.com.
  for (const value of ['/..//evil.com', '/.//evil.com', '/%2e%2e//evil.com', '/a/..//evil.com',
    '/..///evil.com', '/../\\evil.com', '/./\\evil.com']) {
    assert.equal(safeReturn(value, ORIGIN), '/', value);
    assertStays(value);
  }
});

test('ordinary return paths come back whole', () => {
  assert.equal(safeReturn('/apply?step=2#form', ORIGIN), '/apply?step=2#form');
  assert.equal(safeReturn('/fr/information/visa?lang=fr', ORIGIN), '/fr/information/visa?lang=fr');
  assert.equal(safeReturn('/a/b/../c', ORIGIN), '/a/c');
  assert.equal(safeReturn('/a//b', ORIGIN), '/a//b'); // a doubled slash inside a path is a path
  assert.equal(safeReturn('/waiting-room/index.html', ORIGIN), '/');
  assert.equal(safeReturn('', ORIGIN), '/');
  assert.equal(safeReturn(null, ORIGIN), '/');
});

// A seeded generator (mulberry32), so a failure names an input that reproduces.
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The pieces redirect payloads are made of: separators and their encodings, dot segments,
// control characters browsers strip, schemes, credentials and hosts.
const PIECES = ['/', '\\', '.', '..', '%2e', '%2E', '%2f', '%2F', '%5c', '%5C', '\t', '\n', '\r',
  ' ', '\u0000', '\u007f', '@', ':', '?', '#', 'evil.com', 'a', 'https:', 'http:', 'javascript:',
  '//', 'user:pw@', '%09', '%00', '\u3002', '\uff0f', 'waiting-room', 'index.html', '%252f'];

test('every generated input resolves to a path on the portal', () => {
  const next = random(26);
  for (let n = 0; n < 20000; n++) {
    const length = 1 + Math.floor(next() * 8);
    let value = next() < 0.8 ? '/' : '';
    for (let i = 0; i < length; i++) value += PIECES[Math.floor(next() * PIECES.length)];
    assertStays(value);
  }
});
