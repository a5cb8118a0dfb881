// Floodgate edge gate: CloudFront Function (cloudfront-js-2.0) on every behaviour that reaches
// the ALB, deployed twice from this file: viewer request (the gate) and viewer response (the
// session stamp). Reads room state and signing keys from the KeyValueStore; makes no network
// call.
//
// Failure, decided once: what the gate needs for everyone (the room entry, the current key) it
// cannot read -> the request passes (a public portal must never be down because of its waiting
// room) and "floodgate-gate fail-open <why>" is logged (CloudWatch Logs, us-east-1: a metric
// filter and alarm count it). What it needs for one visitor (their revocation) it cannot read ->
// that visitor is not admitted this time ("floodgate-gate refused <why>"): a read error never
// lets a revoked visitor in.
//
// KVS keys: "room" -> {"state":"open|queue|closed","room":"<room id>","kid":"<current key>",
// "session_s":<session length>,"token_ttl_s":<token life>}; "key.<kid>" -> the HMAC key, 64 hex
// characters used as-is; "revoked.<visitor>" -> the time the revocation ends.
// Admission token cookie "fg_admit" (signed by the room's Lambda):
//   v1.<room>.<visitor>.<expiry epoch s>.<kid>.<hex HMAC-SHA256 of everything before it>
// Session cookie "fg_session" (stamped here on responses while the room is open, renewed while
// the visitor keeps using the site): the same shape with "s1" and a nonce for the visitor.
// When the room starts queueing, people already inside carry on; only new arrivals queue.
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
const RETRY_AFTER_S = '10';
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
  if (room === null || room.state === 'open') return request;
  if (room.state === 'queue') {
    const token = await admitted(request, room);
    if (token === UNVERIFIABLE) return failOpen('key-missing', request);
    if (token) return request;
    const session = await signed(request.cookies[SESSION], 's1', room, Number(room.session_s));
    if (session === UNVERIFIABLE) return failOpen('key-missing', request);
    if (session) return request;
  }
  return turnAway(request, room.state === 'closed');
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

// True for a valid, unrevoked token; UNVERIFIABLE if its key is the room's current one and the
// store lacks it (the sync lags); false otherwise.
async function admitted(request, room) {
  const parts = await signed(request.cookies[COOKIE], 'v1', room, Number(room.token_ttl_s));
  if (!parts || parts === UNVERIFIABLE) return parts;
  try {
    return !(await kvs.exists('revoked.' + parts[2]));
  } catch (e) {
    console.log(LOG + 'refused revocation-unreadable');
    return false;
  }
}

const UNVERIFIABLE = 'unverifiable';

// The cookie's six parts if it carries `version`, this room, an expiry still ahead (and at most
// `lifeS` ahead when lifeS > 0) and a valid signature; UNVERIFIABLE if signed with the room's
// current key and the store lacks it; otherwise null (a retired or made-up kid included).
async function signed(cookie, version, room, lifeS) {
  if (!cookie || typeof cookie.value !== 'string') return null;
  const parts = cookie.value.split('.');
  if (parts.length !== 6 || parts[0] !== version || parts[1] !== room.room) return null;
  const expiry = Number(parts[3]);
  const now = Date.now() / 1000;
  if (!(expiry > now) || (lifeS > 0 && expiry > now + lifeS + 60)) return null;
  let key;
  try {
    key = await kvs.get('key.' + parts[4]);
  } catch (e) {
    return parts[4] === room.kid ? UNVERIFIABLE : null;
  }
  const expected = crypto.createHmac('sha256', key).update(parts.slice(0, 5).join('.'))
    .digest('hex');
  return sameText(expected, parts[5]) ? parts : null;
}

// Viewer response: while the room is open, give the visitor a session (or renew one past half
// its life); while it queues, renew only a session the visitor already holds. CloudFront runs
// no viewer-response function on a response the gate made or on a status of 400 or higher.
async function stamp(event) {
  const response = event.response;
  const room = await readRoom(false);  // the gate has logged it on the way in
  const lifeS = room === null ? 0 : Number(room.session_s);
  if (!(lifeS > 0) || typeof room.kid !== 'string') return response;
  let held = await signed(event.request.cookies[SESSION], 's1', room, lifeS);
  if (held === UNVERIFIABLE) held = null;
  if (room.state !== 'open' && !held) return response;
  const now = Math.floor(Date.now() / 1000);
  if (held && Number(held[3]) - now > lifeS / 2) return response;
  let key;
  try {
    key = await kvs.get('key.' + room.kid);
  } catch (e) {
    return response;
  }
  const nonce = held ? held[2]
    : crypto.createHash('sha256').update(event.context.requestId).digest('hex').slice(0, 20);
  const body = ['s1', room.room, nonce, String(now + lifeS), room.kid].join('.');
  const mac = crypto.createHmac('sha256', key).update(body).digest('hex');
  response.cookies[SESSION] = { value: body + '.' + mac,
    attributes: 'Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=' + lifeS };
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
  const accept = header(request, 'accept');
  const mode = header(request, 'sec-fetch-mode');
  const navigating = mode ? mode === 'navigate' : accept.indexOf('application/json') === -1;
  const read = request.method === 'GET' || request.method === 'HEAD';
  if (!navigating) {
    return {
      statusCode: closed ? 503 : 429,
      statusDescription: closed ? 'Service Unavailable' : 'Too Many Requests',
      headers: {
        'retry-after': { value: RETRY_AFTER_S },
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
