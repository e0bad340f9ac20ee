/**
 * A namespace pair for asking the kernel what its NAT rules do to a SYN:
 * a "node" namespace, where rule sets are loaded and conntrack is read, and
 * a "client" namespace, joined to it by a veth, that sends SYNs into the
 * node's PREROUTING. The node sends its own SYNs through OUTPUT. Made once
 * ({@linkcode withNatLab}) and reused for any number of rule sets.
 *
 * Addresses (documentation ranges, only inside the two namespaces):
 *
 * | where | IPv4 | IPv6 |
 * |---|---|---|
 * | client, veth `vc0` | 198.51.100.1, .10, .11 /24 | 2001:db8::1, ::10 /64 |
 * | node, veth `vn0` | 198.51.100.2/24 | 2001:db8::2/64 |
 * | node, `lo` (local VIPs; this kernel has no dummy links) | 203.0.113.1, 203.0.113.2 | 2001:db8:1::1 |
 *
 * Each side routes everything else to the other (the node forwards,
 * rp_filter off), so a SYN to any address is either delivered locally or
 * forwarded: conntrack confirms its entry either way (at INPUT or
 * POSTROUTING). The client drops every TCP packet it receives (its input
 * hook), so nothing it gets back changes the node's entries.
 *
 * Per probe ({@linkcode NatLab.probe}): one SYN from a raw socket
 * (`raw_syn.ts`; no retransmission, no process), its entry found by its
 * NEW event (`ct_table.ts`) and turned into an {@linkcode Observation}.
 * Rule sets load through libnftables in this process (`nft_run.ts`) and,
 * for iptables shapes, `iptables-nft-restore` / `ip6tables-nft-restore`.
 *
 * End-to-end tests can use the same pair: `node` and `client` are ordinary
 * {@linkcode Netns} handles (`exec`, `spawn` real clients and servers, run
 * the agent in `node`), {@linkcode NatLab.load} sets the rules and
 * {@linkcode NatLab.entries} dumps the node's table.
 *
 * The namespaces are deleted when the callback ends, throws, or the
 * process gets SIGINT/SIGTERM.
 *
 * @example
 * ```ts ignore
 * // ignore: needs root and network namespaces.
 * import { withNatLab } from "./lab.ts";
 * await withNatLab(async (lab) => {
 *   await lab.load({ nft: "table ip t { chain p { type nat hook prerouting priority -100; " +
 *     "ip daddr 203.0.113.10 tcp dport 80 dnat to 192.0.2.7:8080 } }" });
 *   const [o] = await lab.probe([{ hook: "prerouting", src: "198.51.100.1",
 *     dst: "203.0.113.10", sport: 40000, dport: 80 }]);
 *   console.log(o); // { kind: "entry", dnat: true, addr: "192.0.2.7", port: 8080 }
 * });
 * ```
 *
 * @module
 */
import { addressBytes, formatAddress } from "../../lib/model/addr.ts";
import type { ConntrackEntry } from "../../lib/netlink/conntrack_entry.ts";
import { IPS_DST_NAT } from "../../lib/netlink/ctnetlink.ts";
import { insideNetns } from "../ctnetlink.ts";
import { type Netns, withNetns } from "../netns.ts";
import { CtTable } from "./ct_table.ts";
import { runNft } from "./nft_run.ts";
import { RawSynSender } from "./raw_syn.ts";

/** The lab's fixed addresses (see the module doc). */
export const LAB = {
  client4: ["198.51.100.1", "198.51.100.10", "198.51.100.11"],
  client6: ["2001:db8::1", "2001:db8::10"],
  node4: "198.51.100.2",
  node6: "2001:db8::2",
  localVip4: ["203.0.113.1", "203.0.113.2"],
  localVip6: ["2001:db8:1::1"],
} as const;

/** One SYN to send: from the client (`prerouting`) or from the node itself (`output`). */
export interface Probe {
  hook: "prerouting" | "output";
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** For `output`: the sending socket's uid (owner matches). Default 0. */
  uid?: number;
}

/**
 * What the kernel did with a probe: `entry` (conntrack created one; `dnat`
 * is its `IPS_DST_NAT` bit, `addr`:`port` the reply tuple's source, i.e.
 * the destination it was translated to, or the original one), `none` (no
 * entry: dropped before conntrack or before confirmation), `refused` (an
 * OUTPUT probe dropped by the node's rules inside `sendto`).
 */
export type Observation =
  | { kind: "entry"; dnat: boolean; addr: string; port: number }
  | { kind: "none" }
  | { kind: "refused" };

/** A rule set to load: any of native nft text and iptables-restore text per family. */
export interface LoadSpec {
  nft?: string | undefined;
  iptables?: string | undefined;
  ip6tables?: string | undefined;
}

/**
 * Loaded with every rule set: keeps conntrack on for both families. The
 * kernel tracks a family in a namespace only while something needs it (a
 * NAT or `ct` expression of that family, an xtables NAT target); a nat
 * chain without any NAT rule, or an `inet` table whose rules all NAT IPv6,
 * would leave the other family untracked, unlike any node the agent runs
 * on. An INPUT chain: no NAT question's hook ever sees it.
 */
const CONNTRACK_ON = `table inet lab_conntrack {
  chain input {
    type filter hook input priority 0; policy accept;
    ct state invalid counter
  }
}
`;

/** How long {@linkcode NatLab.probe} waits for entries that have not appeared. */
const SETTLE_MS = 25;

/** The namespace pair; valid inside {@linkcode withNatLab}'s callback. */
export class NatLab {
  readonly node: Netns;
  readonly client: Netns;
  readonly #ct: CtTable;
  readonly #fromNode: RawSynSender;
  readonly #fromClient: RawSynSender;

  constructor(node: Netns, client: Netns) {
    this.node = node;
    this.client = client;
    this.#ct = new CtTable(node.name);
    this.#fromNode = new RawSynSender(node.name);
    this.#fromClient = new RawSynSender(client.name);
  }

  /** Runs `fn` (synchronous) with this thread inside the node namespace, e.g. to open a reader's socket. */
  inNode<T>(fn: () => T): T {
    return insideNetns(this.node.name, fn);
  }

  /** Runs nft commands in the node namespace (libnftables); returns what nft printed. */
  nft(script: string): string {
    return runNft(this.node.name, script);
  }

  /**
   * Replaces the node's whole ruleset: `flush ruleset`, then the iptables
   * parts (`iptables-nft-restore`, `ip6tables-nft-restore`), then the nft
   * part and the lab's own `inet lab_conntrack` table (an INPUT chain that
   * keeps conntrack on); then empties its conntrack table. Throws with the
   * tool's message when a part is rejected.
   */
  async load(spec: LoadSpec): Promise<void> {
    this.nft("flush ruleset");
    for (
      const [tool, text] of [["iptables-nft-restore", spec.iptables], [
        "ip6tables-nft-restore",
        spec.ip6tables,
      ]] as const
    ) {
      if (text === undefined) continue;
      const r = await this.node.exec([tool], { stdin: text });
      if (r.code !== 0) throw new Error(`${tool} failed: ${r.stderr.trim()}`);
    }
    this.nft((spec.nft ?? "") + CONNTRACK_ON);
    await this.#ct.flush();
    this.#ct.created();
  }

  /**
   * Sends every probe's SYN, then reads what conntrack made of each. Source
   * ports must be unique within one call.
   */
  async probe(probes: readonly Probe[]): Promise<Observation[]> {
    const keyOf = (family: string, sport: number) => `${family}/${sport}`;
    const index = new Map<string, number>();
    const out: (Observation | undefined)[] = probes.map(() => undefined);
    this.#ct.created(); // whatever older SYNs left
    probes.forEach((p, i) => {
      const src = bytes(p.src), dst = bytes(p.dst);
      const key = keyOf(src.length === 4 ? "ipv4" : "ipv6", p.sport);
      if (index.has(key)) throw new Error(`two probes with source port ${p.sport}`);
      index.set(key, i);
      const sender = p.hook === "output" ? this.#fromNode : this.#fromClient;
      const syn = { src, dst, sport: p.sport, dport: p.dport, uid: p.uid ?? 0 };
      if (!sender.send(syn)) out[i] = { kind: "refused" };
    });
    const deadline = performance.now() + SETTLE_MS;
    for (;;) {
      for (const e of this.#ct.created()) {
        const i = index.get(keyOf(e.family, e.sport));
        if (i === undefined || e.src !== canonical(probes[i]!.src) || e.replySrc === "") continue;
        out[i] = {
          kind: "entry",
          dnat: (e.status & IPS_DST_NAT) !== 0,
          addr: e.replySrc,
          port: e.replySport,
        };
      }
      if (out.every((o) => o !== undefined) || performance.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    return out.map((o) => o ?? { kind: "none" });
  }

  /**
   * The node's whole conntrack table now (a netlink dump), e.g. for an
   * end-to-end test that runs real clients in `client` with `client.spawn`.
   */
  entries(): Promise<ConntrackEntry[]> {
    return this.#ct.dump();
  }

  /** Closes the sockets (the namespaces go with {@linkcode withNatLab}). */
  close(): void {
    this.#ct.close();
    this.#fromNode.close();
    this.#fromClient.close();
  }
}

function bytes(a: string): Uint8Array {
  const b = addressBytes(a.includes(":") ? "ipv6" : "ipv4", a);
  if (b === undefined) throw new Error(`bad address ${a}`);
  return b;
}

function canonical(a: string): string {
  return formatAddress(bytes(a));
}

async function must(ns: Netns, cmd: string[], stdin?: string): Promise<void> {
  const r = await ns.exec(cmd, stdin === undefined ? {} : { stdin });
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} in ${ns.name}: ${r.stderr.trim()}`);
}

async function setUp(node: Netns, client: Netns): Promise<void> {
  const nodeBatch = [
    `link add vn0 type veth peer name vc0 netns ${client.name}`,
    `addr add ${LAB.node4}/24 dev vn0`,
    `addr add ${LAB.node6}/64 dev vn0 nodad`,
    "link set vn0 up",
    ...LAB.localVip4.map((a) => `addr add ${a}/32 dev lo`),
    ...LAB.localVip6.map((a) => `addr add ${a}/128 dev lo nodad`),
    `route add default via ${LAB.client4[0]} dev vn0 onlink`,
    `route add ::/0 via ${LAB.client6[0]} dev vn0 onlink`,
  ];
  await must(node, ["ip", "-batch", "-"], nodeBatch.join("\n") + "\n");
  const clientBatch = [
    ...LAB.client4.map((a) => `addr add ${a}/24 dev vc0`),
    ...LAB.client6.map((a) => `addr add ${a}/64 dev vc0 nodad`),
    "link set vc0 up",
    `route add default via ${LAB.node4} dev vc0 onlink`,
    `route add ::/0 via ${LAB.node6} dev vc0 onlink`,
  ];
  await must(client, ["ip", "-batch", "-"], clientBatch.join("\n") + "\n");
  await must(node, [
    "sysctl",
    "-q",
    "-w",
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
    "net.ipv4.conf.vn0.rp_filter=0",
  ]);
  runNft(
    client.name,
    "table inet lab_client {\n chain input {\n type filter hook input priority 0;\n meta l4proto tcp drop\n }\n}\n",
  );
}

/**
 * Makes the namespace pair, runs `fn` with it, and deletes both namespaces
 * afterwards (also when `fn` throws, and on SIGINT/SIGTERM meanwhile).
 */
export function withNatLab<T>(fn: (lab: NatLab) => Promise<T>): Promise<T> {
  return withNetns("natlab-node", (node) =>
    withNetns("natlab-client", async (client) => {
      const onSignal = () => {
        for (const ns of [node, client]) {
          new Deno.Command("ip", { args: ["netns", "del", ns.name] }).outputSync();
        }
        Deno.exit(130);
      };
      const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
      for (const s of signals) Deno.addSignalListener(s, onSignal);
      let lab: NatLab | undefined;
      try {
        await setUp(node, client);
        lab = new NatLab(node, client);
        return await fn(lab);
      } finally {
        lab?.close();
        for (const s of signals) Deno.removeSignalListener(s, onSignal);
      }
    }));
}
