// Floodgate inbox: CloudFront Function (cloudfront-js-2.0) on the inbox's write paths, deployed
// twice from this file: viewer request (check the post, name its receipt) and viewer response
// (answer 202 with the receipt once SQS has taken it). Reads the receipt secret from the
// inbox's KeyValueStore; makes no network call. Nothing of the fleet is on this path: the
// request goes to an HTTP API route whose SQS-SendMessage integration puts it in the queue.
//
// The receipt id (functions/inbox/receipts.receipt_id computes the same):
//   with an idempotency key (header Idempotency-Key, or ?idempotency_key= in a form's action:
//   the edge cannot read a body) sha256("fg-inbox|<path>|<key>"), first 32 hex characters, so
//   a repeated post is the same receipt and the consumer acts on it once;
//   without one sha256("fg-inbox-request|<CloudFront request id>"), the same in both events.
// Viewer request adds x-floodgate-receipt: <id>.<HMAC(secret, "fg-inbox-id|<id>"), 32 hex>,
// which the integration carries as the message's `receipt` attribute: the consumer acts only on
// messages the edge tagged. Viewer response, on the integration's 200, signs what the client
// polls: <id>.<epoch s>.<HMAC(secret, "fg-receipt|<id>|<epoch s>"), 32 hex>, and answers
// 202 JSON with Location /inbox/receipts/<receipt>, or 303 to the confirmation page for a
// browser's form post. Anything else the API answers goes through untouched (a 5xx becomes the
// high-demand page, which tells the visitor the form was not received: true).
//
// A body over the inline limit, up to UPLOAD_MAX (inbox.body_max_bytes), is a PUT to
// /inbox/uploads<path>, <path> one of PATTERNS (inbox.path_patterns, CloudFront's `*` and `?`):
// the same receipt as a POST to <path> with the same key. The request goes to the uploads
// bucket (an origin access control signs it) as uploads/<receipt id>, with the tagged receipt,
// the path and the key as the object's metadata (x-amz-meta-floodgate-*); the bucket's event
// puts a message naming the object in the inbox's queue. S3's 200 is answered as a POST's is.
//
// Refused at the edge, before the queue: not a POST (405; an upload not a PUT), no
// Content-Length (411), a body over the inline limit (413: INLINE_MAX, set at deploy from
// inbox.inline_body_max_bytes; the answer names the upload path when uploads are on) or over
// UPLOAD_MAX for an upload, a content type SQS cannot carry as text (415; an upload takes any
// type/subtype), an upload for a path the inbox does not cover (404), a malformed idempotency
// key (400). The receipt secret unreadable: 503 with Retry-After, "not received", and
// "floodgate-inbox fail <why>" logged.
import cf from 'cloudfront';

const crypto = require('crypto');
const kvs = cf.kvs();
const INLINE_MAX = __INLINE_MAX__;
const UPLOAD_MAX = __UPLOAD_MAX__;
const PATTERNS = __PATTERNS__;
const UPLOADS = '/inbox/uploads';
const STORED = '/uploads/';
const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/;
const KEY = /^[A-Za-z0-9_-]{8,64}$/;
const TYPES = ['application/json', 'application/x-www-form-urlencoded', 'text/plain'];
const RECEIPTS = '/inbox/receipts/';
const RECEIVED_PAGE = '/inbox/received.html';
const LOG = 'floodgate-inbox ';

async function handler(event) {
  if (event.context.eventType === 'viewer-response') return answer(event);
  const request = event.request;
  const upload = request.uri.indexOf(UPLOADS + '/') === 0;
  const method = upload ? 'PUT' : 'POST';
  if (request.method !== method) return refuse(405, 'use ' + method, { allow: method });
  const length = header(request, 'content-length');
  if (length === null || !/^\d+$/.test(length)) return refuse(411, 'Content-Length required');
  const most = upload ? UPLOAD_MAX : INLINE_MAX;
  if (Number(length) > most) return refuse(413, tooLarge(upload, request.uri));
  const type = (header(request, 'content-type') || '').split(';')[0].trim().toLowerCase();
  if (upload ? !MEDIA_TYPE.test(type) : TYPES.indexOf(type) === -1) {
    return refuse(415, upload ? 'send a Content-Type' : 'send one of ' + TYPES.join(', '));
  }
  const path = upload ? request.uri.slice(UPLOADS.length) : request.uri;
  if (upload && !covered(path)) return refuse(404, path + ' is not an inbox path');
  const key = idempotencyKey(request);
  if (key === false) return refuse(400, 'idempotency key: 8-64 of A-Z a-z 0-9 _ -');
  const secret = await readSecret();
  if (secret === null) return unavailable(request);
  const id = receiptId(path, key, event.context.requestId);
  const tagged = id + '.' + mac(secret, 'fg-inbox-id|' + id);
  request.headers['content-type'] = { value: type };
  if (!upload) {
    request.headers['x-floodgate-receipt'] = { value: tagged };
    return request;
  }
  request.uri = STORED + id;
  request.headers['x-amz-meta-floodgate-receipt'] = { value: tagged };
  request.headers['x-amz-meta-floodgate-path'] = { value: path };
  if (key === null) delete request.headers['x-amz-meta-floodgate-key'];
  else request.headers['x-amz-meta-floodgate-key'] = { value: key };
  return request;
}

function tooLarge(upload, uri) {
  if (upload || UPLOAD_MAX <= INLINE_MAX) return 'at most ' + (upload ? UPLOAD_MAX : INLINE_MAX)
    + ' bytes';
  return 'at most ' + INLINE_MAX + ' bytes in a POST; up to ' + UPLOAD_MAX + ': PUT it to '
    + UPLOADS + uri;
}

// CloudFront's path pattern: `*` any characters, `?` one, case-sensitive.
function covered(path) {
  for (let i = 0; i < PATTERNS.length; i++) {
    const source = PATTERNS[i].replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')
      .replace(/\?/g, '.');
    if (new RegExp('^' + source + '$').test(path)) return true;
  }
  return false;
}

// The key a client gave (header first), null without one, false when malformed.
function idempotencyKey(request) {
  let key = header(request, 'idempotency-key');
  if (key === null && request.querystring && request.querystring.idempotency_key) {
    key = request.querystring.idempotency_key.value;
  }
  if (key === null) return null;
  return KEY.test(key) ? key : false;
}

function receiptId(path, key, requestId) {
  const seed = key === null ? 'fg-inbox-request|' + requestId : 'fg-inbox|' + path + '|' + key;
  return crypto.createHash('sha256').update(seed).digest('hex').slice(0, 32);
}

function mac(secret, text) {
  return crypto.createHmac('sha256', secret).update(text).digest('hex').slice(0, 32);
}

async function answer(event) {
  const request = event.request;
  const response = event.response;
  if (['POST', 'PUT'].indexOf(request.method) === -1 || response.statusCode !== 200) {
    return response;
  }
  const key = idempotencyKey(request);
  const secret = await readSecret();
  if (key === false || secret === null) return response;
  const id = answeredId(request.uri, key, event.context.requestId);
  const at = Math.floor(Date.now() / 1000);
  const receipt = id + '.' + at + '.' + mac(secret, 'fg-receipt|' + id + '|' + at);
  const headers = { 'cache-control': { value: 'no-store' } };
  if (navigating(request)) {
    headers.location = { value: RECEIVED_PAGE + '?receipt=' + receipt + '&lang=' + lang(request) };
    return { statusCode: 303, statusDescription: 'See Other', headers: headers };
  }
  headers.location = { value: RECEIPTS + receipt };
  headers['content-type'] = { value: 'application/json' };
  return {
    statusCode: 202,
    statusDescription: 'Accepted',
    headers: headers,
    body: { encoding: 'text', data: JSON.stringify({ receipt: receipt, status: 'received',
      received_at: at, location: RECEIPTS + receipt }) },
  };
}

// The receipt id of what was accepted: an upload's object name once the request was rewritten,
// else derived again from the path as the viewer request did.
function answeredId(uri, key, requestId) {
  if (uri.indexOf(STORED) === 0) return uri.slice(STORED.length);
  const upload = uri.indexOf(UPLOADS + '/') === 0;
  return receiptId(upload ? uri.slice(UPLOADS.length) : uri, key, requestId);
}

// A browser submitting a form (Fetch Metadata, else an Accept that asks for HTML).
function navigating(request) {
  const mode = header(request, 'sec-fetch-mode');
  if (mode !== null) return mode === 'navigate';
  return (header(request, 'accept') || '').indexOf('text/html') !== -1;
}

function lang(request) {
  return /^fr\b/i.test(header(request, 'accept-language') || '') ? 'fr' : 'en';
}

async function readSecret() {
  try {
    return await kvs.get('inbox.secret');
  } catch (e) {
    console.log(LOG + 'fail secret-unreadable');
    return null;
  }
}

function header(request, name) {
  const h = request.headers[name];
  return h && typeof h.value === 'string' ? h.value : null;
}

function refuse(status, why, extra) {
  const headers = { 'content-type': { value: 'application/json' },
    'cache-control': { value: 'no-store' } };
  if (extra) headers.allow = { value: extra.allow };
  return { statusCode: status, statusDescription: 'Refused', headers: headers,
    body: { encoding: 'text', data: JSON.stringify({ error: why, received: false }) } };
}

function unavailable(request) {
  const html = navigating(request);
  const body = html ? '<!doctype html><html lang="en"><meta charset="utf-8"><title>Not received'
    + ' / Non re\u00e7u</title><h1>Your form was not received</h1><p>Please send it again in a'
    + ' minute.</p><h1 lang="fr">Votre formulaire n\u2019a pas \u00e9t\u00e9 re\u00e7u</h1>'
    + '<p lang="fr">Veuillez l\u2019envoyer de nouveau dans une minute.</p></html>'
    : JSON.stringify({ error: 'not received: try again shortly', received: false });
  return { statusCode: 503, statusDescription: 'Service Unavailable',
    headers: { 'content-type': { value: html ? 'text/html; charset=utf-8' : 'application/json' },
      'cache-control': { value: 'no-store' }, 'retry-after': { value: '60' } },
    body: { encoding: 'text', data: body } };
}
