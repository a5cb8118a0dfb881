// Issue 14: no way around the room through its bypass list, and no token that lives forever.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { event, loadGate, V } from './harness.mjs';

const TOKEN_TTL_S = 7200;
const KID = Object.keys(V.keys)[0];

function store(state) {
  const keys = Object.fromEntries(Object.entries(V.keys).map(([k, v]) => [`key.${k}`, v]));
  return { room: JSON.stringify({ state, room: V.room, kid: KID, session_s: 1200,
    token_ttl_s: TOKEN_TTL_S }), ...keys };
}

function token(expiry) {
  const body = ['v1', V.room, 'visitor-9', String(expiry), KID].join('.');
  return `${body}.${crypto.createHmac('sha256', V.keys[KID]).update(body).digest('hex')}`;
}

const realNow = Date.now;
beforeEach(() => { Date.now = () => V.now * 1000; });
afterEach(() => { Date.now = realNow; });
const passes = (result) => result.uri !== undefined && result.statusCode === undefined;

test('single files bypass only when named exactly', async () => {
  const gate = loadGate(store('queue'));
  assert.ok(passes(await gate(event({ uri: '/favicon.ico' }))));
  assert.ok(passes(await gate(event({ uri: '/robots.txt' }))));
  for (const uri of ['/favicon.icon', '/favicon.ico/apply', '/robots.txt-admin', '/robots.txtx']) {
    assert.equal((await gate(event({ uri }))).statusCode, 302, uri);
  }
});

test('paths that could walk out of a bypass directory are refused', async () => {
  const gate = loadGate(store('open'));
  for (const uri of ['/assets/../apply', '/assets/..%2fapply', '/static/./x', '/queue//x',
    '/assets/%2e%2e/apply', '/assets/%2E%2E/apply', '/waiting-room/%2fapply', '/assets\\..\\x',
    '/apply/../submit']) {
    const result = await gate(event({ uri }));
    assert.equal(result.statusCode, 400, uri);
  }
});

test('a token expiring beyond the longest token lifetime is refused', async () => {
  const gate = loadGate(store('queue'));
  assert.ok(passes(await gate(event({ cookie: token(V.now + TOKEN_TTL_S) }))));
  const decade = V.now + 10 * 365 * 86400;
  assert.equal((await gate(event({ cookie: token(decade) }))).statusCode, 302);
});
