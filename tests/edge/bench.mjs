// `make bench`: edge verifications per second on one core, and the function's size.
import { DEPLOYED, loadGate, SOURCE, V } from './harness.mjs';

Date.now = () => V.now * 1000;
const store = { room: JSON.stringify({ state: 'queue', room: V.room }), 'key.k1': V.keys.k1 };
const gate = loadGate(store);
const request = (cookie) => ({ version: '1.0', context: { eventType: 'viewer-request' },
  viewer: { ip: '198.51.100.11' }, request: { method: 'GET', uri: '/apply', querystring: {},
    headers: { accept: { value: 'text/html' } }, cookies: { fg_admit: { value: cookie } } } });

async function rate(label, cookie, n) {
  for (let i = 0; i < 2000; i++) await gate(request(cookie)); // warm up the JIT
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await gate(request(cookie));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`  ${label.padEnd(28)} ${Math.round(n / seconds).toLocaleString('en-US').padStart(10)}`
    + ` per s  (${((seconds / n) * 1e6).toFixed(2)} us each, ${n.toLocaleString('en-US')} runs)`);
}

console.log('edge gate under node (one core):');
await rate('valid token (admitted)', V.valid[0], 200000);
await rate('tampered token (redirected)', V.invalid['tampered signature'], 200000);
console.log(`  gate.js as deployed ${Buffer.byteLength(DEPLOYED)} bytes (target < 9,216; CloudFront limit 10,240; ${Buffer.byteLength(SOURCE)} with comments)`);
