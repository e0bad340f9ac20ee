import assert from "node:assert/strict";
import { destinationKey, parseTuple, type Tuple, tupleKey } from "../../lib/model/tuple.ts";

const OK: Tuple = {
  family: "ipv4",
  src: "1.2.3.4",
  dst: "5.6.7.8",
  sport: 1,
  dport: 65535,
  zone: 0,
};

Deno.test("parseTuple accepts a valid tuple and returns only its tuple fields", () => {
  const r = parseTuple({ ...OK, timeout: 3 } as Tuple);
  assert.ok(r.ok);
  assert.deepEqual({ ...r.tuple }, OK);
});

Deno.test("parseTuple spells IPv6 addresses canonically (RFC 5952), whatever the input spelling", () => {
  const r = parseTuple({
    ...OK,
    family: "ipv6",
    src: "2001:0DB8:0000:0000:0000:0000:0000:0001",
    dst: "::ffff:10.0.0.1",
  });
  assert.ok(r.ok);
  assert.equal(r.tuple.src, "2001:db8::1");
  assert.equal(r.tuple.dst, "::ffff:a00:1");
});

Deno.test("parseTuple rejects bad families, addresses, ports and zones, saying which field", () => {
  const cases: [Partial<Record<keyof Tuple, unknown>>, RegExp][] = [
    [{ sport: 65536 }, /^bad sport 65536/],
    [{ zone: -1 }, /^bad zone -1/],
    [{ zone: 65536 }, /^bad zone 65536/],
    [{ dport: 1.5 }, /^bad dport 1\.5/],
    [{ dport: "80" }, /^bad dport "80"/],
    [{ dst: "1.2.3" }, /^bad ipv4 dst "1\.2\.3"/],
    [{ src: "010.0.0.1" }, /^bad ipv4 src/],
    [{ src: "::1" }, /^bad ipv4 src/],
    [{ src: "-F" }, /^bad ipv4 src/],
    [{ family: "ipv6", src: "10.0.0.1", dst: "::1" }, /^bad ipv6 src/],
    [{ family: "inet" }, /^bad family "inet"/],
  ];
  for (const [change, why] of cases) {
    const r = parseTuple({ ...OK, ...change });
    assert.equal(r.ok, false, JSON.stringify(change));
    if (!r.ok) assert.match(r.problem, why);
  }
  for (const zone of [0, 65535]) assert.ok(parseTuple({ ...OK, zone }).ok);
});

Deno.test("tupleKey and destinationKey name every field that identifies them", () => {
  assert.equal(tupleKey(OK), "ipv4 1.2.3.4 5.6.7.8 1 65535 0");
  assert.equal(
    destinationKey({ family: "ipv4", dst: "10.96.0.10", dport: 53, zone: 7 }),
    "ipv4 10.96.0.10 53 7",
  );
});
