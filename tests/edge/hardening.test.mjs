// Issue 14: no way around the room through its bypass list, and no token that lives forever.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { event, kvsStore, loadGate, passes, pinClock, V } from './harness.mjs';

const TOKEN_TTL_S = 7200;
const KID = Object.keys(V.keys)[0];

const store = (state) => kvsStore({ state, kid: KID, session_s: 1200, token_ttl_s: TOKEN_TTL_S });

function token(expiry) {
  const body = ['v1', V.room, 'visitor-9', String(expiry), KID].join('.');
  return `${body}.${crypto.createHmac('sha256', V.keys[KID]).update(body).digest('hex')}`;
}

pinClock();

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

// -- item 1: every behaviour that reaches the ALB is gated, and each client is turned away in a
// way it can use.

test('static assets are gated while the room queues; people inside still get them', async () => {
  const gate = loadGate(store('queue'));
  const asset = { uri: '/assets/app.js', accept: '*/*',
    headers: { 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'script' } };
  const refused = await gate(event(asset));
  assert.equal(refused.statusCode, 429, 'a script gets an answer a script can use');
  assert.equal(refused.headers['retry-after'].value, '10');
  assert.ok(passes(await gate(event({ ...asset, cookie: token(V.now + 600) }))));
  assert.ok(passes(await loadGate(store('open'))(event(asset))), 'an open room holds nobody');
});

test('browsers navigating are redirected; fetch, JSON and API writes get 429 JSON', async () => {
  const gate = loadGate(store('queue'));
  const cases = [
    [{ headers: { 'sec-fetch-mode': 'navigate' } }, 302],
    [{ method: 'POST', headers: { 'sec-fetch-mode': 'navigate' } }, 303],  // a form post
    [{ method: 'POST', accept: '' }, 303],  // a browser without fetch metadata
    [{ uri: '/api/cases', accept: 'application/json' }, 429],
    [{ uri: '/api/cases', accept: '*/*', headers: { 'sec-fetch-mode': 'cors' } }, 429],
    [{ uri: '/submit/form', method: 'PUT', accept: 'application/json' }, 429],
    [{ uri: '/submit/form', method: 'DELETE', headers: { 'sec-fetch-mode': 'same-origin' } }, 429],
  ];
  for (const [options, status] of cases) {
    const result = await gate(event(options));
    assert.equal(result.statusCode, status, JSON.stringify(options));
    if (status === 429) {
      assert.equal(result.headers['content-type'].value, 'application/json');
      assert.equal(JSON.parse(result.body).status, 'queued');
    } else {
      assert.match(result.headers.location.value, /^\/waiting-room\/index\.html\?return=/);
    }
  }
});

test('the waiting page is sent the language Accept-Language asks for', async () => {
  const gate = loadGate(store('queue'));
  const french = await gate(event({ headers: { 'accept-language': 'fr-CA,fr;q=0.9,en;q=0.8' } }));
  assert.equal(french.headers.location.value, '/waiting-room/index.html?return=%2Fapply&lang=fr');
  const german = await gate(event({ headers: { 'accept-language': 'de-DE,en;q=0.5' } }));
  assert.match(german.headers.location.value, /&lang=en$/);
  const none = await gate(event({ headers: { 'accept-language': 'de' } }));
  assert.equal(none.headers.location.value, '/waiting-room/index.html?return=%2Fapply');
  const asked = await gate(event({ qs: { lang: { value: 'en' } },
    headers: { 'accept-language': 'fr' } }));
  assert.match(asked.headers.location.value, /&lang=en$/, '?lang= wins over the header');
});

// -- item 11: failures are deliberate, uniform and logged.

test('a revocation the gate cannot read turns the visitor away, logged', async () => {
  const logs = [];
  const gate = loadGate({ ...store('queue'), 'revoked.visitor-9': '1' }, {
    failing: ['revoked.visitor-9'], logs });
  assert.equal((await gate(event({ cookie: token(V.now + 600) }))).statusCode, 302);
  assert.deepEqual(logs, ['floodgate-gate refused revocation-unreadable']);
});

test('without the current key everyone passes, logged: a forged cookie gains nothing',
  async () => {
    const logs = [];
    const missing = store('queue');
    delete missing[`key.${KID}`];
    const gate = loadGate(missing, { logs });
    const forged = ['v1', V.room, 'visitor-9', String(V.now + 600), KID, 'f'.repeat(64)].join('.');
    assert.ok(passes(await gate(event())), 'no cookie');
    assert.ok(passes(await gate(event({ cookie: forged }))), 'a forged cookie, no more and no less');
    assert.deepEqual(logs, Array(2).fill('floodgate-gate fail-open key-missing'));
  });

test('a key id the store lacks is an invalid token while the current key is there', async () => {
  const logs = [];
  const gate = loadGate(store('queue'), { logs });
  const other = ['v1', V.room, 'visitor-9', String(V.now + 600), 'k-retired'].join('.');
  const retired = `${other}.${crypto.createHmac('sha256', V.keys[KID]).update(other).digest('hex')}`;
  assert.equal((await gate(event({ cookie: retired }))).statusCode, 302);
  const forged = ['v1', V.room, 'visitor-9', String(V.now + 600), KID, 'f'.repeat(64)].join('.');
  assert.equal((await gate(event({ cookie: forged }))).statusCode, 302, 'forged under the current');
  assert.deepEqual(logs, [], 'neither is a failure of the store');
});

test('a signature with extra trailing characters is refused', async () => {
  const gate = loadGate(store('queue'));
  const good = token(V.now + 600);
  assert.ok(passes(await gate(event({ cookie: good }))));
  for (const forged of [good + '0', good + '00', good + 'ff' + 'ff']) {
    assert.equal((await gate(event({ cookie: forged }))).statusCode, 302, forged.slice(-8));
  }
});
