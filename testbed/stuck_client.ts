/**
 * The stuck-client story of issue 7 with real sockets, in three namespaces
 * this module makes and always removes:
 *
 * ```
 *  client ──veth── node ──veth── backend (TCP listener, port 8080)
 *                   │
 *                   └─veth── svc1 (drops everything: "nobody answers")
 * ```
 *
 * The node is a router with conntrack on (iptables rules in `raw`, `nat` and
 * `filter`), forwarding for IPv4 and IPv6, and the service addresses routed
 * towards `svc0`, whose peer drops every packet. A client that connects to
 * the service address before the node has a DNAT rule for it therefore gets
 * an un-NATed `SYN_SENT [UNREPLIED]` entry on the node and no answer.
 *
 * Facts measured here on Linux 6.18 (they are what the tests rely on, and
 * what {@linkcode runStory} reproduces):
 *
 * - The client's retransmitted SYNs (1 s apart at first:
 *   `net.ipv4.tcp_syn_linear_timeouts` = 4, then 2 s, 4 s …) keep matching
 *   the un-NATed entry after the DNAT rule arrives; its timeout is not
 *   renewed (it counts down from 120 s), and the client never connects
 *   (no answer within 30 s).
 * - A new connection after the rule arrived (the same client address, a new
 *   port) gets a NATed entry and connects at once.
 * - `iptables -t raw -A PREROUTING -j CT --zone N` puts both directions of
 *   the forwarded traffic in zone N (`zone=N` in the node's table).
 * - There is no `dummy` link type in this kernel (module not available), so
 *   the dead end is a veth pair: frames go out of `svc0` to a permanent
 *   neighbour address that is not its peer `svc1`'s, and IP drops them as
 *   another host's on `svc1` before any netfilter hook (no ARP/ND involved,
 *   and no rule on the node that the agent's NAT-rules reader would see).
 *
 * Addresses are from the benchmarking and documentation ranges only
 * (198.18.0.0/15, 2001:db8::/32). Needs root, iproute2, iptables
 * (ip6tables), conntrack-tools.
 *
 * @example
 * ```ts
 * import { runStory, withStuckNet } from "./stuck_client.ts";
 * await withStuckNet("example", { zone: 0 }, async (net) => {
 *   const r = await runStory(net, { family: "ipv4", deadlineMs: 8000 });
 *   console.log(r.stuck.connected, r.second?.ms);
 * });
 * ```
 *
 * @module
 */
import type { ConnectRequest } from "./tcp_connect.ts";
import { type EntrySpec, type Netns, withNetns } from "./netns.ts";

const TCP_CONNECT = new URL("./tcp_connect.ts", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The addresses of one family in the topology. */
export interface FamilyAddresses {
  client: string;
  /** The node's address on the client link (the client's gateway). */
  nodeClientSide: string;
  backend: string;
  nodeBackendSide: string;
  /** The service address clients connect to (DNATed to the backend later). */
  service: string;
  /** Another address routed to the dead end, never DNATed. */
  otherService: string;
  /** The prefix routed to the dead end. */
  servicePrefix: string;
  /** The dead end's next hop (permanent neighbour entry, nobody there). */
  deadHop: string;
  deadHopLocal: string;
  prefixLen: number;
}

/** Addresses by family (benchmarking / documentation ranges only). */
export const ADDRESSES: Record<"ipv4" | "ipv6", FamilyAddresses> = {
  ipv4: {
    client: "198.18.1.2",
    nodeClientSide: "198.18.1.1",
    backend: "198.18.2.2",
    nodeBackendSide: "198.18.2.1",
    service: "198.19.0.10",
    otherService: "198.19.0.11",
    servicePrefix: "198.19.0.0/24",
    deadHop: "198.18.3.2",
    deadHopLocal: "198.18.3.1",
    prefixLen: 24,
  },
  ipv6: {
    client: "2001:db8:1::2",
    nodeClientSide: "2001:db8:1::1",
    backend: "2001:db8:2::2",
    nodeBackendSide: "2001:db8:2::1",
    service: "2001:db8:cafe::10",
    otherService: "2001:db8:cafe::11",
    servicePrefix: "2001:db8:cafe::/64",
    deadHop: "2001:db8:3::2",
    deadHopLocal: "2001:db8:3::1",
    prefixLen: 64,
  },
};

/** The port clients connect to on the service address. */
export const SERVICE_PORT = 80;
/** The backend's listening port (the DNAT target port). */
export const BACKEND_PORT = 8080;
/** The fixed source port of the stuck client. */
export const STUCK_SPORT = 40000;

/** Options for {@linkcode withStuckNet}. */
export interface StuckNetOptions {
  /**
   * Conntrack zone of the node's forwarded traffic, set with
   * `iptables -t raw -j CT --zone N` (both families). 0: no such rule.
   */
  zone: number;
}

/** One entry of `conntrack -L -o extended,id`, parsed. */
export interface CtEntry {
  family: "ipv4" | "ipv6";
  proto: string;
  /** TCP state, "" for other protocols. */
  state: string;
  timeout: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  replySrc: string;
  replyDst: string;
  replySport: number;
  replyDport: number;
  unreplied: boolean;
  zone: number;
  id: number;
}

/**
 * Parses `conntrack -L -o extended,id` output (addresses as the tool prints
 * them: dotted quads, compressed IPv6). Lines that are not entries are
 * skipped.
 *
 * @example
 * ```ts
 * import { parseConntrackList } from "./stuck_client.ts";
 * parseConntrackList("ipv4     2 tcp      6 99 SYN_SENT src=198.18.1.2 dst=198.19.0.10 " +
 *   "sport=1 dport=80 [UNREPLIED] src=198.19.0.10 dst=198.18.1.2 sport=80 dport=1 " +
 *   "mark=0 use=1 id=7")[0].zone; // => 0
 * ```
 */
export function parseConntrackList(text: string): CtEntry[] {
  const out: CtEntry[] = [];
  for (const line of text.split("\n")) {
    const t = line.trim().split(/\s+/);
    if (t.length < 6 || (t[0] !== "ipv4" && t[0] !== "ipv6")) continue;
    const proto = t[2]!;
    let i = 4;
    const timeout = Number(t[i++]);
    const state = t[i] !== undefined && /^[A-Z_0-9]+$/.test(t[i]!) ? t[i++]! : "";
    const kv: [string, string][] = [];
    let unreplied = false;
    for (; i < t.length; i++) {
      if (t[i] === "[UNREPLIED]") unreplied = true;
      const eq = t[i]!.indexOf("=");
      if (eq > 0) kv.push([t[i]!.slice(0, eq), t[i]!.slice(eq + 1)]);
    }
    const all = (k: string) => kv.filter(([key]) => key === k).map(([, v]) => v);
    const [src, replySrc] = all("src"), [dst, replyDst] = all("dst");
    const [sport, replySport] = all("sport"), [dport, replyDport] = all("dport");
    if (
      src === undefined || replySrc === undefined || dst === undefined || replyDst === undefined
    ) continue;
    out.push({
      family: t[0],
      proto,
      state,
      timeout,
      src,
      dst,
      sport: Number(sport ?? 0),
      dport: Number(dport ?? 0),
      replySrc,
      replyDst,
      replySport: Number(replySport ?? 0),
      replyDport: Number(replyDport ?? 0),
      unreplied,
      zone: Number(all("zone")[0] ?? 0),
      id: Number(all("id")[0] ?? 0),
    });
  }
  return out;
}

/** Whether an entry's destination was translated (reply source ≠ original destination). */
export function isTranslated(e: CtEntry): boolean {
  return e.replySrc !== e.dst || e.replySport !== e.dport;
}

/** How a client's `connect()` ended. */
export interface ClientResult {
  /** Wall-clock time of `connect()` (the first SYN), epoch ms. */
  startedAt: number;
  connected: boolean;
  /** `connected`, `error` (with `code`) or `deadline` (gave up). */
  outcome: "connected" | "error" | "deadline";
  code?: string;
  /** Milliseconds from the first SYN until connected, failed or given up. */
  ms: number;
  /** The source port (an ephemeral one is known once connected; 0 before). */
  localPort: number;
}

/** A client started with {@linkcode StuckNet.connect}. */
export interface ClientRun {
  /** Resolves with the time of `connect()` (epoch ms) once the child reported it. */
  started: Promise<number>;
  /** The outcome. */
  done: Promise<ClientResult>;
}

/** Options for {@linkcode StuckNet.connect}. */
export interface ConnectOptions {
  family: "ipv4" | "ipv6";
  /** Destination address; default the family's service address. */
  dst?: string;
  /** Default {@linkcode SERVICE_PORT}. */
  dport?: number;
  /** Fixed source port; omitted: ephemeral. */
  sport?: number;
  /** Epoch ms to call `connect()` at; default now. */
  at?: number;
  deadlineMs: number;
}

/** The three namespaces of the story (see the module doc). */
export class StuckNet {
  readonly client: Netns;
  readonly node: Netns;
  readonly backend: Netns;
  readonly zone: number;
  /** Connections the backend accepted: `[remote address, remote port]`. */
  readonly accepted: [string, number][] = [];

  constructor(client: Netns, node: Netns, backend: Netns, zone: number) {
    this.client = client;
    this.node = node;
    this.backend = backend;
    this.zone = zone;
  }

  /** Adds the DNAT rule service:port → backend:8080 on the node (`nat` PREROUTING). */
  async dnat(family: "ipv4" | "ipv6", service = ADDRESSES[family].service, port = SERVICE_PORT) {
    const a = ADDRESSES[family];
    const to = family === "ipv4"
      ? `${a.backend}:${BACKEND_PORT}`
      : `[${a.backend}]:${BACKEND_PORT}`;
    await must(this.node, [
      tables(family),
      "-t",
      "nat",
      "-A",
      "CCT-SERVICES",
      "-d",
      service,
      "-p",
      "tcp",
      "--dport",
      String(port),
      "-j",
      "DNAT",
      "--to-destination",
      to,
    ]);
  }

  /** Starts one real client in the client namespace (see `tcp_connect.ts`). */
  connect(o: ConnectOptions): ClientRun {
    const a = ADDRESSES[o.family];
    const req: ConnectRequest = {
      host: o.dst ?? a.service,
      port: o.dport ?? SERVICE_PORT,
      localAddress: a.client,
      ...(o.sport !== undefined ? { localPort: o.sport } : {}),
      at: o.at ?? Date.now(),
      deadlineMs: o.deadlineMs,
    };
    const child = this.client.spawn(
      [Deno.execPath(), "run", "-A", TCP_CONNECT, JSON.stringify(req)],
      { stdout: "piped", stderr: "piped", env: { NO_COLOR: "1" } },
    );
    const err = new Response(child.stderr).text();
    let onStart: (at: number) => void = () => {};
    let onStartFailed: (e: unknown) => void = () => {};
    const started = new Promise<number>((resolve, reject) => {
      onStart = resolve;
      onStartFailed = reject;
    });
    started.catch(() => {}); // reported through `done` as well
    const done = (async (): Promise<ClientResult> => {
      let startedAt: number | undefined, localPort = 0;
      let end: Record<string, unknown> | undefined;
      for await (const line of readLines(child.stdout)) {
        const ev = JSON.parse(line);
        if (ev.event === "connect") {
          startedAt = ev.at;
          localPort = ev.localPort;
          onStart(ev.at);
        } else end = ev;
      }
      const status = await child.status;
      if (startedAt === undefined || end === undefined) {
        const e = new Error(
          `client ${JSON.stringify(req)} exited ${status.code} without a result: ${await err}`,
        );
        onStartFailed(e);
        throw e;
      }
      return {
        startedAt,
        connected: end.event === "connected",
        outcome: end.event as ClientResult["outcome"],
        ...(end.code !== undefined ? { code: String(end.code) } : {}),
        ms: end.ms as number,
        localPort: typeof end.localPort === "number" ? end.localPort : localPort,
      };
    })();
    done.catch(() => {});
    return { started, done };
  }

  /** The node's table (`conntrack -L -o extended,id`), parsed. */
  table(): Promise<CtEntry[]> {
    return listEntries(this.node);
  }
}

/** A namespace's table (`conntrack -L -o extended,id`), parsed. */
export async function listEntries(ns: Netns): Promise<CtEntry[]> {
  const r = await ns.conntrack(["-L", "-o", "extended,id"]);
  return parseConntrackList(r.stdout);
}

/**
 * The entry with `spec`'s original tuple, protocol and zone (addresses
 * spelled as `conntrack` prints them: compressed IPv6).
 */
export function findEntry(
  entries: readonly CtEntry[],
  spec: Pick<EntrySpec, "proto" | "src" | "dst" | "sport" | "dport" | "zone">,
): CtEntry | undefined {
  return entries.find((e) =>
    e.proto === (spec.proto ?? "tcp") && e.src === spec.src && e.dst === spec.dst &&
    e.sport === spec.sport && e.dport === spec.dport && e.zone === (spec.zone ?? 0)
  );
}

function tables(family: "ipv4" | "ipv6"): string {
  return family === "ipv4" ? "iptables" : "ip6tables";
}

async function must(ns: Netns, cmd: string[]): Promise<void> {
  const r = await ns.exec(cmd);
  if (r.code !== 0) {
    throw new Error(`${cmd.join(" ")} in ${ns.name} exited ${r.code}: ${r.stderr.trim()}`);
  }
}

/**
 * Makes the three namespaces (named `cct-LABEL-c-…`, `-n-…`, `-b-…`), wires
 * them for both families, starts the backend listener, runs `fn`, and
 * removes everything afterwards, also when `fn` or the setup throws.
 */
export function withStuckNet<T>(
  label: string,
  options: StuckNetOptions,
  fn: (net: StuckNet) => Promise<T>,
): Promise<T> {
  const p = label.slice(0, 16);
  return withNetns(
    `${p}-c`,
    (client) =>
      withNetns(`${p}-n`, (node) =>
        withNetns(`${p}-b`, async (backend) => {
          const net = new StuckNet(client, node, backend, options.zone);
          await wire(net);
          const stopBackend = await startBackend(net);
          try {
            return await fn(net);
          } finally {
            await stopBackend();
          }
        })),
  );
}

async function wire(net: StuckNet): Promise<void> {
  const { client, node, backend } = net;
  // veth pairs made from the node, peers moved straight into the other namespace:
  // no interface ever exists on the host.
  await must(node, [
    "ip",
    "link",
    "add",
    "c0",
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    client.name,
  ]);
  await must(node, [
    "ip",
    "link",
    "add",
    "b0",
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    backend.name,
  ]);
  // The dead end: frames reach svc1 addressed to 02:00:00:00:00:02 (svc0's permanent neighbour),
  // which is not svc1's own address, so IP drops them as another host's before any netfilter
  // hook: no rule on the node is needed for "nobody answers".
  await must(node, [
    "ip",
    "link",
    "add",
    "svc0",
    "type",
    "veth",
    "peer",
    "name",
    "svc1",
    "address",
    "02:00:00:00:00:03",
  ]);
  await must(node, ["sysctl", "-qw", "net.ipv6.conf.svc1.disable_ipv6=1"]);
  await must(node, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  await must(node, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
  for (const family of ["ipv4", "ipv6"] as const) {
    const a = ADDRESSES[family];
    const ip = family === "ipv4" ? ["ip", "-4"] : ["ip", "-6"];
    const nodad = family === "ipv6" ? ["nodad"] : [];
    const addr = (ns: Netns, cidr: string, dev: string) =>
      must(ns, [...ip, "addr", "add", cidr, "dev", dev, ...nodad]);
    await addr(node, `${a.nodeClientSide}/${a.prefixLen}`, "c0");
    await addr(node, `${a.nodeBackendSide}/${a.prefixLen}`, "b0");
    await addr(node, `${a.deadHopLocal}/${a.prefixLen}`, "svc0");
    await addr(client, `${a.client}/${a.prefixLen}`, "eth0");
    await addr(backend, `${a.backend}/${a.prefixLen}`, "eth0");
  }
  for (const dev of ["c0", "b0", "svc0", "svc1"]) {
    await must(node, ["ip", "link", "set", dev, "up"]);
  }
  for (const ns of [client, backend]) await must(ns, ["ip", "link", "set", "eth0", "up"]);
  for (const family of ["ipv4", "ipv6"] as const) {
    const a = ADDRESSES[family];
    const ip = family === "ipv4" ? ["ip", "-4"] : ["ip", "-6"];
    await must(client, [...ip, "route", "add", "default", "via", a.nodeClientSide]);
    await must(backend, [...ip, "route", "add", "default", "via", a.nodeBackendSide]);
    await must(node, [
      ...ip,
      "neigh",
      "replace",
      a.deadHop,
      "lladdr",
      "02:00:00:00:00:02",
      "dev",
      "svc0",
      "nud",
      "permanent",
    ]);
    await must(node, [...ip, "route", "add", a.servicePrefix, "via", a.deadHop, "dev", "svc0"]);
    const t = tables(family);
    if (net.zone !== 0) {
      await must(node, [
        t,
        "-t",
        "raw",
        "-A",
        "PREROUTING",
        "-j",
        "CT",
        "--zone",
        String(net.zone),
      ]);
    }
    // kube-proxy style: a services chain in nat PREROUTING, empty until a rule arrives.
    await must(node, [t, "-t", "nat", "-N", "CCT-SERVICES"]);
    await must(node, [t, "-t", "nat", "-A", "PREROUTING", "-j", "CCT-SERVICES"]);
    // Conntrack on for forwarded traffic.
    await must(node, [
      t,
      "-A",
      "FORWARD",
      "-m",
      "conntrack",
      "--ctstate",
      "NEW,ESTABLISHED,RELATED",
      "-j",
      "ACCEPT",
    ]);
  }
}

/** Starts a TCP listener on the backend's addresses, port 8080; returns its stopper. */
async function startBackend(net: StuckNet): Promise<() => Promise<void>> {
  const code = `
    const hosts = ${JSON.stringify([ADDRESSES.ipv4.backend, ADDRESSES.ipv6.backend])};
    const listeners = hosts.map((hostname) => Deno.listen({ hostname, port: ${BACKEND_PORT} }));
    console.log(JSON.stringify({ listening: true }));
    await Promise.all(listeners.map(async (l) => {
      for await (const c of l) {
        const r = c.remoteAddr;
        console.log(JSON.stringify({ accepted: [r.hostname, r.port] }));
        c.close();
      }
    }));`;
  const child = net.backend.spawn([Deno.execPath(), "eval", code], {
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
  const err = new Response(child.stderr).text();
  let ready: () => void = () => {};
  const listening = new Promise<void>((r) => ready = r);
  const reading = (async () => {
    for await (const line of readLines(child.stdout)) {
      const ev = JSON.parse(line);
      if (ev.listening) ready();
      if (ev.accepted) net.accepted.push(ev.accepted);
    }
  })();
  const exited = child.status.then((s) => s);
  const first = await Promise.race([listening.then(() => undefined), exited]);
  if (first !== undefined) {
    await reading;
    throw new Error(`backend listener exited ${first.code}: ${await err}`);
  }
  return async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await reading;
    await err;
  };
}

/** Options for {@linkcode runStory}. */
export interface StoryOptions {
  family: "ipv4" | "ipv6";
  /** When the node gets its DNAT rule, ms after the stuck client's first SYN. Default 2000. */
  dnatAtMs?: number;
  /** When the same client connects again (ephemeral port), ms after the first SYN; `null`: none. Default 3000. */
  secondClientAtMs?: number | null;
  /** How long the stuck client waits for its connection before giving up. */
  deadlineMs: number;
  /**
   * More clients with fixed source ports that start with the stuck one and
   * never get a rule (bystanders: other port, other address).
   */
  others?: { dst: string; dport: number; sport: number }[];
  /** Called once the first SYN is out (before the DNAT rule), e.g. to check the table. */
  afterFirstSyn?: () => Promise<void>;
  /** Delay before the stuck client's `connect()`, to let every child start. Default 1000 ms. */
  leadMs?: number;
  /** Stops waiting (rejects); the clients are killed when the namespaces go. */
  signal?: AbortSignal;
}

/** What {@linkcode runStory} saw. */
export interface StoryResult {
  stuck: ClientResult;
  second?: ClientResult;
  others: ClientResult[];
  /** When the DNAT rule was in place, ms after the first SYN. */
  dnatMs: number;
}

/**
 * The story: the stuck client connects from port {@linkcode STUCK_SPORT} to
 * the service address at T; the node gets the DNAT rule at T+2 s; the same
 * client connects again (new port) at T+3 s. Resolves when every client is
 * done.
 */
export async function runStory(net: StuckNet, o: StoryOptions): Promise<StoryResult> {
  const at = Date.now() + (o.leadMs ?? 1000);
  const stuck = net.connect({
    family: o.family,
    sport: STUCK_SPORT,
    at,
    deadlineMs: o.deadlineMs,
  });
  const others = (o.others ?? []).map((x) =>
    net.connect({ family: o.family, ...x, at, deadlineMs: o.deadlineMs })
  );
  const secondAt = o.secondClientAtMs === undefined ? 3000 : o.secondClientAtMs;
  const wait = <T>(p: Promise<T>) => abortable(p, o.signal);
  const t0 = await wait(stuck.started);
  const second = secondAt === null
    ? undefined
    : net.connect({ family: o.family, at: t0 + secondAt, deadlineMs: 5000 });
  await wait(o.afterFirstSyn?.() ?? Promise.resolve());
  await wait(sleepUntil(t0 + (o.dnatAtMs ?? 2000)));
  await net.dnat(o.family);
  const dnatMs = Date.now() - t0;
  return {
    stuck: await wait(stuck.done),
    ...(second ? { second: await wait(second.done) } : {}),
    others: await wait(Promise.all(others.map((c) => c.done))),
    dnatMs,
  };
}

function sleepUntil(epochMs: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, epochMs - Date.now())));
}

/** `p`, or a rejection (with `signal.reason`) as soon as `signal` aborts. */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** A running agent started with {@linkcode startAgent}. */
export interface AgentRun {
  /** Log lines so far, parsed (`{unparsed}` for a line that is not JSON, `{stderr}` at the end). */
  readonly logs: Record<string, unknown>[];
  /** Resolves once the agent logged that it started; rejects if it exited first. */
  ready: Promise<void>;
  /** SIGTERM, wait; resolves with the exit code. */
  stop(): Promise<number>;
}

/** Options for {@linkcode startAgent}. */
export interface AgentOptions {
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Each raw stdout line is also passed here as it comes (the demo prints them). */
  onLine?: (line: string) => void;
  /** Default `json` (only JSON lines are parsed into `logs`). */
  logFormat?: "json" | "text";
}

/**
 * Runs the agent (`deno run -A main.ts --listen=off --log-format=json ARGS…`)
 * in `ns`.
 */
export function startAgent(ns: Netns, args: string[], options: AgentOptions = {}): AgentRun {
  const format = options.logFormat ?? "json";
  const child = ns.spawn(
    [Deno.execPath(), "run", "-A", MAIN, "--listen=off", `--log-format=${format}`, ...args],
    { stdout: "piped", stderr: "piped", env: { NO_COLOR: "1", ...options.env } },
  );
  const logs: Record<string, unknown>[] = [];
  const err = new Response(child.stderr).text();
  let ready: () => void = () => {};
  const started = new Promise<void>((r) => ready = r);
  const reading = (async () => {
    for await (const line of readLines(child.stdout)) {
      options.onLine?.(line);
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = { unparsed: line };
      }
      logs.push(parsed);
      if (parsed.msg === "conntrack-cleaner starting") ready();
      if (parsed.unparsed !== undefined && line.includes("conntrack-cleaner starting")) ready();
    }
  })();
  const status = child.status;
  const readyOrExit = Promise.race([
    started,
    status.then(async (s) => {
      await reading;
      const e = (await err).trim();
      throw new Error(`agent ${args.join(" ")} exited ${s.code} before starting: ${e}`);
    }),
  ]);
  readyOrExit.catch(() => {});
  let stopped: Promise<number> | undefined;
  return {
    logs,
    ready: readyOrExit,
    stop() {
      return stopped ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch { /* already exited */ }
        const s = await status;
        await reading;
        const e = (await err).trim();
        if (e) logs.push({ stderr: e });
        return s.code;
      })();
    },
  };
}

/** Splits a byte stream into lines (without the newline; blank lines dropped). */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    const parts = buf.split("\n");
    buf = parts.pop()!;
    for (const p of parts) if (p.trim()) yield p;
  }
  if (buf.trim()) yield buf;
}
