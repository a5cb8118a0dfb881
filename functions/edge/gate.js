// Floodgate edge gate: CloudFront Function (cloudfront-js-2.0), viewer request, default behaviour.
// Reads room state and signing keys from the KeyValueStore; makes no network call. Fails open
// when the room state is unreadable: the room must never be the reason the portal is down.
//
// KVS keys: "room" -> {"state":"open|queue|closed","room":"<room id>"}; "key.<kid>" -> the
// HMAC key, 64 hex characters used as-is (no decode: it costs as much as the HMAC itself);
// "revoked.<visitor>" -> any value. Token cookie "fg_admit":
// v1.<room>.<visitor>.<expiry epoch s>.<kid>.<hex HMAC-SHA256 of everything before it>
import cf from 'cloudfront';

const crypto = require('crypto');
const kvs = cf.kvs();
const COOKIE = 'fg_admit';
const BYPASS = ['/waiting-room/', '/queue/', '/high-demand/', '/assets/', '/static/',
  '/favicon.ico', '/robots.txt'];
const WAITING_PAGE = '/waiting-room/index.html';
const CLOSED_PAGE = '/waiting-room/closed.html';
const RETRY_AFTER_S = '10';

async function handler(event) {
  const request = event.request;
  const uri = request.uri;
  for (let i = 0; i < BYPASS.length; i++) {
    if (uri.startsWith(BYPASS[i])) return request;
  }
  let room;
  try {
    room = JSON.parse(await kvs.get('room'));
  } catch (e) {
    return request;
  }
  if (room.state === 'open') return request;
  if (room.state === 'queue' && await admitted(request, room.room)) return request;
  return turnAway(request, room.state === 'closed');
}

async function admitted(request, roomId) {
  const cookie = request.cookies[COOKIE];
  if (!cookie || typeof cookie.value !== 'string') return false;
  const parts = cookie.value.split('.');
  if (parts.length !== 6 || parts[0] !== 'v1' || parts[1] !== roomId) return false;
  const expiry = Number(parts[3]);
  if (!(expiry > Date.now() / 1000)) return false;
  let key;
  try {
    key = await kvs.get('key.' + parts[4]);
  } catch (e) {
    return false;
  }
  const signed = parts.slice(0, 5).join('.');
  const expected = crypto.createHmac('sha256', key).update(signed).digest('hex');
  if (!sameText(expected, parts[5])) return false;
  try {
    return !(await kvs.exists('revoked.' + parts[2]));
  } catch (e) {
    return false;
  }
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
