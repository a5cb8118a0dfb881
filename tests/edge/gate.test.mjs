// The edge gate under node with CloudFront Function event shapes and an in-memory KeyValueStore.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEPLOYED, event, kvsStore, loadGate, passes, pinClock, V } from './harness.mjs';

const store = (state, extra = {}) => kvsStore({ state }, extra);

pinClock();


test('open room lets everyone through', async () => {
  const gate = loadGate(store('open'));
  assert.ok(passes(await gate(event())));
});

test('valid tokens made by Python pass while queueing', async () => {
  const gate = loadGate(store('queue'));
  for (const token of V.valid) assert.ok(passes(await gate(event({ cookie: token }))), token);
});

for (const [why, token] of Object.entries(V.invalid)) {
  test(`${why} token is sent to the waiting page`, async () => {
    const gate = loadGate(store('queue'));
    const result = await gate(event({ cookie: token }));
    assert.equal(result.statusCode, 302);
    assert.equal(result.headers.location.value, '/waiting-room/index.html?return=%2Fapply');
  });
}

test('missing cookie while queueing is sent to the waiting page', async () => {
  const result = await loadGate(store('queue'))(event());
  assert.equal(result.statusCode, 302);
});

test('missing or malformed cookie in an open room still passes', async () => {
  const gate = loadGate(store('open'));
  assert.ok(passes(await gate(event({ cookie: 'garbage' }))));
  assert.ok(passes(await gate(event())));
});

test('closed room sends everyone, even admitted visitors, to the notice page', async () => {
  const gate = loadGate(store('closed'));
  for (const cookie of [undefined, V.valid[0], 'garbage']) {
    const result = await gate(event({ cookie }));
    assert.equal(result.statusCode, 302);
    assert.equal(result.headers.location.value, '/waiting-room/closed.html?return=%2Fapply',
      'the notice keeps the way back');
  }
});

test('revoked visitor is turned away although the token is valid', async () => {
  const gate = loadGate(store('queue', { 'revoked.visitor-1': '1' }));
  assert.equal((await gate(event({ cookie: V.valid[0] }))).statusCode, 302);
  assert.ok(passes(await gate(event({ cookie: V.valid[1] }))), 'other visitors unaffected');
});

test('a rotated-out key stops verifying once removed from the store', async () => {
  const gate = loadGate({ room: JSON.stringify({ state: 'queue', room: V.room, kid: 'k2' }),
    'key.k2': '22'.repeat(32) });
  assert.equal((await gate(event({ cookie: V.valid[0] }))).statusCode, 302);
});

test('bypass paths always pass, whatever the room state', async () => {
  const gate = loadGate(store('closed'));
  for (const uri of ['/waiting-room/', '/waiting-room/fr.html', '/queue/status',
    '/high-demand/index.html', '/favicon.ico']) {
    assert.ok(passes(await gate(event({ uri }))), uri);
  }
});

test('a bypass directory matches as a prefix, never anywhere in the path', async () => {
  const gate = loadGate(store('queue'));
  for (const uri of ['/apply/waiting-room/', '/x/queue/status', '/apply?/high-demand/',
    '/waiting-room', '/queue']) {
    assert.equal((await gate(event({ uri }))).statusCode, 302, uri);
  }
});

test('JSON clients get 429 with Retry-After and a JSON body', async () => {
  const result = await loadGate(store('queue'))(event({ accept: 'application/json' }));
  assert.equal(result.statusCode, 429);
  assert.equal(result.headers['retry-after'].value, '10');
  assert.deepEqual(JSON.parse(result.body), { status: 'queued', waitingRoom: '/waiting-room/index.html' });
});

test('JSON clients get 503 when the room is closed', async () => {
  const result = await loadGate(store('closed'))(event({ accept: 'application/json' }));
  assert.equal(result.statusCode, 503);
});

test('the return address keeps the query string', async () => {
  const qs = { lang: { value: 'fr' }, step: { value: '2', multiValue: [{ value: '2' }, { value: '3' }] } };
  const result = await loadGate(store('queue'))(event({ uri: '/apply/form', qs }));
  assert.equal(result.headers.location.value,
    '/waiting-room/index.html?return=' + encodeURIComponent('/apply/form?lang=fr&step=2&step=3')
    + '&lang=fr');
});

test('form posts without a token are redirected with 303', async () => {
  const result = await loadGate(store('queue'))(event({ method: 'POST' }));
  assert.equal(result.statusCode, 303);
});

test('a room the gate cannot read or understand fails open, logged for the alarm', async () => {
  for (const [room, why] of [['not json', 'room-invalid'], ['null', 'room-invalid'],
    ['{"state":"paused","room":"r"}', 'room-invalid'], ['{"state":"queue"}', 'room-invalid'],
    [undefined, 'room-unreadable']]) {
    const logs = [];
    const gate = loadGate(room === undefined ? {} : { room }, { logs });
    assert.ok(passes(await gate(event())), String(room));
    assert.deepEqual(logs, [`floodgate-gate fail-open ${room === 'not json' ? 'room-unreadable' : why}`]);
  }
});

// "Maximum size of a function: 10 KB" (CloudFront Developer Guide, Quotas on CloudFront
// Functions); 9 KB leaves room for the next fix.
test('function as deployed stays under the 10 KB CloudFront Functions limit', () => {
  assert.ok(Buffer.byteLength(DEPLOYED) < 9 * 1024, `${Buffer.byteLength(DEPLOYED)} bytes`);
});
