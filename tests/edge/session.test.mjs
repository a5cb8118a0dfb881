// Sessions: people using the site while the room is open carry on when it starts queueing, and
// a session is a place for the network it was issued to, not a cookie anyone can farm (issue 26).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { event, kvsStore, loadGate, passes, pinClock, responseEvent, runViewerResponse, V }
  from './harness.mjs';

const LIFE_S = 1200;
const MAX_S = 4 * 3600;
const KID = Object.keys(V.keys)[0];
const HOME = '198.51.100.11'; // the harness's viewer address
const NET = V.networks[HOME]; // its network id, as Python computes it (tokens.network_id)
const QUEUE_SINCE = V.now - 60;

const store = (state, room = {}) => kvsStore({ state, kid: KID, session_s: LIFE_S,
  session_max_s: MAX_S, queue_since: state === 'queue' ? QUEUE_SINCE : undefined, ...room });

function session({ expiry = V.now + LIFE_S, room = V.room, kid = KID, key = V.keys[KID],
  version = 's2', network = NET, issued = QUEUE_SINCE - 300 } = {}) {
  const body = [version, room, network, String(expiry), kid, String(issued)].join('.');
  return `${body}.${crypto.createHmac('sha256', key).update(body).digest('hex')}`;
}

const from = (ip, cookie, options = {}) => {
  const e = event({ cookies: { fg_session: cookie }, ...options });
  e.viewer.ip = ip;
  return e;
};

pinClock();

test('an open room stamps a signed session the gate honours once it queues', async () => {
  const stamped = await runViewerResponse(loadGate(store('open')), responseEvent());
  const cookie = stamped.cookies.fg_session;
  assert.match(cookie.attributes, /^Path=\/; Secure; HttpOnly; SameSite=Lax; Max-Age=1200$/);
  const [version, room, network, expiry, kid, issued] = cookie.value.split('.');
  assert.deepEqual([version, room, network, Number(expiry), kid, Number(issued)],
    ['s2', V.room, NET, V.now + LIFE_S, KID, V.now]);
  const queueing = loadGate(store('queue', { queue_since: V.now }));
  assert.ok(passes(await queueing(event({ cookies: { fg_session: cookie.value } }))));
  assert.equal((await queueing(event())).statusCode, 302, 'a new arrival still queues');
});

test('the gate binds sessions to the network id Python computes, for every address form',
  async () => {
    for (const [ip, id] of Object.entries(V.networks)) {
      const stamped = await runViewerResponse(loadGate(store('open')),
        { ...responseEvent(), viewer: { ip } });
      assert.equal(stamped.cookies.fg_session.value.split('.')[2], id, ip);
    }
    assert.equal(V.networks['198.51.100.11'], V.networks['198.51.100.250'], 'one IPv4 /24');
    assert.equal(V.networks['2001:db8:1::1'], V.networks['2001:DB8:1:ffff::2'], 'one IPv6 /48');
    assert.notEqual(V.networks['2001:db8:1::1'], V.networks['2001:db8:2::1']);
    assert.equal(V.networks['::ffff:198.51.100.12'], NET, 'IPv4-mapped is its IPv4 network');
  });

test('harvest: 1,000 sessions fetched while open pass from their own network only', async () => {
  const open = loadGate(store('open'));
  const harvested = [];
  for (let i = 0; i < 1000; i++) {
    const r = await runViewerResponse(open, responseEvent({ requestId: `r${i}` }));
    harvested.push(r.cookies.fg_session.value);
  }
  assert.equal(new Set(harvested.map((c) => c.split('.')[2])).size, 1, 'one visitor: the network');
  // A minute later the room queues (queueing began after they were issued).
  const queueing = loadGate(store('queue', { queue_since: V.now + 1 }));
  let elsewhere = 0;
  for (let i = 0; i < harvested.length; i++) {
    const ip = `203.0.${Math.floor(i / 250)}.${i % 250}`;
    if (passes(await queueing(from(ip, harvested[i])))) elsewhere++;
  }
  assert.equal(elsewhere, 0, 'handed to 1,000 other addresses, none passes');
  assert.ok(passes(await queueing(from(HOME, harvested[0]))), 'at home it is one place');
});

test('a session issued after queueing began does not pass', async () => {
  const gate = loadGate(store('queue'));
  assert.equal((await gate(from(HOME, session({ issued: QUEUE_SINCE + 1 })))).statusCode, 302);
  assert.ok(passes(await gate(from(HOME, session({ issued: QUEUE_SINCE })))), 'issued at start');
});

test('one session from 50 addresses passes only from its own /24', async () => {
  const gate = loadGate(store('queue'));
  const cookie = session();
  let passed = 0;
  for (let i = 0; i < 50; i++) {
    if (passes(await gate(from(`192.0.2.${i}`, cookie)))) passed++;
  }
  assert.equal(passed, 0);
  assert.ok(passes(await gate(from('198.51.100.77', cookie))), 'the same /24 is the same network');
});

test('a revoked network is turned away although its session is valid', async () => {
  const gate = loadGate(store('queue', {}), {});
  assert.ok(passes(await gate(from(HOME, session()))));
  const revoked = loadGate({ ...store('queue'), [`revoked.${NET}`]: String(V.now + 7200) });
  assert.equal((await revoked(from(HOME, session()))).statusCode, 302);
  const logs = [];
  const unreadable = loadGate(store('queue'), { failing: [`revoked.${NET}`], logs });
  assert.equal((await unreadable(from(HOME, session()))).statusCode, 302);
  assert.deepEqual(logs, ['floodgate-gate refused revocation-unreadable']);
});

test('a session used every 11 minutes through a long queue ends at its absolute life',
  async () => {
    const realNow = Date.now;
    const gate = loadGate(store('queue'));
    let cookie = session({ issued: QUEUE_SINCE - 60, expiry: QUEUE_SINCE - 60 + LIFE_S });
    let passed = 0;
    let renewals = 0;
    try {
      for (let t = V.now; t < V.now + 26 * 3600; t += 11 * 60) {
        Date.now = () => t * 1000;
        if (!passes(await gate(from(HOME, cookie)))) break;
        passed = t;
        const r = await runViewerResponse(gate,
          { ...responseEvent({ cookies: { fg_session: cookie } }), viewer: { ip: HOME } });
        if (r.cookies.fg_session) {
          cookie = r.cookies.fg_session.value;
          renewals++;
          assert.equal(cookie.split('.')[5], String(QUEUE_SINCE - 60), 'renewal keeps issue time');
        }
      }
    } finally {
      Date.now = realNow;
    }
    assert.ok(renewals > 0, 'renewed while it held');
    assert.ok(passed < QUEUE_SINCE - 60 + MAX_S, 'never past its absolute life');
    assert.ok(passed >= QUEUE_SINCE - 60 + MAX_S - 11 * 60, 'carried on until then');
  });

test('a queueing room stamps nobody new but renews a live session past half its life', async () => {
  const gate = loadGate(store('queue'));
  assert.deepEqual((await runViewerResponse(gate, responseEvent())).cookies, {});
  const kept = await runViewerResponse(gate, responseEvent({ cookies: { fg_session: session() } }));
  assert.deepEqual(kept.cookies, {}, 'fresh enough: no Set-Cookie');
  const old = session({ expiry: V.now + LIFE_S / 4 });
  const renewed = await runViewerResponse(gate, responseEvent({ cookies: { fg_session: old } }));
  const parts = renewed.cookies.fg_session.value.split('.');
  assert.equal(parts[3], String(V.now + LIFE_S));
  assert.equal(parts[2], NET, 'the same visitor');
  const late = session({ expiry: V.now + 60, issued: V.now - MAX_S + 300 });
  const capped = await runViewerResponse(gate, responseEvent({ cookies: { fg_session: late } }));
  assert.equal(capped.cookies.fg_session.value.split('.')[3], String(V.now + 300),
    'renewed no further than its absolute life');
  const after = session({ expiry: V.now + 60, issued: QUEUE_SINCE + 10 });
  const none = await runViewerResponse(gate, responseEvent({ cookies: { fg_session: after } }));
  assert.deepEqual(none.cookies, {}, 'a session that does not hold is not renewed');
});

test('an open room issues a new session to a cookie from another network', async () => {
  const gate = loadGate(store('open'));
  const foreign = session({ network: V.networks['203.0.113.7'] });
  const r = await runViewerResponse(gate, responseEvent({ cookies: { fg_session: foreign } }));
  const parts = r.cookies.fg_session.value.split('.');
  assert.deepEqual([parts[2], parts[5]], [NET, String(V.now)]);
});

const refused = {
  expired: session({ expiry: V.now - 1 }),
  'beyond a session': session({ expiry: V.now + LIFE_S + 3600 }),
  'another room': session({ room: 'other-room' }),
  'an admission token': V.valid[0],
  'the old format': session({ version: 's1' }),
  forged: session({ key: 'f'.repeat(64) }),
  'an unknown key': session({ kid: 'nokey' }),
  'past its absolute life': session({ issued: V.now - MAX_S }),
  'issued at no time': session({ issued: 0 }),
  garbage: 's2.x',
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

test('a session is not an admission token', async () => {
  const gate = loadGate(store('queue'));
  assert.equal((await gate(event({ cookie: session() }))).statusCode, 302);
});

test('a closed room turns sessions away and stamps none', async () => {
  const gate = loadGate(store('closed'));
  const result = await gate(event({ cookies: { fg_session: session() } }));
  assert.equal(result.headers.location.value, '/waiting-room/closed.html?return=%2Fapply');
  assert.deepEqual((await runViewerResponse(gate, responseEvent())).cookies, {});
});

test('a room entry without queue_since or session_max_s holds no session', async () => {
  for (const missing of ['queue_since', 'session_max_s']) {
    const gate = loadGate(store('queue', { [missing]: undefined }));
    assert.equal((await gate(from(HOME, session()))).statusCode, 302, missing);
    const renewed = await runViewerResponse(gate,
      responseEvent({ cookies: { fg_session: session({ expiry: V.now + 60 }) } }));
    assert.deepEqual(renewed.cookies, {}, `${missing}: not renewed either`);
  }
});

test('a revoked network is stamped no new session while the room is open', async () => {
  const gate = loadGate({ ...store('open'), [`revoked.${NET}`]: String(V.now + 7200) });
  assert.deepEqual((await runViewerResponse(gate, responseEvent())).cookies, {});
});
