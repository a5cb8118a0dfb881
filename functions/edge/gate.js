// Floodgate edge gate: CloudFront Function (cloudfront-js-2.0) on every behaviour that reaches
// the ALB, deployed twice from this file: viewer request (the gate) and viewer response (the
// session stamp). Reads room state and signing keys from the KeyValueStore; makes no network
// call. Fails open when the room state is unreadable: the room must never be the reason the
// portal is down.
//
// KVS keys: "room" -> {"state":"open|queue|closed","room":"<room id>","kid":"<current key>",
// "session_s":<session length>}; "key.<kid>" -> the HMAC key, 64 hex characters used as-is (no
// decode: it costs as much as the HMAC itself); "revoked.<visitor>" -> any value.
// Admission token cookie "fg_admit" (signed by the room's Lambda):
//   v1.<room>.<visitor>.<expiry epoch s>.<kid>.<hex HMAC-SHA256 of everything before it>
// Session cookie "fg_session" (stamped here on responses while the room is open, renewed while
// the visitor keeps using the site): the same shape with "s1" and a nonce for the visitor.
// When the room starts queueing, people already inside carry on; only new arrivals queue.
import cf from 'cloudfront';

const crypto = require('crypto');
const kvs = cf.kvs();
const COOKIE = 'fg_admit';
const SESSION = 'fg_session';
// Directories the gate never holds (the room's own pages and API, cached assets), matched as
// prefixes; single files matched exactly. A path that could walk out of them is refused first.
const BYPASS_DIRS = ['/waiting-room/', '/queue/', '/high-demand/', '/assets/', '/static/'];
const BYPASS_FILES = ['/favicon.ico', '/robots.txt'];
const TRAVERSAL = /\.\.|\/\.\/|\/\/|%2e|%2f|%5c|\\/i;
const WAITING_PAGE = '/waiting-room/index.html';
const CLOSED_PAGE = '/waiting-room/closed.html';
const RETRY_AFTER_S = '10';

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
  let room;
  try {
    room = JSON.parse(await kvs.get('room'));
  } catch (e) {
    return request;
  }
  if (room.state === 'open') return request;
  if (room.state === 'queue' && (await admitted(request, room)
    || await signed(request.cookies[SESSION], 's1', room.room, Number(room.session_s)))) {
    return request;
  }
  return turnAway(request, room.state === 'closed');
}

async function admitted(request, room) {
  const parts = await signed(request.cookies[COOKIE], 'v1', room.room, Number(room.token_ttl_s));
  if (!parts) return false;
  try {
    return !(await kvs.exists('revoked.' + parts[2]));
  } catch (e) {
    return false;
  }
}

// The cookie's six parts if it carries `version`, this room, an expiry still ahead (and at most
// `lifeS` ahead when lifeS > 0) and a valid signature; otherwise null.
async function signed(cookie, version, roomId, lifeS) {
  if (!cookie || typeof cookie.value !== 'string') return null;
  const parts = cookie.value.split('.');
  if (parts.length !== 6 || parts[0] !== version || parts[1] !== roomId) return null;
  const expiry = Number(parts[3]);
  const now = Date.now() / 1000;
  if (!(expiry > now) || (lifeS > 0 && expiry > now + lifeS + 60)) return null;
  let key;
  try {
    key = await kvs.get('key.' + parts[4]);
  } catch (e) {
    return null;
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
  let room;
  try {
    room = JSON.parse(await kvs.get('room'));
  } catch (e) {
    return response;
  }
  const lifeS = Number(room.session_s);
  if (!(lifeS > 0) || typeof room.kid !== 'string') return response;
  const held = await signed(event.request.cookies[SESSION], 's1', room.room, lifeS);
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

function turnAway(request, closed) {
  const accept = request.headers.accept ? request.headers.accept.value : '';
  if (accept.indexOf('application/json') !== -1) {
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
  const target = closed ? CLOSED_PAGE
    : WAITING_PAGE + '?return=' + encodeURIComponent(request.uri + query);
  return {
    statusCode: request.method === 'GET' || request.method === 'HEAD' ? 302 : 303,
    statusDescription: 'Found',
    headers: { location: { value: target }, 'cache-control': { value: 'no-store' } },
  };
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
