// Runs inbox.js on events read from stdin (a JSON list) and prints the results as JSON: how the
// Python tests check that both sides derive, tag and sign receipts the same way.
import { readFileSync } from 'node:fs';
import { loadInbox, SECRET } from './inbox_harness.mjs';

const events = JSON.parse(readFileSync(0, 'utf8'));
const inbox = loadInbox({ 'inbox.secret': SECRET });
const out = [];
for (const event of events) out.push(await inbox(event));
process.stdout.write(JSON.stringify(out));
