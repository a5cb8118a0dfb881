// Sessions: people using the site while the room is open carry on when it starts queueing, and
// a session is a claim to be carried in once, for its own network, not a cookie anyone can farm
// (issue 26). The carry itself (a counted visitor, once per session) is the join function's:
// tests/functions/test_hardening.py.
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
const CARRY_S = 600;

const store = (state, room = {}) => kvsStore({ state, kid: KID, session_s: LIFE_S,
  session_max_s: MAX_S, queue_since: state === 'queue' ? QUEUE_SINCE : undefined,
  carry_s: CARRY_S, ...room });

function session({ expiry = V.now + LIFE_S, room = V.room, kid = KID, key = V.keys[KID],
  version = 's2', network = NET, issued = QUEUE_SINCE - 300 } = {}) {
  const body = [version, room, network, String(expiry), kid, String(issued)].join('.');
  return `${body}.${crypto.createHmac('sha256', key).update(body).digest('hex')}`;
}

// A request that is not a page load (a page's script calling the portal's API) from `ip`.
const from = (ip, cookie, options = {}) => {
  const e = event({ cookies: { fg_session: cookie }, accept: '*/*',
    headers: { 'sec-fetch-mode': 'cors' }, ...options });
  e.viewer.ip = ip;
  return e;
};
// A browser loading a page (GET, Sec-Fetch-Mode: navigate).
const pageLoad = (ip, cookie, method = 'GET', token = undefined) => from(ip, cookie,
  { method, accept: 'text/html', headers: { 'sec-fetch-mode': 'navigate' }, cookie: token });
const at = (t) => { Date.now = () => t * 1000; };
// Seconds into the carry window at which a session's page loads go through the waiting page:
// the gate takes them from its signature, so that turns spread over the window.
const turnOf = (cookie) => parseInt(cookie.split('.')[6].slice(0, 8), 16) % CARRY_S;

pinClock();

test('an open room stamps a signed session the gate honours once it queues', async () => {
  const stamped = await runViewerResponse(loadGate(store('open')), responseEvent());
  const cookie = stamped.cookies.fg_session;
  assert.match(cookie.attributes, /^Path=\/; Secure; HttpOnly; SameSite=Lax; Max-Age=1200$/);
  const [version, room, network, expiry, kid, issued] = cookie.value.split('.');
  assert.deepEqual([version, room, network, Number(expiry), kid, Number(issued)],
    ['s2', V.room, NET, V.now + LIFE_S, KID, V.now]);
  assert.equal(cookie.value, V.stamped, 'the bytes Python signs and reads (tokens.read_session)');
  const queueing = loadGate(store('queue', { queue_since: V.now }));
  assert.ok(passes(await queueing(from(HOME, cookie.value))));
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
  try {
    const since = V.now + 1;
    at(since + CARRY_S - 1);
    let pages = 0;
    for (const cookie of harvested) {
      const r = await queueing(pageLoad(HOME, cookie));
      if (r.statusCode === 302 && r.headers.location.value.startsWith('/waiting-room/')) pages++;
    }
    assert.equal(pages, 1000, 'by the end of the window every page load goes through the'
      + ' waiting page (its join carries one visitor per session, a bounded number a network)');
    assert.ok(passes(await queueing(from(HOME, harvested[0]))), 'calls pass in the window');
    at(since + CARRY_S);
    let after = 0;
    for (const cookie of harvested) if (passes(await queueing(from(HOME, cookie)))) after++;
    assert.equal(after, 0, 'after the carry window a session alone passes nothing');
  } finally {
    at(V.now);
  }
});

test('the turns of 1,000 people inside spread over the carry window', async () => {
  const gate = loadGate(store('queue'));
  const inside = Array.from({ length: 1000 },
    (_, i) => session({ issued: QUEUE_SINCE - 1000 + i }));
  const due = [];
  try {
    for (const share of [0.1, 0.5, 0.9]) {
      at(QUEUE_SINCE + CARRY_S * share);
      let sent = 0;
      for (const cookie of inside) if (!passes(await gate(pageLoad(HOME, cookie)))) sent++;
      due.push(sent);
    }
  } finally {
    at(V.now);
  }
  // Uniform turns: 100, 500 and 900 expected; 4 standard deviations either side.
  assert.ok(due[0] > 60 && due[0] < 140 && due[1] > 436 && due[1] < 564
    && due[2] > 860 && due[2] < 940, `sent to the waiting page by 10/50/90 %: ${due}`);
});

test('while queueing, a page load goes through the waiting page at its turn; what is in flight'
  + ' passes', async () => {
  const gate = loadGate(store('queue'));
  const cookie = session();
  try {
    at(QUEUE_SINCE + turnOf(cookie) - 1);
    assert.ok(passes(await gate(pageLoad(HOME, cookie))), 'before its turn a page load passes');
    at(QUEUE_SINCE + turnOf(cookie));
    const read = await gate(pageLoad(HOME, cookie));
    assert.equal(read.statusCode, 302);
    assert.equal(read.headers.location.value, '/waiting-room/index.html?return=%2Fapply');
    assert.equal((await gate(pageLoad(HOME, cookie, 'HEAD'))).statusCode, 302);
    assert.ok(passes(await gate(pageLoad(HOME, cookie, 'POST'))), 'a form post in flight');
    assert.ok(passes(await gate(from(HOME, cookie, { uri: '/static/app.css',
      accept: 'text/css', headers: { 'sec-fetch-mode': 'no-cors' } }))), "a page's asset");
    const legacy = from(HOME, cookie, { accept: 'text/html', headers: {} });
    assert.equal((await gate(legacy)).statusCode, 302, 'no Fetch Metadata: HTML is a page load');
  } finally {
    at(V.now);
  }
});

test('a session alone passes for carry_s after queueing began, not a second longer', async () => {
  const gate = loadGate(store('queue'));
  try {
    at(QUEUE_SINCE + CARRY_S - 1);
    assert.ok(passes(await gate(from(HOME, session({ expiry: QUEUE_SINCE + CARRY_S + 60 })))));
    at(QUEUE_SINCE + CARRY_S);
    assert.equal((await gate(from(HOME, session({ expiry: QUEUE_SINCE + CARRY_S + 60 }))))
      .statusCode, 429);
  } finally {
    at(V.now);
  }
});

test('a session issued after queueing began does not pass', async () => {
  const gate = loadGate(store('queue'));
  assert.equal((await gate(from(HOME, session({ issued: QUEUE_SINCE + 1 })))).statusCode, 429);
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
  assert.equal((await revoked(from(HOME, session()))).statusCode, 429);
  const logs = [];
  const unreadable = loadGate(store('queue'), { failing: [`revoked.${NET}`], logs });
  assert.equal((await unreadable(from(HOME, session()))).statusCode, 429);
  assert.deepEqual(logs, ['floodgate-gate refused revocation-unreadable']);
});

test('a session renewed while queueing keeps its issue time and never outlasts the carry',
  async () => {
    const gate = loadGate(store('queue'));
    let cookie = session({ issued: QUEUE_SINCE - 60, expiry: QUEUE_SINCE - 60 + LIFE_S });
    let passed = 0;
    let renewals = 0;
    try {
      for (let t = V.now; t < V.now + 26 * 3600; t += 60) {
        at(t);
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
      at(V.now);
    }
    assert.ok(renewals > 0, 'renewed while it held');
    assert.equal(passed, QUEUE_SINCE + CARRY_S - 60, 'passed until the carry window closed');
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
    assert.equal((await gate(from(HOME, value))).statusCode, 429);
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

test('a room entry without queue_since, session_max_s or carry_s passes no session', async () => {
  for (const missing of ['queue_since', 'session_max_s', 'carry_s']) {
    const gate = loadGate(store('queue', { [missing]: undefined }));
    assert.equal((await gate(from(HOME, session()))).statusCode, 429, missing);
    if (missing === 'carry_s') continue; // renewal is no pass: the join may still carry it
    const renewed = await runViewerResponse(gate,
      responseEvent({ cookies: { fg_session: session({ expiry: V.now + 60 }) } }));
    assert.deepEqual(renewed.cookies, {}, `${missing}: not renewed either`);
  }
});

test('a revoked network is stamped no new session while the room is open', async () => {
  const gate = loadGate({ ...store('open'), [`revoked.${NET}`]: String(V.now + 7200) });
  assert.deepEqual((await runViewerResponse(gate, responseEvent())).cookies, {});
});

test("a carried visitor's token (v2) passes from its own network only", async () => {
  const gate = loadGate(store('queue'));
  const token = V.network_token;
  assert.ok(passes(await gate(pageLoad(HOME, undefined, 'GET', token))), 'at home');
  assert.ok(passes(await gate(pageLoad('198.51.100.200', undefined, 'GET', token))), 'its /24');
  assert.equal((await gate(pageLoad('203.0.113.7', undefined, 'GET', token))).statusCode, 302,
    'handed to another network it is no pass');
  const parts = token.split('.');
  parts[5] = V.networks['203.0.113.7'];
  assert.equal((await gate(pageLoad('203.0.113.7', undefined, 'GET', parts.join('.'))))
    .statusCode, 302, 'rewriting its network breaks the signature');
  const revoked = loadGate({ ...store('queue'), 'revoked.visitor-3': String(V.now + 60) });
  assert.equal((await revoked(pageLoad(HOME, undefined, 'GET', token))).statusCode, 302);
});
