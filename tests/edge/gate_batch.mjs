// Runs the gate over a batch of requests for a Python test: node gate_batch.mjs batch.json
// batch.json: { "store": {KVS key: value}, "now": epoch s, "requests": [{cookie, accept, uri}] }
// Prints one JSON array: for each request, { pass } or { status, location }.
import { readFileSync } from 'node:fs';
import { event, loadGate } from './harness.mjs';

const batch = JSON.parse(readFileSync(process.argv[2], 'utf8'));
Date.now = () => batch.now * 1000;
const gate = loadGate(batch.store);
const results = [];
for (const request of batch.requests) {
  const result = await gate(event(request));
  results.push(result.statusCode === undefined
    ? { pass: true }
    : { pass: false, status: result.statusCode, location: result.headers?.location?.value });
}
process.stdout.write(JSON.stringify(results));
