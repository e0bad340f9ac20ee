/**
 * An independent check of the nf_tables decoder: `nft --debug=netlink list
 * ruleset` prints every rule's expressions as libnftnl decodes them, with
 * their registers and data words. {@linkcode debugRules} parses that text;
 * {@linkcode compareWithDebug} says where the reader's decoding of the same
 * chains differs (expression names, registers, data bytes), one line each.
 *
 * @module
 */
import type { NftChain, NftExpr } from "../../lib/nat/ruleset.ts";

/** One expression line of the debug output. */
export interface DebugExpr {
  name: string;
  regs: number[];
  /** Every `0x…` word, as the bytes it stands for (little-endian words). */
  bytes: number[];
  line: string;
}

/** Rules by `family table chain handle`. */
export function debugRules(text: string): Map<string, DebugExpr[]> {
  const rules = new Map<string, DebugExpr[]>();
  let current: DebugExpr[] | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("table ")) break;
    const head = /^(ip|ip6|inet) (\S+) (\S+) (\d+)( \d+)?$/.exec(line);
    if (head) {
      current = [];
      rules.set(`${head[1]} ${head[2]} ${head[3]} ${head[4]}`, current);
      continue;
    }
    const m = /^\s+\[ (\S+)(.*) \]$/.exec(line);
    if (m && current) {
      const rest = m[2]!;
      const regs = [...rest.matchAll(/reg (\d+)/g)].map((r) => Number(r[1]));
      const bytes: number[] = [];
      for (const w of rest.matchAll(/0x([0-9a-f]{8})\b/g)) {
        const v = parseInt(w[1]!, 16);
        bytes.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
      }
      current.push({ name: m[1]!, regs, bytes, line: line.trim() });
    } else {
      current = undefined;
    }
  }
  return rules;
}

/** The register number the kernel dumps for a normalised index. */
function dumped(reg: number | "verdict"): number {
  if (reg === "verdict") return 0;
  return reg % 4 === 0 ? reg / 4 + 1 : reg + 8;
}

const NAME: Partial<Record<NftExpr["op"], string>> = {
  verdict: "immediate",
  payload_set: "payload",
  meta_set: "meta",
  ct_set: "ct",
};

function padded(b: Uint8Array): number[] {
  const out = [...b];
  while (out.length % 4 !== 0) out.push(0);
  return out;
}

/** The registers and data words debug output shows for `e`, or undefined to skip that check. */
function expected(e: NftExpr): { regs?: number[]; bytes?: number[] } {
  switch (e.op) {
    case "immediate":
      return { regs: [dumped(e.dreg)], bytes: padded(e.data) };
    case "verdict":
      return { regs: [0] };
    case "payload":
    case "meta":
    case "ct":
    case "numgen":
      return { regs: [dumped(e.dreg)] };
    case "payload_set":
    case "meta_set":
    case "ct_set":
      return { regs: [dumped(e.sreg)] };
    case "cmp":
      return { regs: [dumped(e.sreg)], bytes: padded(e.data) };
    case "bitwise":
      return {
        regs: [dumped(e.dreg), dumped(e.sreg)],
        ...(e.kind === "bool" ? { bytes: [...padded(e.mask!), ...padded(e.xor!)] } : {}),
      };
    case "byteorder":
      return { regs: [dumped(e.dreg), dumped(e.sreg)] };
    case "range":
      return { regs: [dumped(e.sreg)], bytes: [...padded(e.from), ...padded(e.to)] };
    case "lookup":
      return { regs: [dumped(e.sreg), ...(e.dreg === undefined ? [] : [dumped(e.dreg)])] };
    case "nat":
      return {
        regs: [e.addrMin, e.addrMax, e.protoMin, e.protoMax].filter((r) => r !== undefined)
          .map(dumped),
      };
    case "redir":
    case "masq":
      return { regs: [e.protoMin, e.protoMax].filter((r) => r !== undefined).map(dumped) };
    default:
      return {};
  }
}

const sorted = (a: number[]) => [...a].sort((x, y) => x - y).join(",");

/** Every difference between `chains` as decoded and the debug text; empty when they agree. */
export function compareWithDebug(chains: readonly NftChain[], text: string): string[] {
  const rules = debugRules(text);
  const problems: string[] = [];
  for (const c of chains) {
    for (const r of c.rules) {
      const key = `${c.family} ${c.table} ${c.name} ${r.handle}`;
      const debug = rules.get(key);
      if (debug === undefined) {
        problems.push(`${key}: not in the debug output`);
        continue;
      }
      if (debug.length !== r.exprs.length) {
        problems.push(`${key}: ${r.exprs.length} expressions, debug shows ${debug.length}`);
        continue;
      }
      r.exprs.forEach((e, i) => {
        const d = debug[i]!;
        const name = e.op === "other" ? e.name : NAME[e.op] ?? e.op;
        if (name !== d.name) problems.push(`${key} #${i}: ${name} vs ${d.line}`);
        const x = expected(e);
        if (x.regs !== undefined && sorted(x.regs) !== sorted(d.regs)) {
          problems.push(`${key} #${i}: registers ${x.regs} vs ${d.line}`);
        }
        if (x.bytes !== undefined && x.bytes.join(",") !== d.bytes.join(",")) {
          problems.push(`${key} #${i}: data ${x.bytes} vs ${d.line}`);
        }
      });
    }
  }
  return problems;
}
