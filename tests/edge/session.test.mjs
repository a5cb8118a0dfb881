// Sessions: people using the site while the room is open carry on when it starts queueing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { event, kvsStore, loadGate, passes, pinClock, responseEvent, runViewerResponse, V }
  from './harness.mjs';

const LIFE_S = 1200;
const KID = Object.keys(V.keys)[0];

const store = (state, room = V.room) => kvsStore({ state, room, kid: KID, session_s: LIFE_S });

function session({ expiry = V.now + LIFE_S, room = V.room, kid = KID, key = V.keys[KID],
  version = 's1' } = {}) {
  const body = [version, room, 'n0nce', String(expiry), kid].join('.');
  return `${body}.${crypto.createHmac('sha256', key).update(body).digest('hex')}`;
}

pinClock();

test('an open room stamps a signed session the gate honours once it queues', async () => {
  const stamped = await runViewerResponse(loadGate(store('open')), responseEvent());
  const cookie = stamped.cookies.fg_session;
  assert.match(cookie.attributes, /^Path=\/; Secure; HttpOnly; SameSite=Lax; Max-Age=1200$/);
  const [version, room, nonce, expiry, kid] = cookie.value.split('.');
  assert.deepEqual([version, room, Number(expiry), kid], ['s1', V.room, V.now + LIFE_S, KID]);
  assert.match(nonce, /^[0-9a-f]{20}$/);
  const queueing = loadGate(store('queue'));
  assert.ok(passes(await queueing(event({ cookies: { fg_session: cookie.value } }))));
  assert.equal((await queueing(event())).statusCode, 302, 'a new arrival still queues');
});

test('two visitors get different sessions', async () => {
  const gate = loadGate(store('open'));
  const a = await runViewerResponse(gate, responseEvent({ requestId: 'a' }));
  const b = await runViewerResponse(gate, responseEvent({ requestId: 'b' }));
  assert.notEqual(a.cookies.fg_session.value, b.cookies.fg_session.value);
});

test('a queueing room stamps nobody new but renews a live session past half its life', async () => {
  const gate = loadGate(store('queue'));
  assert.deepEqual((await runViewerResponse(gate, responseEvent())).cookies, {});
  const fresh = session();
  const kept = await runViewerResponse(gate, responseEvent({ cookies: { fg_session: fresh } }));
  assert.deepEqual(kept.cookies, {}, 'fresh enough: no Set-Cookie');
  const old = session({ expiry: V.now + LIFE_S / 4 });
  const renewed = await runViewerResponse(gate, responseEvent({ cookies: { fg_session: old } }));
  assert.equal(renewed.cookies.fg_session.value.split('.')[3], String(V.now + LIFE_S));
  assert.equal(renewed.cookies.fg_session.value.split('.')[2], 'n0nce', 'the same visitor');
});

const refused = {
  expired: session({ expiry: V.now - 1 }),
  'beyond a session': session({ expiry: V.now + LIFE_S + 3600 }),
  'another room': session({ room: 'other-room' }),
  'an admission token': session({ version: 'v1' }),
  forged: session({ key: 'f'.repeat(64) }),
  'an unknown key': session({ kid: 'nokey' }),
  garbage: 's1.x',
};
for (const [why, value] of Object.entries(refused)) {
  test(`a session that is ${why} neither passes nor is renewed`, async () => {
    const gate = loadGate(store('queue'));
    assert.equal((await gate(event({ cookies: { fg_session: value } }))).statusCode, 302);
    const response = await runViewerResponse(gate,
      responseEvent({ cookies: { fg_session: value } }));
    assert.deepEqual(response.cookies, {});
  });
}

test('a session is not an admission token, nor a token a session', async () => {
  const gate = loadGate(store('queue'));
  assert.equal((await gate(event({ cookie: session() }))).statusCode, 302);
  assert.equal((await gate(event({ cookies: { fg_session: V.valid[0] } }))).statusCode, 302);
});

test('a closed room turns sessions away too', async () => {
  const result = await loadGate(store('closed'))(event({ cookies: { fg_session: session() } }));
  assert.equal(result.headers.location.value, '/waiting-room/closed.html?return=%2Fapply');
});
