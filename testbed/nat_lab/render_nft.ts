/**
 * A generated {@linkcode RuleSet} as `nft -f` text (native nftables). In
 * `inet` tables NAT statements name their family (`dnat ip to …`); a NAT
 * statement with a port, and REDIRECT to a port, get `meta l4proto tcp`
 * when no `tcp dport` match gives nft the protocol.
 *
 * @module
 */
import type { Action, Match, NatTo, PortSpec, Rule, RuleSet, Table } from "./model.ts";

const hex = (n: number) => `0x${n.toString(16)}`;
const port = (p: PortSpec) => (typeof p === "number" ? `${p}` : `${p[0]}-${p[1]}`);
const many = (xs: readonly string[]) => (xs.length === 1 ? xs[0]! : `{ ${xs.join(", ")} }`);

function match(m: Match, ip: "ip" | "ip6"): string {
  const op = "neg" in m && m.neg ? "!= " : "";
  switch (m.kind) {
    case "daddr":
    case "saddr":
      return `${ip} ${m.kind} ${op}${many(m.values)}`;
    case "dport":
      return `tcp dport ${op}${many(m.values.map(port))}`;
    case "mark":
      return `meta mark ${op}${hex(m.value)}`;
    case "uid":
      return `meta skuid ${op}${m.value}`;
    case "random":
      return "numgen random mod 2 0";
    case "nth":
      return "numgen inc mod 2 0";
    case "inDynSet":
      return `ip saddr ${op}@dyn`;
  }
}

function natAddr(a: string, withPort: boolean): string {
  return a.includes(":") && withPort ? `[${a}]` : a;
}

function natTo(to: NatTo): string {
  const withPort = to.port !== undefined;
  let s = "";
  if (to.addr !== undefined) {
    const [lo, hi] = to.addr;
    s = lo === hi ? natAddr(lo, withPort) : `${natAddr(lo, withPort)}-${natAddr(hi, withPort)}`;
  }
  if (to.port !== undefined) {
    s += to.port[0] === to.port[1] ? `:${to.port[0]}` : `:${to.port[0]}-${to.port[1]}`;
  }
  return s;
}

function action(a: Action, family: Table["family"], ip: "ip" | "ip6", hasTcp: boolean): string {
  const fam = family === "inet" ? ` ${ip}` : "";
  const tcp = hasTcp ? "" : "meta l4proto tcp ";
  switch (a.kind) {
    case "dnat":
      return `${a.to.port !== undefined ? tcp : ""}dnat${fam} to ${natTo(a.to)}`;
    case "redirect":
      return a.port === undefined ? "redirect" : `${tcp}redirect to :${a.port[0]}`;
    case "jump":
    case "goto":
      return `${a.kind} ${a.chain}`;
    case "return":
    case "accept":
    case "drop":
    case "notrack":
      return a.kind;
    case "setMark":
      return `meta mark set ${hex(a.value)}`;
    case "updateDynSet":
      return "update @dyn { ip saddr }";
    case "dnatMap": {
      const elems = a.entries.map((e) =>
        `${e.daddr} . ${e.dport} : ${natAddr(e.addr, false)} . ${e.port}`
      );
      return `dnat ${ip} addr . port to ${ip} daddr . tcp dport map { ${elems.join(", ")} }`;
    }
    case "vmap": {
      const elems = a.entries.map((e) => `${e.daddr} . ${e.dport} : ${e.verdict} ${e.chain}`);
      return `${ip} daddr . tcp dport vmap { ${elems.join(", ")} }`;
    }
    case "numgenVmap": {
      const elems = a.chains.map((c, i) => `${i} : ${a.verdict} ${c}`);
      return `numgen random mod ${a.chains.length} vmap { ${elems.join(", ")} }`;
    }
    case "numgenDnat": {
      const elems = a.addrs.map((x, i) => `${i} : ${x}`);
      return `dnat${fam} to numgen random mod ${a.addrs.length} map { ${elems.join(", ")} }`;
    }
  }
}

function rule(r: Rule, t: Table): string {
  const ip = r.ip === 6 || (r.ip === undefined && t.family === "ip6") ? "ip6" : "ip";
  const hasTcp = r.matches.some((m) => m.kind === "dport");
  return [...r.matches.map((m) => match(m, ip)), action(r.action, t.family, ip, hasTcp)].join(" ");
}

/** The nft text of `rs` (tables only: the caller flushes first). */
export function renderNft(rs: RuleSet): string {
  const out: string[] = [];
  for (const t of rs.tables) {
    out.push(`table ${t.family} ${t.name} {`);
    if (t.dynSet) {
      out.push("  set dyn {", "    type ipv4_addr", "    flags dynamic", "  }");
    }
    for (const c of t.chains) {
      out.push(`  chain ${c.name} {`);
      if (c.base !== undefined) {
        const b = c.base;
        out.push(`    type ${b.type} hook ${b.hook} priority ${b.priority}; policy accept;`);
      }
      for (const r of c.rules) out.push(`    ${rule(r, t)}`);
      out.push("  }");
    }
    out.push("}");
  }
  return out.join("\n") + "\n";
}
