/**
 * Generated conntrack table lines in the kernel's exact format (ct_seq_show),
 * with every optional field, for property tests of the parsers.
 *
 * Boundary values are drawn on purpose, not left to chance: ports 0 and
 * 65535, zones 0 and 65535, timeout 0, the addresses `::`, `::1`, IPv4-mapped
 * IPv6 and 0.0.0.0 / 255.255.255.255. {@linkcode genLineOutOfRange} also
 * draws the first values past the limits (port and zone 65536).
 *
 * The expected IPv6 spelling comes from {@linkcode rfc5952}, written here
 * independently of lib/model/addr.ts (and checked against hand-written cases in
 * tests/model/addr_test.ts).
 *
 * @module
 */
import fc from "fast-check";
import { TCP_STATES } from "../../lib/text/parse.ts";

/** Everything a generated line is made of, to compare the parse with. */
export interface Gen {
  family: "ipv4" | "ipv6";
  timeout: number | undefined;
  state: string;
  orig: { src: number[]; dst: number[]; sport: number; dport: number };
  reply: { src: number[]; dst: number[]; sport: number; dport: number };
  zone: { dir: "none" | "orig" | "reply" | "both"; id: number };
  acct: [number, number, number, number] | undefined;
  unreplied: boolean;
  flag: string | undefined;
  mark: number | undefined;
  secctx: string | undefined;
  delta: number | undefined;
  use: number;
}

const octet = fc.oneof(fc.constantFrom(0, 255), fc.integer({ min: 0, max: 255 }));
const v4: fc.Arbitrary<number[]> = fc.oneof(
  fc.constantFrom<number[]>([0, 0, 0, 0], [255, 255, 255, 255], [127, 0, 0, 1]),
  fc.array(octet, { minLength: 4, maxLength: 4 }),
);
const group = fc.oneof(fc.constantFrom(0, 0xffff), fc.integer({ min: 0, max: 0xffff }));
const v6: fc.Arbitrary<number[]> = fc.oneof(
  fc.constantFrom<number[]>(
    [0, 0, 0, 0, 0, 0, 0, 0], // ::
    [0, 0, 0, 0, 0, 0, 0, 1], // ::1
    [0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff],
  ),
  // IPv4-mapped ::ffff:a.b.c.d
  fc.tuple(group, group).map(([a, b]) => [0, 0, 0, 0, 0, 0xffff, a, b]),
  // runs of zero groups of every length at every place
  fc.tuple(fc.nat({ max: 7 }), fc.nat({ max: 8 }), fc.array(group, { minLength: 8, maxLength: 8 }))
    .map(([at, len, g]) => g.map((x, i) => (i >= at && i < at + len ? 0 : x))),
  fc.array(group, { minLength: 8, maxLength: 8 }),
);
const inRange = (max: number) => fc.oneof(fc.constantFrom(0, max), fc.integer({ min: 0, max }));
const port = inRange(65535);
const u32 = inRange(4294967295);
const big = fc.oneof(fc.constant(0), fc.maxSafeNat());

function gen(port: fc.Arbitrary<number>, zone: fc.Arbitrary<number>): fc.Arbitrary<Gen> {
  return fc.constantFrom<"ipv4" | "ipv6">("ipv4", "ipv6").chain((family) => {
    const addr = family === "ipv4" ? v4 : v6;
    const dir = fc.record({ src: addr, dst: addr, sport: port, dport: port });
    return fc.record({
      family: fc.constant(family),
      timeout: fc.option(u32, { nil: undefined }),
      state: fc.constantFrom(...TCP_STATES),
      orig: dir,
      reply: dir,
      zone: fc.record({ dir: fc.constantFrom("none", "orig", "reply", "both"), id: zone }),
      acct: fc.option(fc.tuple(big, big, big, big), { nil: undefined }),
      unreplied: fc.boolean(),
      flag: fc.constantFrom(undefined, "ASSURED", "OFFLOAD", "HW_OFFLOAD"),
      mark: fc.option(u32, { nil: undefined }),
      secctx: fc.constantFrom(undefined, "system_u:object_r:unlabeled_t:s0"),
      delta: fc.option(big, { nil: undefined }),
      use: u32,
    });
  });
}

/** Valid lines: every field within its range, the range's ends drawn often. */
export const genLine: fc.Arbitrary<Gen> = gen(port, port);

/** Lines whose ports and zone may also be 65536 (or a little more): past the u16 limit. */
const maybeOver = fc.oneof(
  { arbitrary: port, weight: 8 },
  { arbitrary: fc.constantFrom(65536, 65537, 99999), weight: 1 },
);
export const genLineOutOfRange: fc.Arbitrary<Gen> = gen(maybeOver, maybeOver);

/** Whether a generated line stays within every field's range. */
export function inRanges(g: Gen): boolean {
  const ok = (n: number) => n <= 65535;
  return [g.orig, g.reply].every((d) => ok(d.sport) && ok(d.dport)) &&
    (g.zone.dir === "none" || ok(g.zone.id));
}

/**
 * RFC 5952 text of eight 16-bit groups: lower-case hex without leading
 * zeros, the longest run of two or more zero groups (the first, on a tie)
 * replaced by `::`. IPv4-mapped addresses stay in hex (`::ffff:a00:1`), the
 * spelling the agent uses throughout. Written apart from lib/model/addr.ts, on the
 * text instead of the numbers.
 */
export function rfc5952(groups: number[]): string {
  const text = ":" + groups.map((g) => g.toString(16)).join(":") + ":";
  let best = "";
  for (const m of text.matchAll(/(?::0)+:/g)) if (m[0].length > best.length) best = m[0];
  if (best.length < ":0:0:".length) return text.slice(1, -1);
  const at = text.indexOf(best);
  const joined = text.slice(0, at) + "::" + text.slice(at + best.length);
  return joined.replace(/^:(?!:)/, "").replace(/(?<!:):$/, "");
}

const kernelAddr = (family: string, a: number[]) =>
  family === "ipv4" ? a.join(".") : a.map((g) => g.toString(16).padStart(4, "0")).join(":");

/** The spelling the parser must give an address: the dotted quad, or {@linkcode rfc5952}. */
export const canon = (family: string, a: number[]) => family === "ipv4" ? a.join(".") : rfc5952(a);

/** Prints a line the way ct_seq_show() does. */
export function render(g: Gen): string {
  const d = (x: Gen["orig"]) =>
    `src=${kernelAddr(g.family, x.src)} dst=${
      kernelAddr(g.family, x.dst)
    } sport=${x.sport} dport=${x.dport} `;
  let s = g.family === "ipv4" ? "ipv4     2 " : "ipv6     10 ";
  s += "tcp      6 ";
  if (g.timeout !== undefined) s += `${g.timeout} `;
  s += `${g.state} ` + d(g.orig);
  if (g.zone.dir === "orig") s += `zone-orig=${g.zone.id} `;
  if (g.acct) s += `packets=${g.acct[0]} bytes=${g.acct[1]} `;
  if (g.unreplied) s += "[UNREPLIED] ";
  s += d(g.reply);
  if (g.zone.dir === "reply") s += `zone-reply=${g.zone.id} `;
  if (g.acct) s += `packets=${g.acct[2]} bytes=${g.acct[3]} `;
  if (g.flag) s += `[${g.flag}] `;
  if (g.mark !== undefined) s += `mark=${g.mark} `;
  if (g.secctx) s += `secctx=${g.secctx} `;
  if (g.zone.dir === "both") s += `zone=${g.zone.id} `;
  if (g.delta !== undefined) s += `delta-time=${g.delta} `;
  return s + `use=${g.use}`;
}
