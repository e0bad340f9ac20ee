/**
 * The parser and the scanner on real tables captured from the kernel by
 * `scripts/capture_fixtures.ts`, compared with the entries that script
 * inserted (`tests/fixtures/procfs_expected.json`, written from its own list,
 * not from parsing).
 */
import assert from "node:assert/strict";
import { parseLine, type TcpEntry } from "../../lib/text/parse.ts";
import { TableScanner } from "../../lib/text/scanner.ts";
import { type Tuple, tupleKey } from "../../lib/model/tuple.ts";
import type { ExpectedTcp } from "../../testbed/fixtures.ts";

/** An entry of procfs_expected.json: what the capture script inserted. */
interface ExpectedEntry {
  description: string;
  family: "ipv4" | "ipv6";
  protocol: string;
  timeout: number;
  tcp?: ExpectedTcp;
  candidate: boolean;
  conntrack: string;
}

interface Expected {
  files: Record<string, { command: string; acct: boolean; timestamp: boolean; lines: number }>;
  entries: ExpectedEntry[];
  candidates: Tuple[];
}

const DIR = new URL("../fixtures/", import.meta.url);
const expected: Expected = JSON.parse(
  await Deno.readTextFile(new URL("procfs_expected.json", DIR)),
);
const FILES = Object.keys(expected.files);
const texts = new Map<string, string>();
for (const name of FILES) texts.set(name, await Deno.readTextFile(new URL(name, DIR)));

/** The lines of a fixture (each ends with a newline in the file). */
function linesOf(name: string): string[] {
  const text = texts.get(name)!;
  assert.ok(text.endsWith("\n"), `${name} ends with a newline`);
  return text.slice(0, -1).split("\n");
}

/** The comparable part of a parsed TCP entry (timeout and use vary between captures). */
function shape(family: string, e: Omit<TcpEntry, "timeout" | "use" | "family" | "replyZone">) {
  return {
    family,
    state: e.state,
    original: e.original,
    reply: e.reply,
    zone: e.zone,
    unreplied: e.unreplied,
    flag: e.flag,
    mark: e.mark,
  };
}

const sortByJson = <T>(xs: T[]): T[] =>
  [...xs].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
const sortedKeys = (ts: Tuple[]) => ts.map(tupleKey).sort();

const expectedTcp = sortByJson(
  expected.entries.filter((e) => e.tcp !== undefined).map((e) =>
    shape(e.family, { ...e.tcp!, flag: e.tcp!.flag })
  ),
);
const expectedCandidateKeys = sortedKeys(expected.candidates);

Deno.test("procfs_expected.json lists its candidates consistently with its entries", () => {
  const fromEntries = expected.entries.filter((e) => e.candidate).map((e) => ({
    family: e.family,
    ...e.tcp!.original,
    zone: e.tcp!.zone,
  }));
  assert.deepEqual(sortedKeys(fromEntries), expectedCandidateKeys);
  assert.equal(
    expected.entries.filter((e) => e.candidate).length,
    expected.entries.filter((e) => e.tcp?.state === "SYN_SENT" && e.tcp.unreplied).length,
  );
  assert.ok(expected.candidates.length >= 10);
  assert.deepEqual(FILES.sort(), [
    "conntrack_extended.txt",
    "conntrack_extended_acct_timestamp.txt",
    "procfs_acct_timestamp.txt",
    "procfs_plain.txt",
  ]);
});

Deno.test("parseLine parses every line of every captured fixture as tcp or other, never malformed", () => {
  for (const name of FILES) {
    const lines = linesOf(name);
    assert.equal(lines.length, expected.files[name]!.lines, `${name}: line count`);
    assert.equal(lines.length, expected.entries.length, `${name}: one line per inserted entry`);
    const protocols: string[] = [];
    for (const line of lines) {
      const r = parseLine(line);
      assert.notEqual(r.kind, "malformed", `${name}: ${JSON.stringify(r)} for ${line}`);
      protocols.push(r.kind === "tcp" ? "tcp" : r.kind === "other" ? r.protocol : "?");
    }
    assert.deepEqual(protocols.sort(), expected.entries.map((e) => e.protocol).sort(), name);
  }
});

for (const name of FILES) {
  Deno.test(`parseLine yields exactly the inserted TCP entries of ${name}`, () => {
    const got = [];
    for (const line of linesOf(name)) {
      const r = parseLine(line);
      if (r.kind !== "tcp") continue;
      got.push(shape(r.entry.family, r.entry));
    }
    assert.deepEqual(sortByJson(got), expectedTcp);
  });

  Deno.test(`parseLine reads timeouts and use= of ${name} within what was inserted`, () => {
    const byKey = new Map(
      expected.entries.filter((e) => e.tcp).map((
        e,
      ) => [tupleKey({ family: e.family, ...e.tcp!.original, zone: e.tcp!.zone }), e]),
    );
    for (const line of linesOf(name)) {
      const r = parseLine(line);
      if (r.kind !== "tcp") continue;
      const e = r.entry;
      const spec = byKey.get(tupleKey({ family: e.family, ...e.original, zone: e.zone }))!;
      assert.ok(spec !== undefined, line);
      assert.ok(e.timeout !== undefined, line);
      // Captured seconds after insertion: a little less than the -t given, never more.
      assert.ok(e.timeout < spec.timeout && e.timeout >= spec.timeout - 60, line);
      assert.ok(e.use >= 1, line);
    }
  });

  Deno.test(`parseLine finds exactly the SYN_SENT/UNREPLIED candidates of ${name}`, () => {
    const got: Tuple[] = [];
    for (const line of linesOf(name)) {
      const r = parseLine(line);
      if (r.kind !== "tcp" || r.entry.state !== "SYN_SENT" || !r.entry.unreplied) continue;
      got.push({ family: r.entry.family, ...r.entry.original, zone: r.entry.zone });
    }
    assert.deepEqual(sortedKeys(got), expectedCandidateKeys);
  });
}

Deno.test("parseLine reads zone=5, zone=65535 and zone-orig=7 of captured lines, and zone 0 for zone-reply=8 only; reply zones likewise", () => {
  for (const name of FILES) {
    const zones = new Map<string, number>();
    for (const line of linesOf(name)) {
      const r = parseLine(line);
      if (r.kind !== "tcp") continue;
      const e = r.entry;
      zones.set(`${e.family} ${e.original.src} ${e.original.sport} ${e.zone}`, e.zone);
      if (line.includes(" zone=5 ")) assert.equal(e.zone, 5, line);
      if (line.includes(" zone=65535 ")) assert.equal(e.zone, 65535, line);
      if (line.includes(" zone-orig=7 ")) assert.equal(e.zone, 7, line);
      if (line.includes(" zone-reply=8 ")) assert.equal(e.zone, 0, line);
      // The reply direction's zone: zone= holds both ways, zone-orig= only the original.
      if (line.includes(" zone=5 ")) assert.equal(e.replyZone, 5, line);
      if (line.includes(" zone-orig=7 ")) assert.equal(e.replyZone, 0, line);
      if (line.includes(" zone-reply=8 ")) assert.equal(e.replyZone, 8, line);
      if (!/ zone(-orig)?=/.test(line)) assert.equal(e.zone, 0, line);
    }
    // The same tuple in zone 0 and zone 5 is two entries, in both families.
    for (const k of ["ipv4 10.0.0.1 40000", "ipv6 2001:db8::1 40000"]) {
      assert.ok(zones.has(`${k} 0`) && zones.has(`${k} 5`), `${name}: ${k} in zones 0 and 5`);
    }
    assert.ok(zones.has("ipv4 10.0.0.1 40003 7"), name);
    assert.ok(zones.has("ipv4 10.0.0.1 40004 0"), name);
  }
  // procfs prints zone=0; conntrack -L leaves it out.
  assert.ok(linesOf("procfs_plain.txt").every((l) => / zone(-orig|-reply)?=\d+ /.test(l)));
  assert.ok(linesOf("conntrack_extended.txt").every((l) => !l.includes(" zone=0 ")));
});

Deno.test("parseLine ignores packets=/bytes= and delta-time= of a captured acct+timestamp table", () => {
  for (const name of FILES.filter((f) => expected.files[f]!.acct)) {
    const lines = linesOf(name);
    assert.ok(lines.every((l) => /( packets=\d+ bytes=\d+ .*){2}/.test(l)), `${name}: counters`);
    assert.ok(lines.every((l) => / delta-time=\d+ use=\d+$/.test(l)), `${name}: delta-time=`);
    for (const line of lines) {
      const r = parseLine(line);
      assert.notEqual(r.kind, "malformed", line);
      const stripped = line.replace(/ packets=\d+ bytes=\d+/g, "").replace(/ delta-time=\d+/, "");
      assert.notEqual(stripped, line);
      assert.deepEqual(parseLine(stripped), r, `the same without counters: ${line}`);
    }
  }
});

Deno.test("parseLine reads the full-length IPv6 addresses of procfs in RFC 5952 form", () => {
  const addresses = new Set<string>();
  for (const line of linesOf("procfs_plain.txt")) {
    const r = parseLine(line);
    if (r.kind !== "tcp" || r.entry.family !== "ipv6") continue;
    assert.match(line, /src=[0-9a-f]{4}(:[0-9a-f]{4}){7} /);
    addresses.add(r.entry.original.src).add(r.entry.original.dst);
  }
  for (
    const a of [
      "2001:db8::1",
      "2001:db8::1:0:0:1",
      "fd00:0:0:1::5",
      "::",
      "::1",
      "2001:db8:0:1:1:1:1:1",
      "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff",
      "fe80::1ff:fe23:4567:890a",
      "2001:db8:1::",
    ]
  ) assert.ok(addresses.has(a), `${a} in ${[...addresses].join(", ")}`);
});

/** A deterministic PRNG (mulberry32) for random chunk boundaries. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Feeds `bytes` to a new scanner in chunks of the sizes `next()` returns,
 * through one reused buffer that is scribbled over after each push (so a
 * scanner keeping views into a chunk would be caught). Chunk k is pushed
 * with seenFrom = 2k, seenTo = 2k + 1. Returns the scanner and where each
 * chunk started.
 */
function scan(bytes: Uint8Array, next: () => number): { s: TableScanner; starts: number[] } {
  const s = new TableScanner();
  const buf = new Uint8Array(bytes.length + 1);
  const starts: number[] = [];
  for (let off = 0, k = 0; off < bytes.length; k++) {
    const n = Math.min(Math.max(1, next()), bytes.length - off);
    starts.push(off);
    buf.set(bytes.subarray(off, off + n));
    s.push(buf.subarray(0, n), 2 * k, 2 * k + 1);
    buf.fill(0x41, 0, n);
    off += n;
  }
  s.end();
  return { s, starts };
}

/** Index of the chunk holding byte `at`. */
function chunkOf(starts: number[], at: number): number {
  let lo = 0, hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= at) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

const FIXED_SIZES = [
  1,
  2,
  3,
  4,
  5,
  7,
  8,
  11,
  13,
  16,
  31,
  64,
  100,
  127,
  128,
  199,
  200,
  255,
  256,
  257,
  511,
  1000,
  1024,
  4095,
  4096,
  65536,
  1 << 20,
];

for (const name of FILES) {
  const what = expected.files[name]!.acct ? "acct+timestamp" : "plain";
  const source = name.startsWith("procfs") ? "procfs" : "conntrack -L -o extended";
  Deno.test(`TableScanner finds exactly the SYN_SENT/UNREPLIED entries of a captured ${what} ${source} table (${name}), whatever the chunk sizes`, () => {
    const text = texts.get(name)!;
    const bytes = new TextEncoder().encode(text);
    const lines = linesOf(name);
    // Where each line starts and ends (its newline), to check the seen windows.
    const lineStart = new Map<string, [number, number]>();
    let off = 0;
    for (const line of lines) {
      const r = parseLine(line);
      const len = new TextEncoder().encode(line).length;
      if (r.kind === "tcp") {
        const e = r.entry;
        lineStart.set(tupleKey({ family: e.family, ...e.original, zone: e.zone }), [
          off,
          off + len,
        ]);
      }
      off += len + 1;
    }
    const reference = new Map<string, number>();
    for (const line of lines) {
      const r = parseLine(line);
      if (r.kind === "tcp" && r.entry.state === "SYN_SENT" && r.entry.unreplied) {
        reference.set(
          tupleKey({ family: r.entry.family, ...r.entry.original, zone: r.entry.zone }),
          r.entry.timeout!,
        );
      }
    }
    const plans: [string, () => number][] = FIXED_SIZES.map((n) => [`chunks of ${n}`, () => n]);
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const max = [2, 10, 90, 400, 5000][seed % 5];
      plans.push([`random chunks up to ${max} (seed ${seed})`, () => 1 + Math.floor(r() * max!)]);
    }
    for (const [plan, next] of plans) {
      const { s, starts } = scan(bytes, next);
      assert.equal(s.scanned, lines.length, `${plan}: scanned`);
      assert.equal(s.malformed, 0, `${plan}: ${JSON.stringify(s.firstMalformed)}`);
      assert.deepEqual(sortedKeys(s.candidates), expectedCandidateKeys, plan);
      for (const c of s.candidates) {
        const key = tupleKey(c);
        assert.equal(c.timeout, reference.get(key), `${plan}: timeout of ${key}`);
        const [start, nl] = lineStart.get(key)!;
        assert.equal(c.seenFrom, 2 * chunkOf(starts, start), `${plan}: seenFrom of ${key}`);
        assert.equal(c.seenTo, 2 * chunkOf(starts, nl) + 1, `${plan}: seenTo of ${key}`);
        assert.equal(c.id, undefined);
      }
    }
  });

  Deno.test(`TableScanner counts a truncated last line of ${name} as malformed and never as a candidate`, () => {
    const lines = linesOf(name);
    const enc = new TextEncoder();
    let tried = 0;
    for (let i = 0; i < lines.length; i++) {
      const r = parseLine(lines[i]!);
      if (r.kind !== "tcp" || r.entry.state !== "SYN_SENT" || !r.entry.unreplied) continue;
      const lost = tupleKey({ family: r.entry.family, ...r.entry.original, zone: r.entry.zone });
      const others = lines.filter((_, j) => j !== i).map((l) => l + "\n").join("");
      // The candidate line last, without its newline and without 0, 1, 3 or 12 more bytes.
      for (const cut of [0, 1, 3, 12]) {
        const truncated = lines[i]!.slice(0, lines[i]!.length - cut);
        const bytes = enc.encode(others + truncated);
        for (const size of [1, 7, 64, 4096, bytes.length]) {
          const { s } = scan(bytes, () => size);
          const plan = `line ${i} cut ${cut}, chunks of ${size}`;
          assert.equal(s.scanned, lines.length, plan);
          assert.equal(s.malformed, 1, plan);
          assert.match(s.firstMalformed?.reason ?? "", /truncated/, plan);
          assert.equal(s.firstMalformed?.line, truncated.slice(0, 200), plan);
          const keys = sortedKeys(s.candidates);
          assert.ok(!keys.includes(lost), `${plan}: the truncated line became a candidate`);
          assert.deepEqual(keys, expectedCandidateKeys.filter((k) => k !== lost), plan);
        }
        tried++;
      }
    }
    assert.equal(tried, expected.candidates.length * 4);
  });
}

Deno.test("parseLine rejects the captured candidate lines cut short before use=", () => {
  for (const name of FILES) {
    for (const line of linesOf(name)) {
      const r = parseLine(line);
      if (r.kind !== "tcp") continue;
      // Losing the value or the whole use= field leaves a line that must not parse.
      for (const cut of [1, 2, 3, line.length - line.lastIndexOf(" "), 12, 40]) {
        const short = line.slice(0, line.length - cut);
        assert.equal(parseLine(short).kind, "malformed", `${name}: ${short}`);
      }
    }
  }
});
