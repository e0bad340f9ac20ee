/**
 * Seeded random NAT rule sets for the differential test, with the SYNs to
 * probe them with. One seed gives one {@linkcode NatCase}, always the same:
 * a native nft rule set, an iptables-nft one, or both at once (an
 * iptables-nft nat table and an nft nat table at the same priority).
 *
 * Covered: addresses, prefixes and anonymous sets, ports, port ranges and
 * port sets, negations, jumps, gotos, returns, accepts, drops, nested user
 * chains (jumps only go to later chains: no loops), random choices
 * (`numgen random` / `statistic random`) and packet-path state (`numgen
 * inc` / `statistic nth`, dynamic sets updated from the packet path),
 * concatenated maps (`dnat to ip daddr . tcp dport map`) and verdict maps,
 * marks set before nat (a filter chain at priority -150 / the mangle table)
 * and inside nat chains, drops and NOTRACK before conntrack (priority -300 /
 * the raw table), owner matches, several nat chains at one hook with equal
 * or different priorities, identity DNAT (to its own destination), DNAT
 * without a port, address and port ranges, REDIRECT with and without a
 * port. Each rule set is small (a few chains, at most about 20 rules).
 *
 * @module
 */
import type { LoadSpec, Probe } from "./lab.ts";
import type { Action, Chain, IpVersion, Match, NatTo, Rule, RuleSet, Table } from "./model.ts";
import { POOL, Rng } from "./model.ts";
import { renderNft } from "./render_nft.ts";
import { renderIptables } from "./render_iptables.ts";

/** One generated case: the rule sets, how to load them, and the probes. */
export interface NatCase {
  seed: number;
  ruleSets: RuleSet[];
  load: LoadSpec;
  probes: Probe[];
}

interface Ctx {
  rng: Rng;
  style: "nft" | "iptables";
  table: Table;
  chain: Chain;
  /** User chains this chain may jump to. */
  later: string[];
  versions: readonly IpVersion[];
}

function addrValue(rng: Rng, ip: IpVersion, which: "d" | "s"): string {
  if (which === "d") {
    return rng.chance(0.2)
      ? rng.pick(ip === 4 ? POOL.vipPrefix4 : POOL.vipPrefix6)
      : rng.pick(ip === 4 ? POOL.vip4 : POOL.vip6);
  }
  return rng.chance(0.2)
    ? rng.pick(ip === 4 ? POOL.clientPrefix4 : POOL.clientPrefix6)
    : rng.pick(ip === 4 ? [...POOL.client4, ...POOL.node4] : [...POOL.client6, ...POOL.node6]);
}

function genMatch(c: Ctx, ip: IpVersion | undefined): Match | undefined {
  const { rng } = c;
  const nft = c.style === "nft";
  const isOutputBase = c.chain.base?.hook === "output";
  const kind = rng.weighted({
    daddr: ip === undefined ? 0 : 40,
    saddr: ip === undefined ? 0 : 10,
    dport: 30,
    mark: 8,
    // iptables accepts the owner match only in OUTPUT (and POSTROUTING) chains.
    uid: nft || isOutputBase ? 6 : 0,
    random: 5,
    nth: 2,
    inDynSet: nft && c.table.dynSet && ip === 4 ? 6 : 0,
  });
  const neg = rng.chance(0.25);
  switch (kind) {
    case "daddr":
    case "saddr": {
      // iptables: one address per match (`! -d a,b` is refused).
      const n = nft && rng.chance(0.2) ? 2 : 1;
      const which = kind === "daddr" ? "d" : "s";
      const values = [...new Set(Array.from({ length: n }, () => addrValue(rng, ip!, which)))];
      return { kind, neg, values };
    }
    case "dport": {
      const n = rng.chance(0.2) ? 2 : 1;
      const one = () => (rng.chance(0.2) ? rng.pick(POOL.portRanges) : rng.pick(POOL.ports));
      const values = [...new Set(Array.from({ length: n }, one))];
      return { kind, neg, values };
    }
    case "mark":
      return { kind, neg, value: rng.pick(POOL.marks) };
    case "uid":
      return { kind, neg, value: rng.pick(POOL.uids) };
    case "random":
    case "nth":
      return { kind };
    case "inDynSet":
      return { kind, neg };
  }
}

function genNatTo(rng: Rng, ip: IpVersion, matches: readonly Match[]): NatTo {
  const daddr = matches.find((m) => m.kind === "daddr" && !m.neg && m.values.length === 1);
  const dport = matches.find((m) => m.kind === "dport" && !m.neg && m.values.length === 1);
  if (
    daddr?.kind === "daddr" && dport?.kind === "dport" && !daddr.values[0]!.includes("/") &&
    typeof dport.values[0] === "number" && rng.chance(0.15)
  ) {
    // Identity DNAT: to its own destination.
    return { addr: [daddr.values[0]!, daddr.values[0]!], port: [dport.values[0], dport.values[0]] };
  }
  const targets = ip === 4 ? POOL.target4 : POOL.target6;
  const to: { addr?: readonly [string, string]; port?: readonly [number, number] } = {};
  const r = rng.next();
  if (r < 0.15) to.addr = ip === 4 ? POOL.targetRange4 : POOL.targetRange6;
  else {
    const a = rng.pick(targets);
    to.addr = [a, a];
  }
  const p = rng.next();
  if (p < 0.55) {
    const port = rng.pick(POOL.targetPorts);
    to.port = [port, port];
  } else if (p < 0.7) to.port = [8000, 8002];
  return to;
}

function genAction(c: Ctx, ip: IpVersion | undefined, matches: readonly Match[]): Action {
  const { rng } = c;
  const nft = c.style === "nft";
  const user = c.chain.base === undefined;
  const nat = c.chain.base === undefined || c.chain.base.type === "nat";
  if (!nat) {
    // A chain before nat (mangle/raw): marks, drops, NOTRACK.
    const raw = c.chain.base!.priority <= -200;
    const k = rng.weighted({ setMark: raw ? 0 : 6, drop: 2, notrack: raw ? 2 : 0, accept: 1 });
    if (k === "setMark") return { kind: k, value: rng.pick(POOL.marks) };
    return { kind: k };
  }
  const hasLater = c.later.length > 0;
  const k = rng.weighted({
    dnat: ip === undefined ? 0 : 30,
    redirect: 7,
    jump: hasLater ? 14 : 0,
    goto: hasLater ? 6 : 0,
    return: user ? 6 : 1,
    accept: 4,
    // iptables refuses DROP in the nat table.
    drop: nft ? 1 : 0,
    setMark: 6,
    updateDynSet: nft && c.table.dynSet && ip === 4 ? 5 : 0,
    dnatMap: nft && ip !== undefined ? 5 : 0,
    vmap: nft && ip !== undefined && hasLater ? 5 : 0,
    numgenVmap: nft && c.later.length >= 2 ? 4 : 0,
    numgenDnat: nft && ip !== undefined ? 3 : 0,
  });
  const vips = ip === 6 ? POOL.vip6 : POOL.vip4;
  const targets = ip === 6 ? POOL.target6 : POOL.target4;
  switch (k) {
    case "dnat":
      return { kind: k, to: genNatTo(rng, ip!, matches) };
    case "redirect":
      return rng.chance(0.6) ? { kind: k, port: [9000, 9000] } : { kind: k };
    case "jump":
    case "goto":
      return { kind: k, chain: rng.pick(c.later) };
    case "return":
    case "accept":
    case "drop":
    case "updateDynSet":
      return { kind: k };
    case "setMark":
      return { kind: k, value: rng.pick(POOL.marks) };
    case "dnatMap": {
      const entries = vips.slice(0, 3).map((daddr, i) => ({
        daddr,
        dport: POOL.ports[i % 2]!,
        addr: targets[i]!,
        port: POOL.targetPorts[i]!,
      }));
      return { kind: k, entries: entries.slice(0, rng.int(1, 3)) };
    }
    case "vmap": {
      const entries = vips.slice(0, 3).map((daddr, i) => ({
        daddr,
        dport: POOL.ports[i % 2]!,
        verdict: rng.chance(0.7) ? "jump" as const : "goto" as const,
        chain: rng.pick(c.later),
      }));
      return { kind: k, entries };
    }
    case "numgenVmap":
      return { kind: k, verdict: rng.chance(0.7) ? "jump" : "goto", chains: c.later.slice(0, 2) };
    case "numgenDnat":
      return { kind: k, addrs: [targets[0]!, targets[1]!] };
  }
}

function genRule(c: Ctx): Rule {
  const { rng } = c;
  const ip: IpVersion | undefined = rng.chance(0.85) ? rng.pick(c.versions) : undefined;
  const matches: Match[] = [];
  const n = rng.weighted({ 0: 1, 1: 4, 2: 4, 3: 2 });
  for (let i = 0; i < Number(n); i++) {
    const m = genMatch(c, ip);
    if (m === undefined) continue;
    // iptables takes one -d and one -s per rule.
    if (
      c.style === "iptables" &&
      matches.some((o) => o.kind === m.kind && (m.kind === "daddr" || m.kind === "saddr"))
    ) continue;
    matches.push(m);
  }
  const action = genAction(c, ip, matches);
  const usesIp = ip !== undefined &&
    (matches.some((m) => m.kind === "daddr" || m.kind === "saddr" || m.kind === "inDynSet") ||
      ["dnat", "dnatMap", "vmap", "numgenDnat", "updateDynSet"].includes(action.kind));
  return usesIp ? { ip, matches, action } : { matches, action };
}

function genNatTable(
  rng: Rng,
  style: "nft" | "iptables",
  family: Table["family"],
  name: string,
  priority: number,
): Table {
  const versions: IpVersion[] = family === "ip" ? [4] : family === "ip6" ? [6] : [4, 6];
  const table: Table = { family, name, chains: [], dynSet: style === "nft" && rng.chance(0.3) };
  const nUser = rng.int(0, 3);
  const userNames = Array.from(
    { length: nUser },
    (_, i) => (style === "nft" ? `c${i + 1}` : `C${i + 1}`),
  );
  const bases: Chain[] = [];
  const hooks = rng.chance(0.75)
    ? ["prerouting", "output"] as const
    : [rng.pick(["prerouting", "output"] as const)];
  for (const hook of hooks) {
    const chainName = style === "nft" ? hook.slice(0, 3) : hook.toUpperCase();
    bases.push({ name: chainName, base: { hook, type: "nat", priority }, rules: [] });
  }
  const users: Chain[] = userNames.map((n) => ({ name: n, rules: [] }));
  table.chains.push(...bases, ...users);
  for (const chain of table.chains) {
    const idx = userNames.indexOf(chain.name);
    const later = idx < 0 ? userNames : userNames.slice(idx + 1);
    const ctx: Ctx = { rng, style, table, chain, later, versions };
    const n = rng.int(1, chain.base === undefined ? 3 : 5);
    for (let i = 0; i < n; i++) chain.rules.push(genRule(ctx));
  }
  return table;
}

function genPreTable(rng: Rng, style: "nft" | "iptables", family: "ip" | "ip6"): Table[] {
  const versions: IpVersion[] = family === "ip" ? [4] : [6];
  const out: Table[] = [];
  for (const [name, priority] of [["mangle", -150], ["raw", -300]] as const) {
    if (!rng.chance(name === "mangle" ? 0.35 : 0.15)) continue;
    const table: Table = {
      family,
      name: style === "nft" ? `pre_${name}` : name,
      chains: [],
      dynSet: false,
    };
    for (const hook of ["prerouting", "output"] as const) {
      const chain: Chain = {
        name: style === "nft" ? hook.slice(0, 3) : hook.toUpperCase(),
        base: { hook, type: "filter", priority },
        rules: [],
      };
      const ctx: Ctx = { rng, style, table, chain, later: [], versions };
      for (let i = rng.int(1, 2); i > 0; i--) chain.rules.push(genRule(ctx));
      table.chains.push(chain);
    }
    out.push(table);
  }
  return out;
}

function genProbes(rng: Rng, versions: readonly IpVersion[]): Probe[] {
  const probes: Probe[] = [];
  for (let i = 0; i < 20; i++) {
    const ip = rng.chance(versions.includes(6) ? (versions.includes(4) ? 0.3 : 1) : 0) ? 6 : 4;
    const hook = rng.chance(0.6) ? "prerouting" : "output";
    const src = hook === "prerouting"
      ? rng.pick(ip === 4 ? POOL.client4 : POOL.client6)
      : rng.pick(ip === 4 ? POOL.node4 : POOL.node6);
    const dst = rng.pick(
      ip === 4 ? [...POOL.vip4, "203.0.113.9", "203.0.113.13"] : [...POOL.vip6, "2001:db8:1::5"],
    );
    const dport = rng.chance(0.85) ? rng.pick(POOL.ports) : rng.pick([8050, 22, 2000]);
    const p: Probe = { hook, src, dst, sport: 20000 + i, dport };
    if (hook === "output" && rng.chance(0.4)) p.uid = rng.pick(POOL.uids);
    probes.push(p);
  }
  return probes;
}

/** The case for `seed` (deterministic). */
export function generateCase(seed: number): NatCase {
  const rng = new Rng(seed);
  const style = rng.weighted({ nft: 5, iptables: 4, mixed: 2 });
  const ruleSets: RuleSet[] = [];
  const load: LoadSpec = {};
  let versions: IpVersion[] = [4];
  if (style === "iptables" || style === "mixed") {
    const v6 = rng.chance(0.3);
    const tables = [
      ...genPreTable(rng, "iptables", "ip"),
      genNatTable(rng, "iptables", "ip", "nat", -100),
    ];
    if (v6) tables.push(genNatTable(rng, "iptables", "ip6", "nat", -100));
    if (v6) versions = [4, 6];
    const rs: RuleSet = { style: "iptables", tables };
    ruleSets.push(rs);
    const text = renderIptables(rs);
    load.iptables = text.v4;
    if (text.v6 !== undefined) load.ip6tables = text.v6;
  }
  if (style === "nft" || style === "mixed") {
    const family = rng.weighted({ ip: 5, inet: 4, ip6: style === "nft" ? 1 : 0 });
    const tables: Table[] = [];
    if (style === "nft") tables.push(...genPreTable(rng, "nft", family === "ip6" ? "ip6" : "ip"));
    const prio = style === "mixed" ? -100 : rng.pick([-100, -100, -110, -90]);
    tables.push(genNatTable(rng, "nft", family, "natA", prio));
    if (style === "nft" && rng.chance(0.4)) {
      tables.push(
        genNatTable(rng, "nft", family, "natB", rng.chance(0.7) ? prio : rng.pick([-120, -80])),
      );
    }
    if (family !== "ip") {
      versions = family === "ip6" && style === "nft"
        ? [6]
        : [...new Set([...versions, 4, 6])] as IpVersion[];
    }
    const rs: RuleSet = { style: "nft", tables };
    ruleSets.push(rs);
    load.nft = renderNft(rs);
  }
  return { seed, ruleSets, load, probes: genProbes(rng, versions) };
}

/** The case as text to print and replay: its seed and what was loaded. */
export function describeCase(c: NatCase): string {
  const parts = [`seed ${c.seed}`];
  if (c.load.iptables !== undefined) parts.push(`--- iptables-restore\n${c.load.iptables}`);
  if (c.load.ip6tables !== undefined) parts.push(`--- ip6tables-restore\n${c.load.ip6tables}`);
  if (c.load.nft !== undefined) parts.push(`--- nft\n${c.load.nft}`);
  return parts.join("\n");
}
