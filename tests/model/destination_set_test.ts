import assert from "node:assert/strict";
import fc from "fast-check";
import { formatIPv6 } from "../../lib/model/addr.ts";
import { DestinationSet, parseDestinations } from "../../lib/model/destination_set.ts";

function set(s: string): DestinationSet {
  const r = parseDestinations(s);
  if (typeof r === "string") throw new Error(r);
  return r;
}

Deno.test("parseDestinations reads CIDR, CIDR:PORT and CIDR:LOW-HIGH, IPv6 in brackets with a port", () => {
  const cases: [string, string][] = [
    ["10.96.0.0/12", "10.96.0.0/12"],
    ["10.0.0.1", "10.0.0.1/32"],
    ["10.0.0.1:80", "10.0.0.1/32:80"],
    ["192.0.2.0/24:30000-32767", "192.0.2.0/24:30000-32767"],
    ["0.0.0.0/0:443", "0.0.0.0/0:443"],
    ["2001:db8::/64", "2001:db8::/64"],
    ["2001:DB8:0::10", "2001:db8::10/128"],
    ["[2001:db8::/64]:443", "[2001:db8::/64]:443"],
    ["[2001:db8:cafe::10/128]:80", "[2001:db8:cafe::10/128]:80"],
    ["[2001:db8::1]", "2001:db8::1/128"],
    ["[::/0]:1-65535", "[::/0]:1-65535"],
    [" 10.0.0.1 , 10.0.0.2:8080-8080 ", "10.0.0.1/32,10.0.0.2/32:8080"],
  ];
  for (const [input, canonical] of cases) assert.equal(set(input).toString(), canonical, input);
});

Deno.test("parseDestinations names the bad item and what is wrong with it", () => {
  const cases: [string, RegExp][] = [
    ["", /empty item/],
    ["10.0.0.1,", /empty item/],
    ["10.0.0.1,,10.0.0.2", /empty item/],
    ["10.0.0.1/8", /item "10.0.0.1\/8": host bits set \(did you mean 10.0.0.0\/8\?\)/],
    ["2001:db8::1/64", /host bits set \(did you mean 2001:db8::\/64\?\)/],
    ["10.0.0.0/33", /bad prefix length "33": expected 0 to 32/],
    ["2001:db8::/129", /bad prefix length "129"/],
    ["10.0.0.0/08", /bad prefix length "08"/],
    ["2001:db8::/64:443", /IPv6 CIDR with a port goes in brackets/],
    ["[10.0.0.1]:80", /brackets are for IPv6 only/],
    ["[2001:db8::1:80", /expected \[IPV6-CIDR\]/],
    ["2001:db8::1]:80", /unbalanced brackets/],
    ["10.0.0.256", /bad IPv4 address "10.0.0.256"/],
    ["10.0.0.1:65536", /ports go from 1 to 65535/],
    ["10.0.0.0/8:0", /^item "10\.0\.0\.0\/8:0": port 0 is no destination port/],
    ["10.0.0.0/8:443, 10.0.0.0/8:0-80", /^item "10\.0\.0\.0\/8:0-80": port 0 is no/],
    ["[2001:db8::/64]:0", /^item "\[2001:db8::\/64\]:0": port 0 is no destination port/],
    ["10.0.0.1:90-80", /port range 90-80 runs backwards/],
    ["10.0.0.1:http", /bad port "http"/],
    ["10.0.0.1:", /bad port ""/],
    ["10.0.0.1:1-", /bad port "1-"/],
    ["example.com", /bad IPv4 address "example.com"/],
    ["10.0.0.1;10.0.0.2", /bad IPv4 address/],
  ];
  for (const [input, want] of cases) {
    const r = parseDestinations(input);
    assert.equal(typeof r, "string", `${JSON.stringify(input)} must be refused`);
    assert.match(r as string, want, input);
  }
});

Deno.test("DestinationSet.match holds exactly the prefix and the port range, per family", () => {
  const s = set("10.96.0.0/12,192.0.2.10:443,[2001:db8::/64]:8000-8080");
  assert.equal(s.match("ipv4", "10.96.0.0", 1)?.text, "10.96.0.0/12");
  assert.equal(s.match("ipv4", "10.111.255.255", 65535)?.text, "10.96.0.0/12");
  assert.equal(s.match("ipv4", "10.95.255.255", 1), undefined);
  assert.equal(s.match("ipv4", "10.112.0.0", 1), undefined);
  assert.equal(s.match("ipv4", "192.0.2.10", 443)?.text, "192.0.2.10/32:443");
  assert.equal(s.match("ipv4", "192.0.2.10", 444), undefined);
  assert.equal(s.match("ipv4", "192.0.2.11", 443), undefined);
  assert.equal(s.match("ipv6", "2001:db8::ffff", 8000)?.text, "[2001:db8::/64]:8000-8080");
  assert.equal(s.match("ipv6", "2001:db8::ffff", 8080)?.text, "[2001:db8::/64]:8000-8080");
  assert.equal(s.match("ipv6", "2001:db8::ffff", 7999), undefined);
  assert.equal(s.match("ipv6", "2001:db8::ffff", 8081), undefined);
  assert.equal(s.match("ipv6", "2001:db8:0:1::", 8000), undefined);
  // An IPv4-mapped IPv6 address is IPv6: an IPv4 item never holds it.
  assert.equal(s.match("ipv6", "::ffff:10.96.0.1", 80), undefined);
  assert.equal(set("0.0.0.0/0").match("ipv6", "::1", 80), undefined);
  assert.equal(set("::/0").match("ipv4", "10.0.0.1", 80), undefined);
  assert.equal(set("::/0").match("ipv6", "::1", 0)?.text, "::/0");
  // One network with several port items: each item's range ends where it says.
  const two = set("10.0.0.0/8:80,10.0.0.0/8:443-444");
  assert.equal(two.match("ipv4", "10.1.2.3", 80)?.text, "10.0.0.0/8:80");
  assert.equal(two.match("ipv4", "10.1.2.3", 81), undefined);
  assert.equal(two.match("ipv4", "10.1.2.3", 442), undefined);
  assert.equal(two.match("ipv4", "10.1.2.3", 443)?.text, "10.0.0.0/8:443-444");
  assert.equal(two.match("ipv4", "10.1.2.3", 444)?.text, "10.0.0.0/8:443-444");
  assert.equal(two.match("ipv4", "10.1.2.3", 445), undefined);
});

Deno.test("DestinationSet refuses to be empty", () => {
  assert.throws(() => new DestinationSet([]), RangeError);
});

/** The reference: every item in order, bit by bit. */
function linearMatch(set: DestinationSet, family: "ipv4" | "ipv6", groups: number[], port: number) {
  return set.items.find((item) => {
    if (item.family !== family || port < item.portLow || port > item.portHigh) return false;
    for (let b = 0; b < item.prefix; b++) {
      const bit = (g: readonly number[]) => (g[b >> 4]! >> (15 - (b & 15))) & 1;
      if (bit(groups) !== bit(item.groups)) return false;
    }
    return true;
  });
}

const hex = (g: number[]) => g.map((x) => x.toString(16)).join(":");
const dotted = (g: number[]) => [g[0]! >> 8, g[0]! & 255, g[1]! >> 8, g[1]! & 255].join(".");

Deno.test("DestinationSet.match (indexed) answers as the first matching item in list order would", () => {
  // Few distinct values, so that items overlap, nest and share networks.
  const group = fc.constantFrom(0, 1, 0x8000, 0xff00, 0xffff, 0x0db8);
  const addr = fc.oneof(
    fc.tuple(fc.constant("ipv4" as const), fc.array(group, { minLength: 2, maxLength: 2 })),
    fc.tuple(fc.constant("ipv6" as const), fc.array(group, { minLength: 8, maxLength: 8 })),
  );
  // Items name ports from 1 (port 0 is refused); queries ask port 0 too.
  const itemPort = fc.constantFrom(1, 80, 443, 444, 65535);
  const port = fc.constantFrom(0, 1, 80, 443, 444, 65535);
  const item = fc.tuple(addr, fc.nat({ max: 128 }), fc.option(fc.tuple(itemPort, itemPort)));
  fc.assert(
    fc.property(
      fc.array(item, { minLength: 1, maxLength: 30 }),
      fc.array(fc.tuple(addr, port), { minLength: 1, maxLength: 20 }),
      (items, queries) => {
        const text = items.map(([[family, g], p, ports]) => {
          const prefix = Math.min(p, family === "ipv4" ? 32 : 128);
          const net = g.map((x, i) => {
            const bits = Math.min(16, Math.max(0, prefix - i * 16));
            return bits === 0 ? 0 : x & ((0xffff << (16 - bits)) & 0xffff);
          });
          const cidr = `${family === "ipv4" ? dotted(net) : hex(net)}/${prefix}`;
          if (ports === null) return cidr;
          const [lo, hi] = ports[0] <= ports[1] ? ports : [ports[1], ports[0]];
          return `${family === "ipv6" ? `[${cidr}]` : cidr}:${lo}-${hi}`;
        });
        const set = parseDestinations(text.join(","));
        if (typeof set === "string") throw new Error(set);
        for (const [[family, g], p] of queries) {
          const a = family === "ipv4" ? dotted(g) : formatIPv6(g);
          assert.equal(set.match(family, a, p), linearMatch(set, family, g, p), `${a} ${p}`);
        }
      },
    ),
    { numRuns: 300 },
  );
});
