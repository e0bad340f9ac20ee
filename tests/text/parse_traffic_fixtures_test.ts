/**
 * The parser and the scanner on tables captured from real traffic by
 * `scripts/capture_fixtures.ts` (`deno task fixtures traffic`): real sockets
 * on a namespace's loopback, iptables DNAT/SNAT, CONNMARK and CT zones,
 * `nf_conntrack_acct` and `nf_conntrack_timestamp` on. Expected values come
 * from `tests/fixtures/traffic_expected.json`, written from the script's own
 * connection list and rules, never from parsing the captures.
 */
import assert from "node:assert/strict";
import { parseLine, type TcpEntry } from "../../lib/text/parse.ts";
import { TableScanner } from "../../lib/text/scanner.ts";
import { type Tuple, tupleKey } from "../../lib/model/tuple.ts";

interface Dir {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

/** One connection of traffic_expected.json. */
interface Connection {
  description: string;
  family: "ipv4" | "ipv6";
  kind: "syn" | "open" | "closed";
  payload?: number;
  state: string;
  original: Dir;
  reply: Dir;
  zone: number;
  replyZone: number;
  mark: number;
  unreplied: boolean;
  nat: "dnat" | "snat" | "none";
  candidate: boolean;
}

const DIR = new URL("../fixtures/", import.meta.url);
const expected: { setup: string[]; connections: Connection[] } = JSON.parse(
  await Deno.readTextFile(new URL("traffic_expected.json", DIR)),
);
const CONNS = expected.connections;
const FILES = ["procfs_traffic.txt", "conntrack_extended_traffic.txt"];
const texts = new Map<string, string>();
for (const name of FILES) texts.set(name, await Deno.readTextFile(new URL(name, DIR)));
const linesOf = (name: string) => texts.get(name)!.replace(/\n$/, "").split("\n");

/** The captured line of a connection: the one with its original ports. */
function lineOf(name: string, c: Connection): string {
  const o = c.original;
  const found = linesOf(name).filter((l) => l.includes(` sport=${o.sport} dport=${o.dport} `));
  assert.equal(found.length, 1, `${name}: one line for ${c.description}`);
  return found[0]!;
}

function parsed(line: string): TcpEntry {
  const r = parseLine(line);
  assert.equal(r.kind, "tcp", `${r.kind === "malformed" ? r.reason : r.kind}: ${line}`);
  return (r as { entry: TcpEntry }).entry;
}

Deno.test("traffic_expected.json: the connections the capture made, DNATed and not, SNATed, marked, in zones", () => {
  assert.equal(CONNS.length, 16);
  const syn = CONNS.filter((c) => c.kind === "syn");
  // the un-NATed rule needs both: a SYN_SENT [UNREPLIED] whose destination was DNATed, one whose was not
  assert.ok(syn.some((c) => c.nat === "dnat" && c.family === "ipv4"));
  assert.ok(syn.some((c) => c.nat === "dnat" && c.family === "ipv6"));
  assert.ok(syn.some((c) => c.nat === "none") && syn.some((c) => c.nat === "snat"));
  assert.ok(syn.some((c) => c.mark !== 0) && syn.some((c) => c.zone !== c.replyZone));
  assert.ok(expected.setup.some((c) => c.includes("-j DNAT")));
});

Deno.test("parseLine parses every line of the real-traffic captures as TCP, one per connection", () => {
  for (const name of FILES) {
    const lines = linesOf(name);
    assert.equal(lines.length, CONNS.length, name);
    for (const line of lines) parsed(line);
  }
});

Deno.test("parseLine reads state, both tuples after NAT, zone and mark of each real connection as set up", () => {
  for (const name of FILES) {
    for (const c of CONNS) {
      const e = parsed(lineOf(name, c));
      const ctx = `${name}: ${c.description}`;
      assert.deepEqual(
        {
          family: e.family,
          state: e.state,
          original: e.original,
          reply: e.reply,
          zone: e.zone,
          unreplied: e.unreplied,
          mark: e.mark,
        },
        {
          family: c.family,
          state: c.state,
          original: c.original,
          reply: c.reply,
          zone: c.zone,
          unreplied: c.unreplied,
          mark: c.mark,
        },
        ctx,
      );
      assert.equal(e.flag, c.kind === "syn" ? undefined : "ASSURED", ctx);
      // NAT as the rules made it: DNAT moves the reply's source, SNAT the reply's destination
      assert.equal(e.reply.src !== e.original.dst, c.nat === "dnat", ctx);
      assert.equal(e.reply.dst !== e.original.src, c.nat === "snat", ctx);
    }
  }
});

Deno.test("the real-traffic captures carry real counters and delta-time (acct and timestamp on)", () => {
  for (const name of FILES) {
    for (const c of CONNS) {
      const line = lineOf(name, c);
      const ctx = `${name}: ${c.description}: ${line}`;
      const counters = [...line.matchAll(/ packets=(\d+) bytes=(\d+)/g)].map((
        m,
      ): [number, number] => [
        Number(m[1]),
        Number(m[2]),
      ]);
      assert.equal(counters.length, 2, ctx);
      const [[op, ob], [rp, rb]] = counters as [[number, number], [number, number]];
      const header = c.family === "ipv4" ? 60 : 80; // a SYN: IP header + TCP header with options
      assert.ok(op >= 1 && ob >= header, ctx);
      if (c.kind === "syn") {
        assert.deepEqual([rp, rb], [0, 0], `nothing came back: ${ctx}`);
      } else {
        assert.ok(rp >= 2 && rb >= c.payload!, `the echo came back: ${ctx}`);
        assert.ok(ob >= c.payload! + 3 * header - 60, `the payload went out: ${ctx}`);
      }
      const delta = Number(/ delta-time=(\d+) /.exec(line)?.[1]);
      // made 2.5 s (data) or 4 s (SYNs, 1.5 s earlier) before the table was read
      assert.ok(delta >= (c.kind === "syn" ? 3 : 2) && delta <= 10, ctx);
    }
  }
});

Deno.test("TableScanner finds exactly the SYN_SENT/UNREPLIED connections of the real-traffic captures, NATed or not, in their original zone", () => {
  const want = CONNS.filter((c) => c.candidate).map((c): Tuple => ({
    family: c.family,
    ...c.original,
    zone: c.zone,
  })).map(tupleKey).sort();
  assert.equal(want.length, 11);
  for (const name of FILES) {
    const s = new TableScanner({ maxCandidates: 1000 });
    const bytes = new TextEncoder().encode(texts.get(name)!);
    s.push(bytes, 0, 1);
    s.end();
    assert.equal(s.malformed, 0, name);
    assert.equal(s.scanned, CONNS.length, name);
    assert.deepEqual(s.candidates.map(tupleKey).sort(), want, name);
  }
});
