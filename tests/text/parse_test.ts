import assert from "node:assert/strict";
import fc from "fast-check";
import { lineCandidate, parseLine, type TcpEntry } from "../../lib/text/parse.ts";
import { canon, genLine, genLineOutOfRange, inRanges, render } from "../support/gen_line.ts";

/**
 * A line the kernel printed (tests/fixtures/procfs_plain.txt, captured by
 * scripts/capture_fixtures.ts from an entry it made with
 * `conntrack -I -s 2001:db8::1 -d 2001:db8::2 --sport 40000 --dport 80 -w 5 …`).
 */
const CAPTURED = Deno.readTextFileSync(new URL("../fixtures/procfs_plain.txt", import.meta.url))
  .split("\n").find((l) => l.startsWith("ipv6 ") && / sport=40000 .* zone=5 /.test(l))!;

Deno.test("parseLine reads a captured SYN_SENT [UNREPLIED] IPv6 line in zone 5 as the kernel printed it", () => {
  assert.ok(CAPTURED, "the fixture holds the line");
  const r = parseLine(CAPTURED);
  assert.equal(r.kind, "tcp");
  if (r.kind !== "tcp") return;
  assert.deepEqual(r.entry, {
    family: "ipv6",
    timeout: 117,
    state: "SYN_SENT",
    original: { src: "2001:db8::1", dst: "2001:db8::2", sport: 40000, dport: 80 },
    reply: { src: "2001:db8::2", dst: "2001:db8::1", sport: 80, dport: 40000 },
    zone: 5,
    replyZone: 5,
    unreplied: true,
    flag: undefined,
    mark: 0,
    use: 2,
  });
});

Deno.test("parseLine parses every generated valid line back to what generated it", () => {
  fc.assert(
    fc.property(genLine, (g) => {
      const r = parseLine(render(g));
      assert.equal(r.kind, "tcp", r.kind === "malformed" ? `${r.reason}: ${render(g)}` : "");
      if (r.kind !== "tcp") return;
      const e = r.entry;
      assert.equal(e.family, g.family);
      assert.equal(e.timeout, g.timeout);
      assert.equal(e.state, g.state);
      assert.equal(e.unreplied, g.unreplied);
      assert.equal(e.flag, g.flag);
      assert.equal(e.mark, g.mark);
      assert.equal(e.use, g.use);
      assert.equal(e.zone, g.zone.dir === "orig" || g.zone.dir === "both" ? g.zone.id : 0);
      for (const [got, want] of [[e.original, g.orig], [e.reply, g.reply]] as const) {
        assert.deepEqual(got, {
          src: canon(g.family, want.src),
          dst: canon(g.family, want.dst),
          sport: want.sport,
          dport: want.dport,
        });
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("parseLine rejects a port or zone past 65535 and accepts 0 and 65535 (boundaries drawn on purpose)", () => {
  let over = 0, edge = 0;
  fc.assert(
    fc.property(genLineOutOfRange, (g) => {
      const r = parseLine(render(g));
      if (inRanges(g)) {
        assert.equal(r.kind, "tcp", render(g));
        const d = [g.orig, g.reply];
        if (d.some((x) => [x.sport, x.dport].some((p) => p === 0 || p === 65535))) edge++;
      } else {
        over++;
        assert.equal(r.kind, "malformed", render(g));
      }
    }),
    { numRuns: 2000 },
  );
  assert.ok(over > 100 && edge > 100, `drawn: ${over} past the limit, ${edge} at it`);
});

Deno.test("parseLine never throws, whatever the input", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: "binary", maxLength: 300 })),
      (s) => {
        const r = parseLine(s);
        assert.ok(["tcp", "other", "malformed"].includes(r.kind));
      },
    ),
    { numRuns: 5000 },
  );
  // and on mangled real lines: cut, with bytes replaced
  fc.assert(
    fc.property(genLine, fc.nat(), fc.nat(), fc.string({ maxLength: 4 }), (g, at, len, ins) => {
      const s = render(g);
      const i = at % (s.length + 1);
      parseLine(s.slice(0, i) + ins + s.slice(i + (len % 8)));
      parseLine(s.slice(0, i));
    }),
    { numRuns: 3000 },
  );
});

/** Field values that must never be taken for an address, port or zone. */
const hostile = fc.oneof(
  fc.constantFrom(
    "-F",
    "--flush",
    "0 ", // an extra space: not the kernel's format (found by this very test)
    " 80",
    "-D",
    "1.2.3.4 -F",
    "10.0.0.1\n-F",
    "10.0.0.1\0",
    "10.0.0.1;rm",
    "$(reboot)",
    "10.0.0.1 src=10.0.0.9",
    "-1",
    "65536",
    "99999999999999999999",
    "0x10",
    "1e3",
    "+80",
    "080",
    " ",
    "",
    "::1 -F",
    "1.2.3.256",
    "fe80::1%eth0",
    "１２３",
  ),
  fc.string({ maxLength: 20 }).filter((s) =>
    !/^(0|[1-9][0-9]*)$/.test(s) && !/^[0-9a-fA-F.:]*$/.test(s)
  ),
);
const FIELDS = ["src", "dst", "sport", "dport", "zone"] as const;

Deno.test("parseLine rejects a hostile value in any address, port or zone field", () => {
  fc.assert(
    fc.property(
      genLine,
      fc.constantFrom(...FIELDS),
      fc.boolean(),
      hostile,
      (g, field, inReply, value) => {
        const line = render({ ...g, zone: { dir: "both", id: g.zone.id } });
        // replace the field's value in the original (or reply) tuple
        const tokens = line.split(" ");
        const firstSrc = tokens.findIndex((t) => t.startsWith("src="));
        const secondSrc = tokens.findIndex((t, i) => i > firstSrc && t.startsWith("src="));
        const base = inReply ? secondSrc : firstSrc;
        const idx = field === "zone"
          ? tokens.findIndex((t) => t.startsWith("zone="))
          : base + ["src", "dst", "sport", "dport"].indexOf(field);
        tokens[idx] = `${tokens[idx]!.split("=")[0]}=${value}`;
        const r = parseLine(tokens.join(" "));
        assert.equal(
          r.kind,
          "malformed",
          `accepted ${JSON.stringify(value)} in ${field}: ${tokens.join(" ")}`,
        );
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("parseLine rejects a second tuple, a missing reply tuple and trailing fields", () => {
  const ok =
    "ipv4     2 tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 mark=0 zone=0 use=2";
  assert.equal(parseLine(ok).kind, "tcp");
  const bad = [
    ok.replace("[UNREPLIED] ", "[UNREPLIED] src=10.0.0.9 dst=10.0.0.9 sport=1 dport=1 "),
    "ipv4     2 tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] mark=0 use=2",
    ok + " -F",
    ok.replace("use=2", "use=2 zone=3"),
    ok.replace("zone=0", "zone=0 zone=1"),
    ok.replace("tcp      6", "tcp      17"),
    ok.replace("ipv4     2", "ipv4     10"),
    ok.replace("SYN_SENT", "SYN_SENT\u0007"),
    ok.replace("117", "-117"),
    ok.replace("[UNREPLIED]", "[unreplied]"),
    ok.slice(0, 60),
    ok.replace("src=10.0.0.1", "src=2001:db8::1"),
  ];
  for (const line of bad) assert.equal(parseLine(line).kind, "malformed", line);
});

Deno.test("parseLine classifies other protocols without parsing their tuples", () => {
  const udp =
    "ipv4     2 udp      17 29 src=10.0.0.3 dst=10.0.0.4 sport=53 dport=53 [UNREPLIED] src=10.0.0.4 dst=10.0.0.3 sport=53 dport=53 mark=0 zone=0 use=2";
  assert.deepEqual(parseLine(udp), { kind: "other", protocol: "udp" });
  assert.equal(parseLine("ipv4     2 udp      x 29").kind, "malformed");
});

Deno.test("lineCandidate marks the destination translated by its address alone or its port alone", () => {
  const line = (replySrc: string, replySport: number) =>
    `ipv4     2 tcp      6 117 SYN_SENT src=192.0.2.1 dst=198.51.100.80 sport=40000 dport=80 [UNREPLIED] src=${replySrc} dst=192.0.2.1 sport=${replySport} dport=40000 mark=0 zone=0 use=2`;
  const cand = (l: string) => {
    const r = parseLine(l);
    assert.equal(r.kind, "tcp");
    return lineCandidate((r as { entry: TcpEntry }).entry, 117, 0, 1);
  };
  assert.equal(cand(line("198.51.100.80", 80)).translated, undefined);
  assert.deepEqual(cand(line("10.244.0.5", 80)).translated, { addr: "10.244.0.5", port: 80 });
  assert.deepEqual(cand(line("198.51.100.80", 8080)).translated, {
    addr: "198.51.100.80",
    port: 8080,
  });
});
