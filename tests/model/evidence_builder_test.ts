import assert from "node:assert/strict";
import { EvidenceBuilder } from "../../lib/model/evidence_builder.ts";

const key = (src: string) => ({
  family: "ipv4" as const,
  src,
  dst: "10.96.0.10",
  dport: 80,
  zone: 0,
});
const entry = (sport: number) => ({
  sport,
  replyZone: 0,
  translated: { addr: "10.244.0.5", port: 8080 },
});

Deno.test("EvidenceBuilder lists every key asked, ignores keys not asked, and overflows a key past a bound with nothing listed", () => {
  const b = new EvidenceBuilder([key("10.1.0.1"), key("10.1.0.2"), key("10.1.0.3")], 2, 3);
  const k1 = "ipv4 10.1.0.1 10.96.0.10 80 0", k2 = "ipv4 10.1.0.2 10.96.0.10 80 0";
  b.add("ipv4 10.1.0.9 10.96.0.10 80 0", entry(1)); // not asked
  b.add(k1, entry(1));
  b.add(k1, entry(2));
  b.add(k2, entry(3));
  b.add(k2, entry(4)); // 3 kept in all: k2 overflows, its room comes back
  b.add(k1, entry(5)); // a third for k1: past 2 per key
  const r = b.read();
  assert.deepEqual([...r.overflow].sort(), [k1, k2]);
  assert.deepEqual(r.entries.get(k1), []);
  assert.deepEqual(r.entries.get(k2), []);
  assert.deepEqual(r.entries.get("ipv4 10.1.0.3 10.96.0.10 80 0"), [], "asked, none: listed empty");
  assert.equal(r.entries.size, 3);
  assert.equal(b.wantsAddress("10.96.0.10"), true);
  assert.equal(b.wantsAddress("10.96.0.11"), false);
});
