/**
 * EventEvidence (the events source's store of heard translated entries): watching,
 * unwatching, and the bounds that mark a key unknown.
 */
import assert from "node:assert/strict";
import { EventEvidence } from "../../lib/sources/heard_translations.ts";
import { type ClientKey, parseTuple } from "../../lib/model/tuple.ts";

const key = (i: number): ClientKey => ({
  family: "ipv4",
  src: `10.1.0.${i}`,
  dst: "10.96.0.10",
  dport: 80,
  zone: 0,
});
const keyStr = (i: number) => `ipv4 10.1.0.${i} 10.96.0.10 80 0`;

function entry(i: number, sport: number) {
  const p = parseTuple({ ...key(i), sport });
  assert.ok(p.ok);
  return { tuple: p.tuple, heardAt: 0 };
}

Deno.test("EventEvidence: a key not asked for watchReads reads is no longer watched and goes by recency again", () => {
  const ev = new EventEvidence({ keys: 2, watchReads: 2 });
  ev.lookup([key(1)]);
  ev.add(entry(1, 1));
  for (const i of [2, 3, 4]) ev.add(entry(i, 1)); // watched: kept past 2 other keys
  assert.equal(ev.lookup([key(1)]).entries.length, 1);
  ev.lookup([key(2)]);
  ev.lookup([key(2)]); // key 1 not asked for 2 reads: unwatched, now the most recent other key
  assert.equal(ev.watched, 1);
  for (const i of [5, 6]) ev.add(entry(i, 1)); // two keys more recent: key 1 goes
  assert.deepEqual(ev.lookup([key(1)]), { entries: [], unknown: [] });
});

Deno.test("EventEvidence: keys asked past watchedKeys are unknown, and a key whose entry passes watchedEntries is unknown while the others stay whole", () => {
  const ev = new EventEvidence({ watchedKeys: 2, watchedEntries: 3 });
  assert.deepEqual(ev.lookup([key(1), key(2), key(3)]).unknown, [keyStr(3)]);
  assert.equal(ev.watched, 2);
  ev.add(entry(1, 1));
  ev.add(entry(1, 2));
  ev.add(entry(2, 1));
  ev.add(entry(2, 2)); // a fourth watched entry: key 2 is incomplete, its room comes back
  ev.add(entry(1, 3));
  const r = ev.lookup([key(1), key(2)]);
  assert.deepEqual(r.unknown, [keyStr(2)]);
  assert.deepEqual(r.entries.map((e) => e.tuple.sport), [1, 2, 3]);
  ev.remove(r.entries[0]!); // gone from the table: forgotten
  assert.equal(ev.lookup([key(1)]).entries.length, 2);
});
