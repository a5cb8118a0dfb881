// The inbox's edge function under node with CloudFront Function event shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accepted, loadInbox, post } from './inbox_harness.mjs';

const receiptOf = (result) => result.headers['x-floodgate-receipt'].value;

test('a post gets a receipt the edge tags', async () => {
  const request = await loadInbox()(post({ key: 'key-0001-abcd' }));
  assert.match(receiptOf(request), /^[0-9a-f]{32}\.[0-9a-f]{32}$/);
});

test('the same key on the same path is the same receipt, whatever the request', async () => {
  const inbox = loadInbox();
  const one = receiptOf(await inbox(post({ key: 'key-0001-abcd', requestId: 'a' })));
  const two = receiptOf(await inbox(post({ key: 'key-0001-abcd', requestId: 'b' })));
  const other = receiptOf(await inbox(post({ key: 'key-0001-abcd', uri: '/submit/renew' })));
  assert.equal(one, two);
  assert.notEqual(one, other);
});

test('a form gives its key in the action URL', async () => {
  const inbox = loadInbox();
  const byHeader = receiptOf(await inbox(post({ key: 'key-0001-abcd' })));
  const byQuery = receiptOf(await inbox(post({ qs: { idempotency_key: { value: 'key-0001-abcd' } },
    type: 'application/x-www-form-urlencoded' })));
  assert.equal(byHeader, byQuery);
});

test('without a key each request is its own receipt', async () => {
  const inbox = loadInbox();
  const a = receiptOf(await inbox(post({ requestId: 'a' })));
  const b = receiptOf(await inbox(post({ requestId: 'b' })));
  assert.notEqual(a, b);
});

test('a viewer cannot bring its own receipt header', async () => {
  const request = await loadInbox()(post({ headers: { 'x-floodgate-receipt': 'f'.repeat(65) } }));
  assert.notEqual(receiptOf(request), 'f'.repeat(65));
});

for (const [why, options, status] of [
  ['not a POST', { method: 'GET' }, 405],
  ['no Content-Length', { length: null }, 411],
  ['a body over the inline limit', { length: '262145' }, 413],
  ['a multipart upload', { type: 'multipart/form-data; boundary=x' }, 415],
  ['no content type', { type: null }, 415],
  ['a short key', { key: 'short' }, 400],
  ['a key with a slash', { key: 'key/0001/abcd' }, 400],
]) {
  test(`${why} is refused at the edge with ${status}, never queued`, async () => {
    const result = await loadInbox()(post(options));
    assert.equal(result.statusCode, status);
    assert.equal(JSON.parse(result.body.data).received, false);
  });
}

test('the inline limit is the deployed setting', async () => {
  const inbox = loadInbox(undefined, { inlineMax: 1024 });
  assert.equal((await inbox(post({ length: '1025' }))).statusCode, 413);
  assert.equal((await inbox(post({ length: '1024' }))).method, 'POST');
});

test('an unreadable secret says not received, in both languages for a browser', async () => {
  const logs = [];
  const inbox = loadInbox({}, { logs });
  const api = await inbox(post());
  assert.equal(api.statusCode, 503);
  assert.equal(api.headers['retry-after'].value, '60');
  const page = await inbox(post({ headers: { 'sec-fetch-mode': 'navigate' } }));
  assert.match(page.body.data, /was not received/);
  assert.match(page.body.data, /n\u2019a pas \u00e9t\u00e9 re\u00e7u/);
  assert.deepEqual(logs, ['floodgate-inbox fail secret-unreadable',
    'floodgate-inbox fail secret-unreadable']);
});

test('once SQS took it, an API client gets 202 JSON and where to poll', async () => {
  const result = await loadInbox()(accepted({ key: 'key-0001-abcd' }));
  assert.equal(result.statusCode, 202);
  const body = JSON.parse(result.body.data);
  assert.equal(body.status, 'received');
  assert.equal(result.headers.location.value, `/inbox/receipts/${body.receipt}`);
  assert.match(body.receipt, /^[0-9a-f]{32}\.\d{10}\.[0-9a-f]{32}$/);
});

test('a browser form post is sent to the confirmation page in its language', async () => {
  const result = await loadInbox()(accepted({ headers: { 'sec-fetch-mode': 'navigate',
    'accept-language': 'fr-CA,fr;q=0.9' } }));
  assert.equal(result.statusCode, 303);
  assert.match(result.headers.location.value,
    /^\/inbox\/received\.html\?receipt=[0-9a-f]{32}\.\d{10}\.[0-9a-f]{32}&lang=fr$/);
});

test('an answer that is not the integration\u2019s 200 goes through untouched', async () => {
  const response = await loadInbox()(accepted({}, 204));
  assert.equal(response.statusCode, 204);
});

// Bodies above the inline limit: a PUT to /inbox/uploads<path>, written to the uploads bucket.
const upload = (options = {}) => post({ method: 'PUT', uri: '/inbox/uploads/submit/apply',
  type: 'application/pdf', length: '5000000', ...options });

test('an upload goes to the bucket as its receipt, with what the consumer needs', async () => {
  const result = await loadInbox()(upload({ key: 'key-0001-abcd' }));
  const tagged = result.headers['x-amz-meta-floodgate-receipt'].value;
  const [id] = tagged.split('.');
  assert.equal(result.uri, `/uploads/${id}`);
  assert.equal(result.headers['x-amz-meta-floodgate-path'].value, '/submit/apply');
  assert.equal(result.headers['x-amz-meta-floodgate-key'].value, 'key-0001-abcd');
  assert.equal(result.headers['content-type'].value, 'application/pdf');
  assert.equal(result.headers['x-floodgate-receipt'], undefined);
});

test('an upload is the same receipt as a post of the same key to the same path', async () => {
  const inbox = loadInbox();
  const put = await inbox(upload({ key: 'key-0001-abcd' }));
  const posted = await inbox(post({ key: 'key-0001-abcd' }));
  assert.equal(put.headers['x-amz-meta-floodgate-receipt'].value, receiptOf(posted));
});

test('a viewer cannot bring its own key or receipt metadata to an upload', async () => {
  const result = await loadInbox()(upload({ headers: {
    'x-amz-meta-floodgate-key': 'forged-key-1', 'x-amz-meta-floodgate-receipt': 'f'.repeat(65) } }));
  assert.equal(result.headers['x-amz-meta-floodgate-key'], undefined);
  assert.notEqual(result.headers['x-amz-meta-floodgate-receipt'].value, 'f'.repeat(65));
});

for (const [why, options, status] of [
  ['an upload that is a POST', { method: 'POST' }, 405],
  ['an upload over body_max_bytes', { length: '10485761' }, 413],
  ['an upload without a content type', { type: null }, 415],
  ['an upload for a path the inbox does not cover', { uri: '/inbox/uploads/account/delete' }, 404],
  ['an upload whose path only starts like a covered one', { uri: '/inbox/uploads/renew/x' }, 404],
  ['an upload of a path the pattern holds as text, not a wildcard', {
    uri: '/inbox/uploads/submitX/a' }, 404],
]) {
  test(`${why} is refused at the edge with ${status}`, async () => {
    const result = await loadInbox()(upload(options));
    assert.equal(result.statusCode, status);
    assert.equal(JSON.parse(result.body.data).received, false);
  });
}

test('a post over the inline limit is told where the upload goes', async () => {
  const result = await loadInbox()(post({ length: '262145' }));
  assert.equal(result.statusCode, 413);
  assert.match(JSON.parse(result.body.data).error, /PUT it to \/inbox\/uploads\/submit\/apply$/);
  const inline = await loadInbox(undefined, { uploadMax: 262144 })(post({ length: '262145' }));
  assert.equal(JSON.parse(inline.body.data).error, 'at most 262144 bytes');
});

test('once S3 stored it, the upload is answered 202 with the same receipt', async () => {
  const inbox = loadInbox();
  const request = await inbox(upload({ key: 'key-0001-abcd' }));
  const [id] = request.headers['x-amz-meta-floodgate-receipt'].value.split('.');
  for (const uri of ['/inbox/uploads/submit/apply', request.uri]) {
    const response = await inbox({ ...accepted({ method: 'PUT', uri, key: 'key-0001-abcd' }) });
    assert.equal(response.statusCode, 202);
    assert.equal(JSON.parse(response.body.data).receipt.split('.')[0], id);
  }
});
