// Floodgate edge gate: CloudFront Function (cloudfront-js-2.0) on every behaviour that reaches
// the ALB, deployed twice from this file: viewer request (the gate) and viewer response (the
// session stamp). Reads room state and signing keys from the KeyValueStore; makes no network
// call.
//
// Failure, decided once: what the gate needs for everyone (the room entry, the current key) it
// cannot read -> every request passes, whatever cookie it carries (a public portal must never be
// down because of its waiting room, and a cookie naming a key the store lacks is worth no more
// than none) and "floodgate-gate fail-open <why>" is logged (CloudWatch Logs, us-east-1: a metric
// filter and alarm count it). A rotation never causes it: a new key is in the store before the
// room names it (functions/admission/admin.rotate). What it needs for one visitor (their
// revocation, a retired key) it cannot read -> that visitor is not admitted this time
// ("floodgate-gate refused <why>"): a read error never lets a revoked visitor in.
//
// KVS keys: "room" -> {"state":"open|queue|closed","room":"<room id>","kid":"<current key>",
// "session_s":<session length>,"session_max_s":<absolute session life>,"queue_since":<epoch s
// queueing began>,"carry_s":<carry window>,"meter":<true: open, metering arrivals>,
// "token_ttl_s":<token life>}; "key.<kid>" -> the HMAC
// key, 64 hex characters used as-is; "revoked.<visitor>" -> the time the revocation ends.
// Admission token cookie "fg_admit" (signed by the room's Lambda):
//   v1.<room>.<visitor>.<expiry epoch s>.<kid>.<hex HMAC-SHA256 of everything before it>
//   v2.<room>.<visitor>.<expiry>.<kid>.<network>.<mac>: a carried visitor's, which passes only
//   from that network (a carry is cheap to get, so its token is not a bearer token elsewhere)
// Session cookie "fg_session" (stamped here on responses while the room is open):
//   s2.<room>.<network>.<expiry>.<kid>.<issued epoch s>.<hex HMAC-SHA256>
// A session is a claim to be carried, not a pass: its visitor id is the viewer's network (IPv4
// /24, IPv6 /48: tokens.network_id in Python, the same bytes), so a harvested session is worth
// nothing on another network. While the room queues, a session that holds (issued before
// queueing began, `queue_since`; within `session_max_s` of its issue; from its own network; not
// revoked) passes for `carry_s` after queueing began, and then nothing: a page load at or
// after the session's turn in that window (`carrying`) goes to the waiting page, whose join
// trades the session for an admission token for a visitor the room mints and counts (once per
// session, a bounded number per network: room.Room.carry). So the people already inside carry
// on after one pass through the waiting page (what is in flight, assets, scripts' calls, a
// form post, is never sent there), and every one of them is a visitor `revoke` can name.
// Renewal while queueing keeps the issue time.
//
// Metering (open, "meter": true): a page load passes with a token, or a session from its own
// network (not revoked); a newcomer's goes through the waiting page, whose join admits them at
// once within the step's free capacity (room.Room.meter), or tells them to try again in a few
// seconds while the room switches to queueing. What is not a page load passes as when open.
//
// Static assets are gated like pages: nobody in line needs them (the room's pages are
// self-contained), people inside carry their cookies (Path=/), and an ungated asset path was a
// way to the ALB around the room (a made-up query or path misses the cache).
import cf from 'cloudfront';

const crypto = require('crypto');
const kvs = cf.kvs();
const COOKIE = 'fg_admit';
const SESSION = 'fg_session';
// Directories the gate never holds (the room's own pages and API), matched as prefixes; single
// files matched exactly. A path that could walk out of them is refused first.
const BYPASS_DIRS = ['/waiting-room/', '/queue/', '/high-demand/'];
const BYPASS_FILES = ['/favicon.ico', '/robots.txt'];
const TRAVERSAL = /\.\.|\/\.\/|\/\/|%2e|%2f|%5c|\\/i;
const WAITING_PAGE = '/waiting-room/index.html';
const CLOSED_PAGE = '/waiting-room/closed.html';
const STATES = ['open', 'queue', 'closed'];
const LOG = 'floodgate-gate ';

async function handler(event) {
  if (event.context.eventType === 'viewer-response') return stamp(event);
  const request = event.request;
  const uri = request.uri;
  if (TRAVERSAL.test(uri)) {
    return { statusCode: 400, statusDescription: 'Bad Request',
      headers: { 'cache-control': { value: 'no-store' } } };
  }
  if (BYPASS_FILES.indexOf(uri) !== -1) return request;
  for (let i = 0; i < BYPASS_DIRS.length; i++) {
    if (uri.startsWith(BYPASS_DIRS[i])) return request;
  }
  const room = await readRoom(true);
  if (room === null) return request;
  if (room.state === 'open' && (room.meter !== true || !pageRead(request))) return request;
  if (room.state !== 'closed') {
    const current = await readKey(room.kid);
    if (current === null) return failOpen('key-missing', request);
    if (await tokenPasses(request, room, current, event.viewer)) return request;
    const session = await signed(request.cookies[SESSION], SESSION_VERSION, room, current,
      Number(room.session_s));
    if (session && (room.state === 'open' ? onNetwork(session[2], room, event.viewer)
      : holds(session, room, event.viewer) && carrying(session, room, request))
      && await notRevoked(session[2])) return request;
  }
  return turnAway(request, room.state === 'closed');
}

// An admission token of this room, not revoked; a v2 (carried or metered) one only from the
// network it names, and not once that network is revoked.
async function tokenPasses(request, room, current, viewer) {
  const token = await signed(request.cookies[COOKIE], TOKENS, room, current,
    Number(room.token_ttl_s));
  return token && (token.length === 6
    || onNetwork(token[5], room, viewer) && await notRevoked(token[5]))
    && await notRevoked(token[2]);
}

function onNetwork(id, room, viewer) {
  return id === networkId(room.room, viewer && viewer.ip);
}

// The room entry, or null (logged when `log`) if it cannot be read or is not a room.
async function readRoom(log) {
  let room;
  try {
    room = JSON.parse(await kvs.get('room'));
  } catch (e) {
    return log ? failOpen('room-unreadable', null) : null;
  }
  if (!room || STATES.indexOf(room.state) === -1 || typeof room.room !== 'string') {
    return log ? failOpen('room-invalid', null) : null;
  }
  return room;
}

function failOpen(why, value) {
  console.log(LOG + 'fail-open ' + why);
  return value;
}

// The HMAC key `kid` names, or null if the store lacks it or cannot be read.
async function readKey(kid) {
  if (typeof kid !== 'string' || !ID.test(kid)) return null;
  try {
    return await kvs.get('key.' + kid);
  } catch (e) {
    return null;
  }
}

// True unless the store lists `visitor` as revoked; a read error refuses (logged).
async function notRevoked(visitor) {
  try {
    return !(await kvs.exists('revoked.' + visitor));
  } catch (e) {
    console.log(LOG + 'refused revocation-unreadable');
    return false;
  }
}

const ID = /^[A-Za-z0-9_-]{1,64}$/;
const TOKENS = ['v1', 'v2'];
const SESSION_VERSION = ['s2'];
const PARTS = { v1: 6, v2: 7, s2: 7 };

// The cookie's parts if it carries one of `versions`, this room, an expiry still ahead (and at
// most `lifeS` ahead when lifeS > 0) and a valid signature by the room's current key (`current`,
// already read) or another key still in the store; otherwise null.
async function signed(cookie, versions, room, current, lifeS) {
  if (!cookie || typeof cookie.value !== 'string') return null;
  const parts = cookie.value.split('.');
  if (versions.indexOf(parts[0]) === -1 || parts.length !== PARTS[parts[0]]
    || parts[1] !== room.room) {
    return null;
  }
  const expiry = Number(parts[3]);
  const now = Date.now() / 1000;
  if (!(expiry > now) || (lifeS > 0 && expiry > now + lifeS + 60)) return null;
  const key = parts[4] === room.kid ? current : await readKey(parts[4]);
  if (key === null) return null;
  const mac = parts[parts.length - 1];
  const expected = crypto.createHmac('sha256', key)
    .update(parts.slice(0, parts.length - 1).join('.')).digest('hex');
  return sameText(expected, mac) ? parts : null;
}

// A session's own conditions while the room queues: issued before queueing began, within its
// absolute life, and presented from the network it was issued to.
// A room entry without `queue_since` or `session_max_s` holds no session: the condition is
// never skipped (the inlet always writes both; it backfills `queue_since`).
function holds(session, room, viewer) {
  const issued = Number(session[5]);
  return issued > 0 && issued <= Number(room.queue_since)
    && Date.now() / 1000 < sessionEnd(issued, room) && onNetwork(session[2], room, viewer);
}

// Within `carry_s` of queueing beginning, a session passes what is not a page load; a page
// load until the session's turn to go through the waiting page, a point in the window its
// signature picks, so that everyone inside is carried spread over the window, not in its
// first minute (the queue API is sized for joins, not for everyone inside at once).
function carrying(session, room, request) {
  const since = Number(room.queue_since);
  const carryS = Number(room.carry_s);
  const now = Date.now() / 1000;
  const turn = since + parseInt(session[6].slice(0, 8), 16) % carryS;
  return now < since + carryS && !(pageRead(request) && now >= turn);
}

function sessionEnd(issued, room) {
  return issued + Number(room.session_max_s);
}

// The viewer's network as a visitor id: the first 20 hex characters of SHA-256 over
// "fg-net|<room>|<prefix>", the prefix being an IPv4 address's first three octets ("198.51.100")
// or an IPv6 address's first three groups, four hex digits each ("2001:0db8:0001"). An IPv4
// address mapped into IPv6 (::ffff:a.b.c.d) is its IPv4 network. Null if `ip` is not an address.
function networkId(roomId, ip) {
  const prefix = networkPrefix(typeof ip === 'string' ? ip.toLowerCase() : '');
  if (prefix === null) return null;
  return crypto.createHash('sha256').update('fg-net|' + roomId + '|' + prefix).digest('hex')
    .slice(0, 20);
}

function networkPrefix(ip) {
  if (ip.indexOf(':') === -1) return ipv4Prefix(ip);
  if (ip.indexOf('.') !== -1) {
    return ip.indexOf('::ffff:') === 0 ? ipv4Prefix(ip.slice(7)) : null;
  }
  const halves = ip.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = head.slice();
  for (let i = 0; i < missing; i++) groups.push('0');
  for (let i = 0; i < tail.length; i++) groups.push(tail[i]);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-f]{1,4}$/.test(groups[i])) return null;
    groups[i] = ('000' + groups[i]).slice(-4);
  }
  return groups.slice(0, 3).join(':');
}

function ipv4Prefix(ip) {
  const octets = ip.split('.');
  if (octets.length !== 4) return null;
  for (let i = 0; i < 4; i++) {
    if (!/^[0-9]{1,3}$/.test(octets[i]) || Number(octets[i]) > 255) return null;
  }
  return octets.slice(0, 3).map(Number).join('.');
}

// Viewer response: while the room is open, give the visitor's network a session, issued now
// (or renew theirs past half its life); while it queues, renew only a session that holds (its
// issue time kept, so the absolute life still counts from it). CloudFront runs no
// viewer-response function on a response the gate made or on a status of 400 or higher.
async function stamp(event) {
  const response = event.response;
  // The gate has logged an unreadable room on the way in.
  const room = await readRoom(false);
  const lifeS = room === null ? 0 : Number(room.session_s);
  if (!(lifeS > 0) || room.state === 'closed') return response;
  const key = await readKey(room.kid);
  const network = networkId(room.room, event.viewer && event.viewer.ip);
  if (key === null || network === null) return response;
  const held = await signed(event.request.cookies[SESSION], SESSION_VERSION, room, key, lifeS);
  const mine = held && held[2] === network ? held : null;
  const now = Math.floor(Date.now() / 1000);
  const open = room.state === 'open';
  if (!open && !(mine && holds(mine, room, event.viewer))) return response;
  // Metering: a session only for someone the room admitted (a token) or already inside (a
  // session): one stamped on a newcomer's asset or script call would pass their next page
  // load around the join.
  if (open && room.meter === true && !mine
    && !(await tokenPasses(event.request, room, key, event.viewer))) return response;
  if (mine && Number(mine[3]) - now > lifeS / 2) return response;
  // A revoked network gets no new session.
  if (!(await notRevoked(network))) return response;
  const issued = open ? now : Number(mine[5]);
  const expiry = open ? now + lifeS
    : Math.min(now + lifeS, sessionEnd(issued, room));
  const body = [SESSION_VERSION[0], room.room, network, String(expiry), room.kid, String(issued)]
    .join('.');
  const mac = crypto.createHmac('sha256', key).update(body).digest('hex');
  response.cookies[SESSION] = { value: body + '.' + mac,
    attributes: 'Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=' + (expiry - now) };
  return response;
}

// Constant time in the signature's length: every character is compared.
function sameText(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

// Who is turned away, and how: a browser navigating is sent to the waiting page (or the closed
// notice) with its return path and language, 302 for reads and 303 for a form post; everything
// else (JSON and fetch clients, assets, API writes) gets 429 JSON with Retry-After (503 when
// closed), which a script can read and a redirect to a page would not serve.
function turnAway(request, closed) {
  const read = request.method === 'GET' || request.method === 'HEAD';
  if (!navigating(request)) {
    return {
      statusCode: closed ? 503 : 429,
      statusDescription: closed ? 'Service Unavailable' : 'Too Many Requests',
      headers: {
        // Seconds: the inlet's default step, when a place may next be let in.
        'retry-after': { value: '10' },
        'content-type': { value: 'application/json' },
        'cache-control': { value: 'no-store' },
      },
      body: JSON.stringify({ status: closed ? 'closed' : 'queued', waitingRoom: WAITING_PAGE }),
    };
  }
  const query = Object.keys(request.querystring).length ? '?' + serialize(request.querystring) : '';
  const lang = language(request);
  const target = (closed ? CLOSED_PAGE : WAITING_PAGE) + '?return='
    + encodeURIComponent(request.uri + query) + (lang ? '&lang=' + lang : '');
  return {
    statusCode: read ? 302 : 303,
    statusDescription: read ? 'Found' : 'See Other',
    headers: { location: { value: target }, 'cache-control': { value: 'no-store' } },
  };
}

function navigating(request) {
  const mode = header(request, 'sec-fetch-mode');
  return mode ? mode === 'navigate' : header(request, 'accept').indexOf('application/json') === -1;
}

// A browser loading a page: safe to send through the waiting page (nothing in flight is lost).
function pageRead(request) {
  return navigating(request) && (request.method === 'GET' || request.method === 'HEAD');
}

function header(request, name) {
  const h = request.headers[name];
  return h && typeof h.value === 'string' ? h.value.toLowerCase() : '';
}

// The pages speak English and French: the visitor's ?lang= if it names one, else the first of
// the two in Accept-Language (the static pages cannot read that header themselves).
function language(request) {
  const asked = request.querystring.lang;
  if (asked && (asked.value === 'en' || asked.value === 'fr')) return asked.value;
  const ranges = header(request, 'accept-language').split(',');
  for (let i = 0; i < ranges.length; i++) {
    const tag = ranges[i].trim().slice(0, 2);
    if (tag === 'en' || tag === 'fr') return tag;
  }
  return '';
}

function serialize(querystring) {
  const pairs = [];
  for (const name in querystring) {
    const entry = querystring[name];
    const values = entry.multiValue ? entry.multiValue : [entry];
    for (let i = 0; i < values.length; i++) {
      pairs.push(encodeURIComponent(name) + '=' + encodeURIComponent(values[i].value));
    }
  }
  return pairs.join('&');
}
