import assert from "node:assert/strict";
import fc from "fast-check";
import { canonicalIPv4, canonicalIPv6, formatIPv6, parseIPv6 } from "../../lib/model/addr.ts";
import { rfc5952 } from "../support/gen_line.ts";

Deno.test("canonicalIPv4 accepts dotted quads as the kernel prints them", () => {
  for (const a of ["0.0.0.0", "10.0.0.1", "255.255.255.255", "192.168.100.7"]) {
    assert.equal(canonicalIPv4(a), a);
  }
});

Deno.test("canonicalIPv4 rejects leading zeros, out-of-range octets and anything else", () => {
  for (
    const a of [
      "010.0.0.1",
      "256.0.0.1",
      "1.2.3",
      "1.2.3.4.5",
      "1.2.3.-4",
      "-F",
      "1.2.3.4 ",
      " 1.2.3.4",
      "a.b.c.d",
      "",
      "1..2.3",
    ]
  ) {
    assert.equal(canonicalIPv4(a), undefined, a);
  }
});

Deno.test("canonicalIPv6 turns the kernel's uncompressed form into RFC 5952", () => {
  const cases: [string, string][] = [
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["0000:0000:0000:0000:0000:0000:0000:0000", "::"],
    ["0000:0000:0000:0000:0000:0000:0000:0001", "::1"],
    ["2001:0db8:0000:0001:0000:0000:0000:0001", "2001:db8:0:1::1"],
    ["2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"],
    ["2001:0db8:0001:0001:0001:0001:0001:0001", "2001:db8:1:1:1:1:1:1"],
    ["fe80:0000:0000:0000:0000:0000:0000:0000", "fe80::"],
    ["2001:DB8::A", "2001:db8::a"],
    ["::ffff:10.0.0.1", "::ffff:a00:1"],
  ];
  for (const [input, want] of cases) assert.equal(canonicalIPv6(input), want, input);
});

Deno.test("canonicalIPv6 rejects malformed addresses and option-like strings", () => {
  for (
    const a of [
      "",
      ":",
      ":::",
      "1::2::3",
      "12345::",
      "g::1",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "-F",
      "--flush",
      "::1 -F",
      "::1\n",
      "1:2:3:4:5:6:7::8",
    ]
  ) {
    assert.equal(canonicalIPv6(a), undefined, JSON.stringify(a));
  }
});

Deno.test("parseIPv6 and formatIPv6 round-trip any eight groups", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }),
      (g) => {
        const full = g.map((x) => x.toString(16).padStart(4, "0")).join(":");
        assert.deepEqual(parseIPv6(full), g);
        const short = formatIPv6(g);
        assert.deepEqual(parseIPv6(short), g);
        assert.equal(canonicalIPv6(short), short);
      },
    ),
  );
});

/** Hand-written RFC 5952 spellings (section 4), with the eight groups they stand for. */
const RFC5952: [number[], string][] = [
  [[0, 0, 0, 0, 0, 0, 0, 0], "::"],
  [[0, 0, 0, 0, 0, 0, 0, 1], "::1"],
  [[1, 0, 0, 0, 0, 0, 0, 0], "1::"],
  [[0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], "2001:db8::1"],
  [[0x2001, 0xdb8, 0, 0, 0, 0, 2, 1], "2001:db8::2:1"], // 4.2.1: shorten as much as possible
  [[0x2001, 0xdb8, 0, 1, 1, 1, 1, 1], "2001:db8:0:1:1:1:1:1"], // 4.2.2: not one 16-bit 0 field
  [[0x2001, 0, 0, 1, 0, 0, 0, 1], "2001:0:0:1::1"], // 4.2.3: the longest run
  [[0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], "2001:db8::1:0:0:1"], // 4.2.3: the first of equal runs
  [
    [0x2001, 0xdb8, 0xaaaa, 0xbbbb, 0xcccc, 0xdddd, 0xeeee, 0xaaaa],
    "2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa",
  ], // 4.3 lower case
  [[0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], "2001:db8::"],
  [[0xfe80, 0, 0, 0, 0x1ff, 0xfe23, 0x4567, 0x890a], "fe80::1ff:fe23:4567:890a"], // 4.1: no leading zeros
  [[0, 0, 0, 0, 0, 0xffff, 0x0a00, 0x0001], "::ffff:a00:1"], // IPv4-mapped: kept in hex here
  [[0, 1, 0, 1, 0, 1, 0, 1], "0:1:0:1:0:1:0:1"],
  [
    [0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff],
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
  ],
];

Deno.test("formatIPv6 and canonicalIPv6 give the hand-written RFC 5952 spellings", () => {
  for (const [groups, want] of RFC5952) {
    assert.equal(formatIPv6(groups), want, want);
    const full = groups.map((x) => x.toString(16).padStart(4, "0")).join(":");
    assert.equal(canonicalIPv6(full), want, full);
  }
});

Deno.test("the test generator's own rfc5952 gives the hand-written spellings, and agrees with formatIPv6 on any groups", () => {
  for (const [groups, want] of RFC5952) assert.equal(rfc5952(groups), want, want);
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
        minLength: 8,
        maxLength: 8,
      }),
      (g) => assert.equal(formatIPv6(g), rfc5952(g)),
    ),
    { numRuns: 2000 },
  );
});
