import assert from "node:assert/strict";
import fc from "fast-check";
import { fastCandidate } from "../../lib/text/fast_line.ts";
import { parseLine } from "../../lib/text/parse.ts";
import { type Gen, genLine, genLineOutOfRange, inRanges, render } from "../support/gen_line.ts";

const enc = new TextEncoder();
const fast = (line: string) => {
  const b = enc.encode(line);
  return fastCandidate(b, 0, b.length, 1, 2);
};

/** What the full parser says the candidate is, or undefined. */
function slow(line: string) {
  const r = parseLine(line);
  if (r.kind !== "tcp") return undefined;
  const e = r.entry;
  if (e.state !== "SYN_SENT" || !e.unreplied || e.timeout === undefined) return undefined;
  const natted = e.reply.src !== e.original.dst || e.reply.sport !== e.original.dport;
  return {
    family: e.family,
    ...e.original,
    zone: e.zone,
    timeout: e.timeout,
    seenFrom: 1,
    seenTo: 2,
    ...(natted ? { translated: { addr: e.reply.src, port: e.reply.sport } } : {}),
  };
}

/** A plain candidate (the shape the fast path is for) made of `g`. */
const plainOf = (g: Gen) =>
  render({
    ...g,
    state: "SYN_SENT",
    unreplied: true,
    timeout: g.timeout ?? 117,
    acct: undefined,
    flag: undefined,
    secctx: undefined,
    delta: undefined,
    zone: {
      dir: g.zone.dir === "reply" || g.zone.dir === "orig" ? "both" : g.zone.dir,
      id: g.zone.id,
    },
  });
const plain = genLine.map(plainOf);

Deno.test("fastCandidate reads every plain candidate line exactly as parseLine does", () => {
  fc.assert(
    fc.property(plain, (line) => {
      const f = fast(line);
      assert.ok(f !== undefined, `fast path declined a plain line: ${line}`);
      assert.deepEqual(f, slow(line));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("fastCandidate never accepts a line parseLine rejects, and agrees whenever it accepts", () => {
  const mutated = fc.tuple(
    fc.oneof(plain, genLine.map(render)),
    fc.nat(),
    fc.nat(),
    fc.string({ maxLength: 4 }),
  )
    .map(([s, at, len, ins]) => {
      const i = at % (s.length + 1);
      return s.slice(0, i) + ins + s.slice(i + (len % 6));
    });
  // Token-level edits that keep a line almost valid: the cases a lax fast path would get wrong.
  const edits: ((t: string) => string)[] = [
    (t) => t.replace("=", "=0"),
    (t) => t + "0",
    (t) => t + "9",
    (t) => t.toUpperCase(),
    (t) => t.slice(0, -1),
    (t) => t.replace(/[0-9a-f]$/, "g"),
    (t) => t.replace(/\.[0-9]+/, ".256"),
    (t) => t.replace(/:[0-9a-f]{4}/, ":12345"),
    (t) => t.replace(/:[0-9a-f]{4}/, ":0"),
    (t) => t + " " + t,
    () => "",
  ];
  const edited = fc.tuple(plain, fc.nat(), fc.nat({ max: edits.length - 1 })).map(([s, at, e]) => {
    const t = s.split(" ");
    const i = at % t.length;
    t[i] = edits[e]!(t[i]!);
    return t.join(" ");
  });
  fc.assert(
    fc.property(
      fc.oneof(plain, genLine.map(render), genLineOutOfRange.map(plainOf), mutated, edited),
      (line) => {
        const f = fast(line);
        if (f !== undefined) assert.deepEqual(f, slow(line), line);
      },
    ),
    { numRuns: 20000 },
  );
});

Deno.test("fastCandidate declines shapes it does not know, leaving them to parseLine", () => {
  const base =
    "ipv4     2 tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 mark=0 zone=0 use=2";
  assert.ok(fast(base));
  for (
    const line of [
      base.replace("[UNREPLIED]", "packets=1 bytes=60 [UNREPLIED]"),
      base.replace("zone=0 use=2", "zone=0 delta-time=5 use=2"),
      base.replace("mark=0", "mark=0 secctx=system_u:object_r:unlabeled_t:s0"),
      base.replace("[UNREPLIED] ", ""),
      base.replace("SYN_SENT", "ESTABLISHED"),
      "ipv6     10 tcp      6 117 SYN_SENT src=2001:db8::1 dst=2001:db8::2 sport=1 dport=2 [UNREPLIED] src=2001:db8::2 dst=2001:db8::1 sport=2 dport=1 mark=0 use=1",
    ]
  ) {
    assert.equal(fast(line), undefined, line);
  }
});

Deno.test("fastCandidate declines a port or zone of 65536, and reads 0 and 65535, exactly as parseLine does", () => {
  let over = 0;
  fc.assert(
    fc.property(genLineOutOfRange, (g) => {
      const line = plainOf(g);
      if (inRanges(g)) {
        assert.deepEqual(fast(line), slow(line), line);
        assert.ok(fast(line) !== undefined, line);
      } else {
        over++;
        assert.equal(slow(line), undefined, line);
        assert.equal(fast(line), undefined, line);
      }
    }),
    { numRuns: 3000 },
  );
  assert.ok(over > 300, `${over} lines past the limit`);
  const base =
    "ipv4     2 tcp      6 0 SYN_SENT src=0.0.0.0 dst=255.255.255.255 sport=0 dport=65535 [UNREPLIED] src=255.255.255.255 dst=0.0.0.0 sport=65535 dport=0 mark=4294967295 zone=65535 use=1";
  assert.deepEqual(fast(base), {
    family: "ipv4",
    src: "0.0.0.0",
    dst: "255.255.255.255",
    sport: 0,
    dport: 65535,
    zone: 65535,
    timeout: 0,
    seenFrom: 1,
    seenTo: 2,
  });
  for (
    const edit of [
      "sport=65536 dport=65535 [",
      "sport=0 dport=65536 [",
      "] src=255.255.255.255 dst=0.0.0.0 sport=65536 ",
      "zone=65536",
    ]
  ) {
    const line = edit.startsWith("sport=")
      ? base.replace("sport=0 dport=65535 [", edit)
      : edit.startsWith("]")
      ? base.replace("] src=255.255.255.255 dst=0.0.0.0 sport=65535 ", edit)
      : base.replace("zone=65535", edit);
    assert.notEqual(line, base);
    assert.equal(fast(line), undefined, line);
  }
});
