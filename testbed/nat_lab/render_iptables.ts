/**
 * A generated iptables-style {@linkcode RuleSet} as iptables-restore text:
 * `ip` tables for `iptables-nft-restore`, `ip6` tables for
 * `ip6tables-nft-restore`. Tables are `raw`, `mangle` and `nat`; base chains
 * `PREROUTING` and `OUTPUT`. Rules that name ports or REDIRECT/DNAT to a
 * port carry `-p tcp`.
 *
 * @module
 */
import type { Action, Match, NatTo, PortSpec, Rule, RuleSet, Table } from "./model.ts";

const hex = (n: number) => `0x${n.toString(16)}`;
const port = (p: PortSpec) => (typeof p === "number" ? `${p}` : `${p[0]}:${p[1]}`);
const not = (m: { neg: boolean }) => (m.neg ? "! " : "");

function match(m: Match): string {
  switch (m.kind) {
    case "daddr":
      return `${not(m)}-d ${m.values[0]}`;
    case "saddr":
      return `${not(m)}-s ${m.values[0]}`;
    case "dport":
      return m.values.length === 1
        ? `-m tcp ${not(m)}--dport ${port(m.values[0]!)}`
        : `-m multiport ${not(m)}--dports ${m.values.map(port).join(",")}`;
    case "mark":
      return `-m mark ${not(m)}--mark ${hex(m.value)}`;
    case "uid":
      return `-m owner ${not(m)}--uid-owner ${m.value}`;
    case "random":
      return "-m statistic --mode random --probability 0.5";
    case "nth":
      return "-m statistic --mode nth --every 2 --packet 0";
    case "inDynSet":
      throw new Error("dynamic sets are nft only");
  }
}

function natTo(to: NatTo): string {
  const v6 = to.addr?.[0].includes(":") ?? false;
  let s = "";
  if (to.addr !== undefined) {
    const [lo, hi] = to.addr;
    const range = lo === hi ? lo : `${lo}-${hi}`;
    s = v6 && to.port !== undefined ? `[${range}]` : range;
  }
  if (to.port !== undefined) {
    s += to.port[0] === to.port[1] ? `:${to.port[0]}` : `:${to.port[0]}-${to.port[1]}`;
  }
  return s;
}

function action(a: Action): string {
  switch (a.kind) {
    case "dnat":
      return `-j DNAT --to-destination ${natTo(a.to)}`;
    case "redirect":
      return a.port === undefined ? "-j REDIRECT" : `-j REDIRECT --to-ports ${a.port[0]}`;
    case "jump":
      return `-j ${a.chain}`;
    case "goto":
      return `-g ${a.chain}`;
    case "return":
    case "accept":
    case "drop":
      return `-j ${a.kind.toUpperCase()}`;
    case "setMark":
      return `-j MARK --set-xmark ${hex(a.value)}/0xffffffff`;
    case "notrack":
      return "-j CT --notrack";
    default:
      throw new Error(`${a.kind} is nft only`);
  }
}

function needsTcp(r: Rule): boolean {
  const a = r.action;
  return r.matches.some((m) => m.kind === "dport") ||
    (a.kind === "dnat" && a.to.port !== undefined) ||
    (a.kind === "redirect" && a.port !== undefined);
}

function table(t: Table): string {
  const out = [`*${t.name}`];
  for (const base of ["PREROUTING", "OUTPUT"]) out.push(`:${base} ACCEPT [0:0]`);
  for (const c of t.chains) if (c.base === undefined) out.push(`:${c.name} - [0:0]`);
  for (const c of t.chains) {
    for (const r of c.rules) {
      const parts = [`-A ${c.name}`];
      if (needsTcp(r)) parts.push("-p tcp");
      parts.push(...r.matches.map(match), action(r.action));
      out.push(parts.join(" "));
    }
  }
  out.push("COMMIT");
  return out.join("\n");
}

/** The iptables-restore texts of `rs`: IPv4 and, when it has `ip6` tables, IPv6. */
export function renderIptables(rs: RuleSet): { v4: string; v6?: string } {
  const text = (family: string) => {
    const ts = rs.tables.filter((t) => t.family === family);
    return ts.length === 0 ? undefined : ts.map(table).join("\n") + "\n";
  };
  const v4 = text("ip") ?? "";
  const v6 = text("ip6");
  return v6 === undefined ? { v4 } : { v4, v6 };
}
