/**
 * The node set-ups of issue 19's table for tests/e2e/nat_rules_e2e_test.ts
 * (which says what must hold): the rows' clients, addresses and rules, each
 * run in namespaces of its own (testbed/slow_net.ts) with the agent at
 * default settings or without it, and what the node saw (sessions'
 * results, conntrack events, the table at the end, the agent's log).
 *
 * @module
 */
import type { Netns } from "../../testbed/netns.ts";
import type { SessionRequest } from "../../testbed/tcp_session.ts";
import { type FakeApiProcess, startFakeApiIn } from "../../testbed/kube_net.ts";
import { endpointSlice, service } from "../../testbed/kube_objects.ts";
import { type CtEntry, listEntries, startAgent } from "../../testbed/stuck_client.ts";
import {
  BACKEND_PORT,
  type CtEvent,
  type SessionResult,
  sessionsTogether,
  SLOW_ADDRESSES,
  type SlowNet,
  type SlowNetOptions,
  VIP_PORT,
  withSlowNet,
} from "../../testbed/slow_net.ts";
import {
  applyShape,
  NAT_SHAPES,
  type NatShape,
  type ShapeOptions,
  type ShapeService,
} from "../../testbed/nat_shapes.ts";

/** How late the real server's frames reach the node. */
export const DELAY_MS = 3000;
/** When the rule appears (or moves), after the first SYN. */
export const RULE_AT_MS = 2000;
/** Without the agent, the stuck rows must not connect before this (the session then stops). */
export const STUCK_FOR_MS = 6000;
export const STUCK_SPORT = 40000;
const WATCHED_PORTS = [41001, 41002, 41003];
/** The transparent proxy's user and port (Istio's). */
export const PROXY_UID = 1337;
export const PROXY_PORT = 15001;
export const FAMILIES = ["ipv4", "ipv6"] as const;
export type Family = typeof FAMILIES[number];
export const A = SLOW_ADDRESSES;
/** Addresses beyond slow_net's: VIP2 (row 2), a second live endpoint, the dead endpoint. */
export const MORE: Record<Family, { vip2: string; live2: string; dead: string; len: number }> = {
  ipv4: { vip2: "198.19.0.11", live2: "198.18.2.3", dead: "198.18.2.9", len: 24 },
  ipv6: { vip2: "2001:db8:cafe::11", live2: "2001:db8:2::3", dead: "2001:db8:2::9", len: 64 },
};
const SHAPE_OPTIONS: ShapeOptions = {
  clusterCidr: { ipv4: A.ipv4.subnetA, ipv6: A.ipv6.subnetA },
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const side = (withAgent: boolean) => withAgent ? "with" : "without";

/** What one run of a node set-up saw. */
export interface Run {
  label: string;
  withAgent: boolean;
  results: Map<string, SessionResult>;
  /** When the rule change started (epoch ms), for rows 1 and 2. */
  ruleAt: number;
  events: CtEvent[];
  last: CtEntry[];
  logs: Record<string, unknown>[];
  exit: number | undefined;
}

/** Waits until the agent logs that its Kubernetes view is live (8 s at most). */
async function viewLive(logs: Record<string, unknown>[]): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < 8000) {
    if (logs.some((l) => l.msg === "Kubernetes Services view is live")) return;
    await sleep(50);
  }
  throw new Error(`the Kubernetes view never went live: ${JSON.stringify(logs)}`);
}

/**
 * The topology, `setup` (rules; it returns the agent's arguments beyond the
 * defaults: none but `--kubeconfig` of a fake API), the event watch, the
 * agent or none, then `body`; `close` (if `setup` gives one) at the end.
 */
async function observe(
  label: string,
  name: string,
  options: SlowNetOptions,
  withAgent: boolean,
  setup: (net: SlowNet) => Promise<{ args: string[]; close?: () => Promise<void> }>,
  body: (net: SlowNet) => Promise<{ results: Map<string, SessionResult>; ruleAt: number }>,
): Promise<Run> {
  return await withSlowNet(name, options, async (net) => {
    const { args, close } = await setup(net);
    let agent: ReturnType<typeof startAgent> | undefined;
    try {
      const watch = await net.watchEvents();
      agent = withAgent ? startAgent(net.node, args) : undefined;
      await agent?.ready;
      if (args.some((a) => a.startsWith("--kubeconfig"))) await viewLive(agent!.logs);
      const { results, ruleAt } = await body(net);
      const last = await listEntries(net.node);
      const events = await watch.stop();
      const exit = await agent?.stop();
      return { label, withAgent, results, ruleAt, events, last, logs: agent?.logs ?? [], exit };
    } finally {
      await agent?.stop();
      await close?.();
    }
  });
}

async function must(ns: Netns, cmd: string[]): Promise<void> {
  const r = await ns.exec(cmd);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} in ${ns.name}: ${r.stderr.trim()}`);
}

/** The Services of rows 1 and 2 before and after the change at 2 s. */
function services(shape: NatShape, phase: "before" | "after"): ShapeService[] {
  return FAMILIES.flatMap((f) => {
    const live = [A[f].backend, MORE[f].live2].map((addr) => ({ addr, port: BACKEND_PORT }));
    const to = phase === "before" ? { addr: MORE[f].dead, port: BACKEND_PORT } : live[0]!;
    const moved = { name: "moved", vip: MORE[f].vip2, port: VIP_PORT, endpoints: [to] };
    if (phase === "before") return [moved];
    const endpoints = shape === "plain" ? live.slice(0, 1) : live;
    return [{ name: "stuck", vip: A[f].vip, port: VIP_PORT, endpoints }, moved];
  });
}

/** One client of row 1 or 2. */
export interface StuckRow {
  story: "stuck" | "moved";
  family: Family;
  id: string;
  src: string;
  vip: string;
  /** Where its next SYN may go once the rule is there. */
  live: string[];
}

export const STUCK_ROWS: StuckRow[] = FAMILIES.flatMap((f) => [
  {
    story: "stuck" as const,
    family: f,
    id: `stuck-${f}`,
    src: A[f].clientA,
    vip: A[f].vip,
    live: [A[f].backend, MORE[f].live2],
  },
  {
    story: "moved" as const,
    family: f,
    id: `moved-${f}`,
    src: A[f].clientB,
    vip: MORE[f].vip2,
    live: [A[f].backend],
  },
]);

const SHORT: Record<NatShape, string> = { plain: "pl", "kube-iptables": "ki", "kube-nft": "kn" };

/** Rows 1 and 2 in one shape: the clients start together; the rules change at 2 s. */
function stuckRun(shape: NatShape, withAgent: boolean): Promise<Run> {
  const requests: SessionRequest[] = STUCK_ROWS.map((r) => ({
    id: r.id,
    host: r.vip,
    port: VIP_PORT,
    localAddress: r.src,
    localPort: STUCK_SPORT,
    atMs: 0,
    deadlineMs: STUCK_FOR_MS,
  }));
  return observe(
    `${shape} rules ${side(withAgent)} the agent`,
    `nr-${SHORT[shape]}-${withAgent ? "a" : "n"}`,
    { delayMs: DELAY_MS, deadVip: true },
    withAgent,
    async (net) => {
      for (const f of FAMILIES) {
        // The second live endpoint, and the dead one: it answers ARP/ND but drops everything.
        const m = MORE[f], nodad = f === "ipv6" ? ["nodad"] : [];
        await must(net.backend, [
          "ip",
          "addr",
          "add",
          `${m.live2}/${m.len}`,
          "dev",
          "eth0",
          ...nodad,
        ]);
        await must(net.backend, [
          "ip",
          "addr",
          "add",
          `${m.dead}/${m.len}`,
          "dev",
          "eth0",
          ...nodad,
        ]);
        const t = f === "ipv4" ? "iptables" : "ip6tables";
        await must(net.backend, [t, "-t", "raw", "-A", "PREROUTING", "-d", m.dead, "-j", "DROP"]);
      }
      await applyShape(net.node, shape, services(shape, "before"), [], true, SHAPE_OPTIONS);
      return { args: [] };
    },
    async (net) => {
      let ruleAt = 0;
      const results = await sessionsTogether(net, [{ ns: net.clients, requests }], async (t0) => {
        await sleep(t0 + RULE_AT_MS - Date.now());
        ruleAt = Date.now();
        const before = services(shape, "before");
        await applyShape(net.node, shape, services(shape, "after"), before, false, SHAPE_OPTIONS);
      });
      return { results, ruleAt };
    },
  );
}

/** A watched connection of rows 3 and 4, which must connect and keep its entry. */
export interface Watched {
  story: "lb" | "proxy";
  family: Family;
  id: string;
  src: string;
  sport: number;
}

export const WATCHED: Watched[] = FAMILIES.flatMap((f) => [
  ...WATCHED_PORTS.map((p) => ({
    story: "lb" as const,
    family: f,
    id: `lb-${f}-${p}`,
    src: A[f].clientB,
    sport: p,
  })),
  ...WATCHED_PORTS.map((p) => ({
    story: "proxy" as const,
    family: f,
    id: `proxy-${f}-${p}`,
    src: A[f].nodeServer,
    sport: p,
  })),
]);

/**
 * Quick connections of `src` to `port`, one every `everyMs` from the watched
 * ones' start until their late answer (3 s), the one at 1 s held open: an
 * agent that takes a translated neighbour as evidence finds a newer one in
 * every read.
 */
function quick(
  prefix: string,
  family: Family,
  src: string,
  port: number,
  everyMs: number,
): SessionRequest[] {
  const base = { host: A[family].vip, port, localAddress: src, deadlineMs: 5000 };
  return Array.from({ length: DELAY_MS / everyMs }, (_, i) => i * everyMs).map((atMs) => ({
    ...base,
    id: `${prefix}-${family}-${atMs}`,
    atMs,
    ...(atMs === 1000 ? { holdMs: 5000 } : {}),
  }));
}

/**
 * Rows 3 and 4 in one node: kube-proxy rules for VIP:443 only, the proxy's
 * REDIRECT in OUTPUT. With `api`, the agent also watches a fake Kubernetes
 * API that lists VIP:80 as the ingress of a LoadBalancer Service with a
 * ready endpoint, labelled for another proxy than kube-proxy (the issue's
 * row 3 as measured: the API says "NATed", the node's rules do not).
 */
function harmRun(withAgent: boolean, api = false): Promise<Run> {
  const watched = (story: Watched["story"]) =>
    WATCHED.filter((w) => w.story === story).map((w) => ({
      id: w.id,
      host: A[w.family].vip,
      port: VIP_PORT,
      localAddress: w.src,
      localPort: w.sport,
      atMs: 0,
      deadlineMs: 8000,
    }));
  const web = FAMILIES.map((f) => ({
    name: "web",
    vip: A[f].vip,
    port: 443,
    endpoints: [{ addr: A[f].backend, port: BACKEND_PORT }],
  }));
  return observe(
    `LoadBalancer VIP:80 un-NATed and a transparent proxy ${side(withAgent)} the agent` +
      (api ? " and a Kubernetes API listing VIP:80" : ""),
    `nr-harm-${withAgent ? "a" : "n"}${api ? "k" : ""}`,
    { delayMs: DELAY_MS, inputInvalidDrop: true, nodePorts: [PROXY_PORT] },
    withAgent,
    async (net) => {
      await applyShape(net.node, "kube-iptables", web, [], true, SHAPE_OPTIONS);
      for (const f of FAMILIES) {
        await must(net.node, [
          ...[f === "ipv4" ? "iptables" : "ip6tables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp"],
          ...["-d", A[f].vip, "--dport", String(VIP_PORT), "-m", "owner", "!", "--uid-owner"],
          ...[String(PROXY_UID), "-j", "REDIRECT", "--to-ports", String(PROXY_PORT)],
        ]);
      }
      if (!api) return { args: [] };
      const fake = await lbInApi(net.node);
      return { args: [`--kubeconfig=${fake.kubeconfig}`], close: () => fake.close() };
    },
    async (net) => {
      const results = await sessionsTogether(net, [
        {
          ns: net.clients,
          requests: [
            ...watched("lb"),
            ...FAMILIES.flatMap((f) => quick("lb-443", f, A[f].clientB, 443, 500)),
          ],
        },
        { ns: net.node, requests: watched("proxy"), options: { uid: PROXY_UID } },
        {
          ns: net.node,
          requests: FAMILIES.flatMap((f) => quick("root", f, A[f].nodeServer, VIP_PORT, 250)),
        },
      ]);
      return { results, ruleAt: 0 };
    },
  );
}

/**
 * A fake API in `node` listing VIP:80 (both families) as a LoadBalancer
 * Service's ingress, with a ready endpoint, labelled for another proxy
 * (`service.kubernetes.io/service-proxy-name`).
 */
async function lbInApi(node: Netns): Promise<FakeApiProcess> {
  const api = await startFakeApiIn(node);
  const svc = service("shop", "lb", {
    clusterIPs: ["198.19.1.10", "2001:db8:cafe:1::10"],
    ports: [{ name: "http", port: VIP_PORT, targetPort: BACKEND_PORT }],
    ingress: FAMILIES.map((f) => ({ ip: A[f].vip })),
  });
  (svc.metadata.labels as Record<string, string>)["service.kubernetes.io/service-proxy-name"] =
    "external-lb";
  await api.set("services", svc);
  for (const f of FAMILIES) {
    const ports = [{ name: "http", port: BACKEND_PORT }];
    await api.set(
      "endpointslices",
      endpointSlice("shop", "lb", f, ports, [{ addr: A[f].backend }]),
    );
  }
  return api;
}
let all:
  | { stuck: Map<NatShape, Promise<[Run, Run]>>; harm: Promise<[Run, Run]>; api: Promise<Run> }
  | undefined;

/** Every run, started together the first time a test asks; each test awaits its own. */
export function runs() {
  if (all === undefined) {
    const both = (f: (withAgent: boolean) => Promise<Run>) =>
      Promise.all([f(false), f(true)]) as Promise<[Run, Run]>;
    all = {
      stuck: new Map(NAT_SHAPES.map((s) => [s, both((w) => stuckRun(s, w))])),
      harm: both((w) => harmRun(w)),
      api: harmRun(true, true),
    };
    for (const p of [...all.stuck.values(), all.harm, all.api]) p.catch(() => {});
  }
  return all;
}
