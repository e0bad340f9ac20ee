import assert from "node:assert/strict";
import fc from "fast-check";
import { tupleKey } from "../../lib/model/tuple.ts";
import { parseLine } from "../../lib/text/parse.ts";
import { MAX_LINE_BYTES, TableScanner } from "../../lib/text/scanner.ts";

const syn = (sport: number, zone = 0) =>
  `ipv4     2 tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=${sport} dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=${sport} mark=0 zone=${zone} use=2`;
const LINES = [
  syn(40000),
  syn(40001, 5),
  "ipv6     10 tcp      6 100 SYN_SENT src=2001:0db8:0000:0000:0000:0000:0000:0001 dst=2001:0db8:0000:0000:0000:0000:0000:0002 sport=1 dport=443 [UNREPLIED] src=2001:0db8:0000:0000:0000:0000:0000:0002 dst=2001:0db8:0000:0000:0000:0000:0000:0001 sport=443 dport=1 mark=0 zone=0 use=2",
  "ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40002 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40002 [ASSURED] mark=0 zone=0 use=2",
  "ipv4     2 tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40003 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40003 mark=0 zone=0 use=2",
  "ipv4     2 tcp      6 117 SYN_SENT2 src=10.0.0.1 dst=10.0.0.2 sport=40004 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40004 mark=0 zone=0 use=2",
  "ipv4     2 udp      17 29 src=10.0.0.3 dst=10.0.0.4 sport=53 dport=53 [UNREPLIED] src=10.0.0.4 dst=10.0.0.3 sport=53 dport=53 mark=0 zone=0 use=2",
  "ipv4     2 tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=99999 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=1 mark=0 zone=0 use=2",
  "garbage line",
];

/** What a line-by-line parse says the candidates are. */
function expected(lines: string[]) {
  return lines.flatMap((l) => {
    const r = parseLine(l);
    if (r.kind !== "tcp" || r.entry.state !== "SYN_SENT" || !r.entry.unreplied) return [];
    return [tupleKey({ family: r.entry.family, ...r.entry.original, zone: r.entry.zone })];
  });
}

function scanChunks(text: string, cuts: number[]): TableScanner {
  const bytes = new TextEncoder().encode(text);
  const s = new TableScanner();
  let prev = 0;
  for (const c of [...new Set(cuts.map((x) => x % (bytes.length + 1)))].sort((a, b) => a - b)) {
    s.push(bytes.subarray(prev, c), 0, 1);
    prev = c;
  }
  s.push(bytes.subarray(prev), 0, 1);
  s.end();
  return s;
}

Deno.test("TableScanner keeps only TCP SYN_SENT [UNREPLIED] lines and counts malformed ones", () => {
  const s = scanChunks(LINES.join("\n") + "\n", []);
  assert.deepEqual(s.candidates.map(tupleKey), [
    "ipv4 10.0.0.1 10.0.0.2 40000 80 0",
    "ipv4 10.0.0.1 10.0.0.2 40001 80 5",
    "ipv6 2001:db8::1 2001:db8::2 1 443 0",
  ]);
  assert.equal(s.scanned, LINES.length);
  assert.equal(s.malformed, 2); // the out-of-range port and the garbage line
  assert.match(s.firstMalformed!.reason, /port/);
});

Deno.test("TableScanner finds the same candidates however the bytes are chunked", () => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom(...LINES), { maxLength: 30 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (lines, cuts) => {
        const text = lines.map((l) => l + "\n").join("");
        const s = scanChunks(text, cuts);
        assert.deepEqual(s.candidates.map(tupleKey), expected(lines));
        assert.equal(s.scanned, lines.length);
        assert.equal(s.malformed, lines.filter((l) => parseLine(l).kind === "malformed").length);
      },
    ),
  );
});

Deno.test("TableScanner counts a last line without newline as truncated and never a candidate", () => {
  const s = scanChunks(syn(1) + "\n" + syn(2).slice(0, -3), [50]);
  assert.deepEqual(s.candidates.map((c) => c.sport), [1]);
  assert.equal(s.malformed, 1);
  assert.match(s.firstMalformed!.reason, /truncated/);
});

Deno.test("TableScanner drops an overlong line without keeping it, and goes on after it", () => {
  const long = "ipv4     2 tcp      6 1 SYN_SENT " + "x".repeat(MAX_LINE_BYTES * 3);
  const s = scanChunks(`${long}\n${syn(7)}\n`, [100, 5000, 9000]);
  assert.deepEqual(s.candidates.map((c) => c.sport), [7]);
  assert.equal(s.malformed, 1);
  assert.match(s.firstMalformed!.reason, /longer than/);
});

Deno.test("TableScanner gives each candidate the time window of the chunk its line started in", () => {
  const enc = new TextEncoder();
  const s = new TableScanner();
  const a = enc.encode(syn(1) + "\n" + syn(2));
  s.push(a, 10, 20);
  s.push(enc.encode("\n"), 15, 30);
  s.end();
  assert.deepEqual(s.candidates.map((c) => [c.sport, c.seenFrom, c.seenTo]), [[1, 10, 20], [
    2,
    10,
    30,
  ]]);
});

Deno.test("TableScanner keeps at most maxCandidates and counts the rest as overflow without parsing them", () => {
  const lines = [syn(1), syn(2), "garbage", syn(3), syn(99999), syn(4)];
  const bytes = new TextEncoder().encode(lines.join("\n") + "\n");
  const s = new TableScanner({ maxCandidates: 2 });
  s.push(bytes, 0, 1);
  s.end();
  assert.deepEqual(s.candidates.map((c) => c.sport), [1, 2]);
  assert.equal(s.overflow, 3, "syn(3), the bad-port line and syn(4) are past the limit");
  assert.equal(s.malformed, 1, "only the garbage line: lines past the limit are not parsed");
  assert.equal(s.snapshot(0, 1).overflow, 3);
});

Deno.test("TableScanner collects candidates and, for the keys asked, translated TCP entries in one pass", () => {
  // Lines as this kernel printed them for `conntrack -I … --dst-nat` entries in a test namespace.
  const lines = [
    "ipv4     2 tcp      6 99 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=80 src=10.9.9.9 dst=10.0.0.1 sport=8080 dport=1000 mark=0 zone=0 use=2",
    "ipv4     2 tcp      6 99 SYN_SENT src=10.0.0.1 dst=10.0.0.3 sport=1000 dport=80 [UNREPLIED] src=10.0.0.3 dst=10.0.0.1 sport=80 dport=1000 mark=0 zone=0 use=2",
    "ipv6     10 tcp      6 99 SYN_SENT src=2001:0db8:0000:0000:0000:0000:0000:0001 dst=2001:0db8:0000:0000:0000:0000:0000:0002 sport=1000 dport=80 [UNREPLIED] src=2001:0db8:0000:0000:0000:0000:0000:0009 dst=2001:0db8:0000:0000:0000:0000:0000:0001 sport=8080 dport=1000 mark=0 zone=5 use=2",
    // TIME_WAIT after a short request: evidence too.
    "ipv4     2 tcp      6 99 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=1003 dport=80 src=10.9.9.9 dst=10.0.0.1 sport=8080 dport=1003 [ASSURED] mark=0 zone=0 use=2",
    // Another client to the address and port asked: not listed under 10.0.0.1's key.
    "ipv4     2 tcp      6 99 ESTABLISHED src=10.0.0.7 dst=10.0.0.2 sport=1004 dport=80 src=10.9.9.9 dst=10.0.0.7 sport=8080 dport=1004 mark=0 zone=0 use=2",
    // A directional zone: listed under the original zone, with the reply zone it has.
    "ipv4     2 tcp      6 99 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1005 dport=80 zone-orig=4 src=10.9.9.9 dst=10.0.0.1 sport=8080 dport=1005 mark=0 use=2",
    // Translated, but to another port of the address asked: not evidence for port 80.
    "ipv4     2 tcp      6 99 ESTABLISHED src=10.0.0.1 dst=10.0.0.3 sport=1001 dport=443 src=10.9.9.8 dst=10.0.0.1 sport=8443 dport=1001 mark=0 zone=0 use=2",
    // Same address and port, not translated: not evidence.
    "ipv4     2 tcp      6 99 ESTABLISHED src=10.0.0.1 dst=10.0.0.3 sport=1002 dport=80 src=10.0.0.3 dst=10.0.0.1 sport=80 dport=1002 mark=0 zone=0 use=2",
    // UDP, DNATed to the same address and port: not TCP evidence.
    "ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.3 sport=1006 dport=80 src=10.9.9.8 dst=10.0.0.1 sport=8080 dport=1006 mark=0 zone=0 use=2",
  ];
  const ask = [
    { family: "ipv4" as const, src: "10.0.0.1", dst: "10.0.0.2", dport: 80, zone: 0 },
    { family: "ipv4" as const, src: "10.0.0.1", dst: "10.0.0.2", dport: 80, zone: 4 },
    { family: "ipv4" as const, src: "10.0.0.1", dst: "10.0.0.3", dport: 80, zone: 0 },
    { family: "ipv6" as const, src: "2001:db8::1", dst: "2001:db8::2", dport: 80, zone: 5 },
    { family: "ipv6" as const, src: "2001:db8::1", dst: "2001:db8::2", dport: 80, zone: 0 },
  ];
  const s = new TableScanner({ evidenceFor: ask });
  s.push(new TextEncoder().encode(lines.join("\n") + "\n"), 0, 1);
  s.end();
  const ev = s.snapshot(0, 1).evidence!;
  assert.deepEqual([...ev.entries].sort(), [
    ["ipv4 10.0.0.1 10.0.0.2 80 0", [
      { sport: 1000, replyZone: 0, translated: { addr: "10.9.9.9", port: 8080 } },
      { sport: 1003, replyZone: 0, translated: { addr: "10.9.9.9", port: 8080 } },
    ]],
    ["ipv4 10.0.0.1 10.0.0.2 80 4", [
      { sport: 1005, replyZone: 0, translated: { addr: "10.9.9.9", port: 8080 } },
    ]],
    ["ipv4 10.0.0.1 10.0.0.3 80 0", []],
    ["ipv6 2001:db8::1 2001:db8::2 80 0", []],
    ["ipv6 2001:db8::1 2001:db8::2 80 5", [
      { sport: 1000, replyZone: 5, translated: { addr: "2001:db8::9", port: 8080 } },
    ]],
  ]);
  assert.equal(ev.overflow.size, 0);
  assert.deepEqual(s.candidates.map((c) => [c.dst, c.translated ?? null]), [
    ["10.0.0.3", null],
    ["2001:db8::2", { addr: "2001:db8::9", port: 8080 }],
  ]);
  assert.equal(s.malformed, 0);
  const only = new TableScanner({ evidenceFor: ask, candidates: false });
  only.push(new TextEncoder().encode(lines.join("\n") + "\n"), 0, 1);
  only.end();
  assert.equal(only.candidates.length, 0);
  assert.deepEqual(only.snapshot(0, 1).evidence, ev);
  assert.equal(new TableScanner().snapshot(0, 1).evidence, undefined, "not asked: unknown");
});

Deno.test("TableScanner puts a key with more translated entries than it keeps in overflow, with none listed", () => {
  const line = (sport: number) =>
    `ipv4     2 tcp      6 99 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=${sport} dport=80 src=10.9.9.9 dst=10.0.0.1 sport=8080 dport=${sport} [ASSURED] mark=0 zone=0 use=2`;
  const lines = Array.from({ length: 4097 }, (_, i) => line(1024 + i));
  const s = new TableScanner({
    evidenceFor: [{ family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", dport: 80, zone: 0 }],
  });
  s.push(new TextEncoder().encode(lines.join("\n") + "\n"), 0, 1);
  s.end();
  const ev = s.snapshot(0, 1).evidence!;
  assert.deepEqual([...ev.overflow], ["ipv4 10.0.0.1 10.0.0.2 80 0"]);
  assert.deepEqual(ev.entries.get("ipv4 10.0.0.1 10.0.0.2 80 0"), []);
});
