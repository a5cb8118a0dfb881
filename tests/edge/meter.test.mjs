// Metering (issue 27): while the room is open and meters arrivals ("meter": true), a newcomer's
// page load goes through the waiting page, whose join admits them at once within the step's
// free capacity (room.Room.meter, tests/functions/test_meter.py), so the room counts arrivals
// within seconds instead of reading them a minute late from the load balancer. Whoever the room
// admitted (a token) or is already inside (a session of their own network) passes; what is not
// a page load passes as when open, so nothing in flight is lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { event, kvsStore, loadGate, passes, pinClock, responseEvent, runViewerResponse, V }
  from './harness.mjs';

const KID = Object.keys(V.keys)[0];
const LIFE_S = 1200;
const store = (room = {}) => kvsStore({ state: 'open', meter: true, kid: KID, session_s: LIFE_S,
  session_max_s: 4 * 3600, queue_since: 0, carry_s: 600, token_ttl_s: 7200, ...room });
const page = (options = {}) => event({ accept: 'text/html',
  headers: { 'sec-fetch-mode': 'navigate' }, ...options });
const other = '203.0.113.9'; // another network than the harness's 198.51.100.11

pinClock();

test('a newcomer\'s page load goes through the waiting page; one the room admitted passes', async () => {
  const gate = loadGate(store());
  const sent = await gate(page({ uri: '/apply', qs: { step: { value: '2' } } }));
  assert.equal(sent.statusCode, 302);
  assert.equal(sent.headers.location.value, '/waiting-room/index.html?return=%2Fapply%3Fstep%3D2');
  for (const token of [...V.valid, V.network_token]) {
    assert.ok(passes(await gate(page({ cookie: token }))), token);
  }
  assert.ok(passes(await gate(page({ cookies: { fg_session: V.stamped } }))), 'inside already');
  for (const bad of Object.values(V.invalid)) {
    assert.equal((await gate(page({ cookie: bad }))).statusCode, 302, bad);
  }
});

test('metered tokens and sessions pass only from their own network', async () => {
  const gate = loadGate(store());
  for (const cookies of [{ fg_admit: V.network_token }, { fg_session: V.stamped }]) {
    const away = page({ cookies });
    away.viewer.ip = other;
    assert.equal((await gate(away)).statusCode, 302, JSON.stringify(cookies));
  }
});

test('a revoked visitor or network is sent through the join again', async () => {
  const gate = loadGate(store());
  const revoked = loadGate(kvsStore({ state: 'open', meter: true, kid: KID,
    session_s: LIFE_S, token_ttl_s: 7200 }, { [`revoked.${V.networks['198.51.100.11']}`]: '9' }));
  assert.ok(passes(await gate(page({ cookies: { fg_session: V.stamped } }))));
  assert.equal((await revoked(page({ cookies: { fg_session: V.stamped } }))).statusCode, 302);
  assert.ok(passes(await gate(page({ cookie: V.network_token }))));
  assert.equal((await revoked(page({ cookie: V.network_token }))).statusCode, 302,
    'a token for a revoked network (carried or metered) no longer passes');
});

test('what is not a page load passes, and an unmetered open room lets everyone in', async () => {
  const gate = loadGate(store());
  const call = event({ accept: 'application/json', headers: { 'sec-fetch-mode': 'cors' } });
  assert.ok(passes(await gate(call)), 'a script\'s call');
  assert.ok(passes(await gate(page({ method: 'POST' }))), 'a form post in flight');
  assert.ok(passes(await gate(event({ uri: '/assets/app.js', accept: '*/*',
    headers: { 'sec-fetch-mode': 'no-cors' } }))), 'an asset');
  for (const meter of [false, 'true', undefined]) {
    assert.ok(passes(await loadGate(store({ meter }))(page())), String(meter));
  }
});

test('metering stamps a session only for someone admitted or inside', async () => {
  const gate = loadGate(store());
  const bare = await runViewerResponse(gate, responseEvent({ accept: '*/*' }));
  assert.equal(bare.cookies.fg_session, undefined, 'a newcomer\'s asset gets no session');
  const admitted = await runViewerResponse(gate, responseEvent({ cookie: V.valid[0] }));
  assert.equal(admitted.cookies.fg_session.value, V.stamped, 'admitted: the session Python reads');
  const unmetered = await runViewerResponse(loadGate(store({ meter: false })), responseEvent());
  assert.equal(unmetered.cookies.fg_session.value, V.stamped);
});
