import assert from "node:assert/strict";
import fc from "fast-check";
import { canonicalIPv4, canonicalIPv6, formatIPv6, parseIPv6 } from "../lib/addr.ts";

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
