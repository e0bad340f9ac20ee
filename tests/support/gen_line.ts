/**
 * Generated conntrack table lines in the kernel's exact format (ct_seq_show),
 * with every optional field, for property tests of the parsers.
 *
 * @module
 */
import fc from "fast-check";
import { formatIPv6 } from "../../lib/addr.ts";
import { TCP_STATES } from "../../lib/parse.ts";

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

const v4 = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 });
const v6 = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 });
const port = fc.integer({ min: 0, max: 65535 });
const u32 = fc.integer({ min: 0, max: 4294967295 });
const big = fc.maxSafeNat();

export const genLine: fc.Arbitrary<Gen> = fc.constantFrom<"ipv4" | "ipv6">("ipv4", "ipv6").chain(
  (family) => {
    const addr = family === "ipv4" ? v4 : v6;
    const dir = fc.record({ src: addr, dst: addr, sport: port, dport: port });
    return fc.record({
      family: fc.constant(family),
      timeout: fc.option(u32, { nil: undefined }),
      state: fc.constantFrom(...TCP_STATES),
      orig: dir,
      reply: dir,
      zone: fc.record({ dir: fc.constantFrom("none", "orig", "reply", "both"), id: port }),
      acct: fc.option(fc.tuple(big, big, big, big), { nil: undefined }),
      unreplied: fc.boolean(),
      flag: fc.constantFrom(undefined, "ASSURED", "OFFLOAD", "HW_OFFLOAD"),
      mark: fc.option(u32, { nil: undefined }),
      secctx: fc.constantFrom(undefined, "system_u:object_r:unlabeled_t:s0"),
      delta: fc.option(big, { nil: undefined }),
      use: u32,
    });
  },
);

const kernelAddr = (family: string, a: number[]) =>
  family === "ipv4" ? a.join(".") : a.map((g) => g.toString(16).padStart(4, "0")).join(":");
export const canon = (
  family: string,
  a: number[],
) => (family === "ipv4" ? a.join(".") : formatIPv6(a));

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
