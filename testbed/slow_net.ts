/**
 * A node in front of a slow real server, with real sockets, for the
 * do-no-harm end-to-end tests: five namespaces this module makes and always
 * removes.
 *
 * ```
 *  clients ──veth── node ──veth── backend (fast, port 8080: the DNAT target)
 *  (subnets A, B)    │
 *                    └─veth── relay ──veth── server (owns the VIP, port 80)
 *                             (frames from the server delayed `delayMs`)
 * ```
 *
 * - The node routes, tracks connections and filters like kube-proxy's
 *   iptables mode: `-m conntrack --ctstate INVALID -j DROP` in FORWARD (and
 *   INPUT if asked), a `CCT-SERVICES` chain in nat PREROUTING and a `CCT-OUTPUT` chain
 *   in nat OUTPUT (both empty until a test adds rules), and MASQUERADE for
 *   everything leaving toward the server.
 * - The VIP is a real address of the server, routed by the node toward it,
 *   so a connection that no DNAT rule catches reaches the real server
 *   through MASQUERADE, and its SYN-ACK arrives `delayMs` late.
 * - This kernel has no netem: `frame_delay.c` (compiled with `cc` into a
 *   temporary directory, as is the servers' `pong_server.c`) relays Ethernet frames between the node and the
 *   server, delaying the server's. Both ends know each other's MAC address
 *   (permanent neighbour entries), so no ARP/ND crosses the delay.
 * - Both servers answer `ping\n` with `pong\n` (see `tcp_session.ts`), so a
 *   connection reset after the handshake is seen as a failure.
 *
 * Addresses are from the benchmarking and documentation ranges only
 * (198.18.0.0/15, 2001:db8::/32). Needs root, iproute2, iptables
 * (ip6tables), conntrack-tools and a C compiler (`cc`); `setpriv`
 * (util-linux) for sessions run as another user.
 *
 * @example
 * ```ts
 * import { withSlowNet } from "./slow_net.ts";
 * await withSlowNet("example", { delayMs: 3000 }, async (net) => {
 *   const run = net.sessions(net.clients, [{ id: "b1", host: net.addr.ipv4.vip, port: 80,
 *     localAddress: net.addr.ipv4.clientB, atMs: 0, deadlineMs: 10_000 }]);
 *   await run.ready;
 *   await run.start(Date.now());
 *   console.log((await run.results).get("b1"));
 * });
 * ```
 *
 * @module
 */
import type { SessionRequest } from "./tcp_session.ts";
import { type Netns, withNetns } from "./netns.ts";
import { type CtEntry, parseConntrackList, readLines } from "./stuck_client.ts";

const TCP_SESSION = new URL("./tcp_session.ts", import.meta.url).pathname;

/** The addresses of one family. */
export interface SlowAddresses {
  /** The client in subnet A (DNATed where a rule says "subnet A"). */
  clientA: string;
  /** The client in subnet B (reaches the server through MASQUERADE). */
  clientB: string;
  subnetA: string;
  subnetB: string;
  nodeA: string;
  nodeB: string;
  backend: string;
  nodeBackend: string;
  /** The server's link address and the node's on that link. */
  server: string;
  nodeServer: string;
  /** The address clients connect to: the server's own, DNATed to the backend by some rules. */
  vip: string;
  vipPrefix: string;
  prefixLen: number;
}

/** Addresses by family (benchmarking / documentation ranges only). */
export const SLOW_ADDRESSES: Record<"ipv4" | "ipv6", SlowAddresses> = {
  ipv4: {
    clientA: "198.18.1.2",
    clientB: "198.18.5.2",
    subnetA: "198.18.1.0/24",
    subnetB: "198.18.5.0/24",
    nodeA: "198.18.1.1",
    nodeB: "198.18.5.1",
    backend: "198.18.2.2",
    nodeBackend: "198.18.2.1",
    server: "198.18.6.2",
    nodeServer: "198.18.6.1",
    vip: "198.19.0.10",
    vipPrefix: "198.19.0.0/24",
    prefixLen: 24,
  },
  ipv6: {
    clientA: "2001:db8:1::2",
    clientB: "2001:db8:5::2",
    subnetA: "2001:db8:1::/64",
    subnetB: "2001:db8:5::/64",
    nodeA: "2001:db8:1::1",
    nodeB: "2001:db8:5::1",
    backend: "2001:db8:2::2",
    nodeBackend: "2001:db8:2::1",
    server: "2001:db8:6::2",
    nodeServer: "2001:db8:6::1",
    vip: "2001:db8:cafe::10",
    vipPrefix: "2001:db8:cafe::/64",
    prefixLen: 64,
  },
};

/** The service port on the VIP (and the real server's port). */
export const VIP_PORT = 80;
/** The backend's port (the DNAT target). */
export const BACKEND_PORT = 8080;

/** The probe entry of {@linkcode SlowNet.watchEvents} (never a real connection). */
const PROBE = { src: "198.18.255.1", dst: "198.18.255.2", sport: 1, dport: 2 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const NODE_SERVER_MAC = "02:00:00:00:06:01";
const SERVER_MAC = "02:00:00:00:06:02";

/** Options for {@linkcode withSlowNet}. */
export interface SlowNetOptions {
  /** How late the server's frames reach the node, ms. */
  delayMs: number;
  /** The server drops every SYN to the VIP (nobody answers there), for the stuck-client story. */
  deadVip?: boolean;
  /** Also drop INVALID packets in INPUT (default: FORWARD only, as kube-proxy does). */
  inputInvalidDrop?: boolean;
  /**
   * Start a server on the node itself at {@linkcode BACKEND_PORT}, the target
   * of {@linkcode SlowNet.redirect} (a transparent proxy).
   */
  nodeServer?: boolean;
  /** More servers on the node, at these ports (a proxy's own port). */
  nodePorts?: number[];
}

/** Who runs the sessions of {@linkcode SlowNet.sessions} (default: root, as the test). */
export interface SessionsOptions {
  /** Run as this user and group id (no supplementary groups), e.g. a proxy's own user. */
  uid?: number;
}

/** How one session ended (see `tcp_session.ts`). */
export interface SessionResult {
  id: string;
  /** Epoch ms of the first `connect()`. */
  startedAt: number;
  event: "answered" | "error" | "deadline";
  code?: string;
  /** From the first `connect()` to the answer, error or deadline. */
  ms: number;
  /** From the first `connect()` to the handshake's end (answered only). */
  connectedMs?: number;
  /** The source port of the attempt that ended it (fixed ports: known from the start). */
  localPort: number;
  attempt: number;
  /** Every attempt's source port, in order. */
  ports: number[];
}

/** Sessions started with {@linkcode SlowNet.sessions}. */
export interface SessionsRun {
  /** Resolves once the child runs and waits for its start time. */
  ready: Promise<void>;
  /** Lets the sessions go: each `atMs` counts from `at` (epoch ms). */
  start(at: number): Promise<void>;
  /** Resolves when every session has its result (held connections may still be open). */
  results: Promise<Map<string, SessionResult>>;
}

/** One event of `conntrack -E` (see {@linkcode SlowNet.watchEvents}). */
export interface CtEvent {
  type: "NEW" | "DESTROY";
  /** Epoch ms, from the kernel's event timestamp as conntrack printed it. */
  at: number;
  /**
   * Caused by a process (`[USERSPACE]`: a `conntrack -D`, the agent's
   * delete), not by the kernel (expiry, a new SYN on a closed entry).
   */
  userspace: boolean;
  entry: CtEntry;
}

/** A running {@linkcode SlowNet.watchEvents}. */
export interface EventWatch {
  /** Stops listening; resolves with every event seen (the probe's left out). */
  stop(): Promise<CtEvent[]>;
}

/** Parses one line of `conntrack -E -o timestamp,extended,id`; undefined if it is none. */
export function parseEventLine(line: string): CtEvent | undefined {
  const m = /^\[(\d+)\.(\d+)\]\s+\[(NEW|DESTROY)\]\s+(.*)$/.exec(line.trim());
  if (m === null) return undefined;
  const entry = parseConntrackList(m[4]!)[0];
  if (entry === undefined) return undefined;
  return {
    type: m[3] as CtEvent["type"],
    at: Number(m[1]) * 1000 + Math.floor(Number(`0.${m[2]}`) * 1000),
    userspace: m[4]!.includes("[USERSPACE]"),
    entry,
  };
}

/** The five namespaces (see the module doc). */
export class SlowNet {
  readonly clients: Netns;
  readonly node: Netns;
  readonly backend: Netns;
  readonly relay: Netns;
  readonly server: Netns;
  readonly addr = SLOW_ADDRESSES;

  constructor(clients: Netns, node: Netns, backend: Netns, relay: Netns, server: Netns) {
    this.clients = clients;
    this.node = node;
    this.backend = backend;
    this.relay = relay;
    this.server = server;
  }

  /**
   * Appends a DNAT rule to `CCT-SERVICES` (nat PREROUTING) or, with
   * `chain: "CCT-OUTPUT"`, to nat OUTPUT (node processes): VIP:80 → the
   * backend, for sources in `from` (default: all).
   */
  async dnat(
    family: "ipv4" | "ipv6",
    o: { from?: string; chain?: "CCT-SERVICES" | "CCT-OUTPUT" } = {},
  ): Promise<void> {
    const a = SLOW_ADDRESSES[family];
    const to = family === "ipv4"
      ? `${a.backend}:${BACKEND_PORT}`
      : `[${a.backend}]:${BACKEND_PORT}`;
    await must(this.node, [
      tables(family),
      ...["-t", "nat", "-A", o.chain ?? "CCT-SERVICES"],
      ...(o.from !== undefined ? ["-s", o.from] : []),
      ...["-d", a.vip, "-p", "tcp", "--dport", String(VIP_PORT)],
      ...["-j", "DNAT", "--to-destination", to],
    ]);
  }

  /**
   * Appends a REDIRECT rule to `CCT-SERVICES`: VIP:80 from `from` goes to the
   * node's own port {@linkcode BACKEND_PORT} (needs `nodeServer`).
   */
  async redirect(family: "ipv4" | "ipv6", from: string): Promise<void> {
    await must(this.node, [
      tables(family),
      ...["-t", "nat", "-A", "CCT-SERVICES", "-s", from, "-d", SLOW_ADDRESSES[family].vip],
      ...["-p", "tcp", "--dport", String(VIP_PORT), "-j", "REDIRECT"],
      ...["--to-ports", String(BACKEND_PORT)],
    ]);
  }

  /** Removes every rule of `chain` (the Service is gone). */
  async flush(family: "ipv4" | "ipv6", chain: "CCT-SERVICES" | "CCT-OUTPUT"): Promise<void> {
    await must(this.node, [tables(family), "-t", "nat", "-F", chain]);
  }

  /**
   * Runs `tcp_session.ts` with `requests` in `ns` (the clients or the node);
   * they wait for {@linkcode SessionsRun.start}.
   */
  sessions(ns: Netns, requests: SessionRequest[], options: SessionsOptions = {}): SessionsRun {
    const { uid } = options;
    const as = uid === undefined
      ? []
      : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups"];
    const child = ns.spawn(
      [...as, Deno.execPath(), "run", "-A", TCP_SESSION, JSON.stringify(requests)],
      {
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1", ...(uid === undefined ? {} : { DENO_DIR: denoDirFor(uid) }) },
      },
    );
    const err = new Response(child.stderr).text();
    let onReady: () => void = () => {};
    const ready = new Promise<void>((r) => onReady = r);
    const results = (async () => {
      const out = new Map<string, SessionResult>();
      const seen = new Map<string, { startedAt: number; ports: number[] }>();
      for await (const line of readLines(child.stdout)) {
        const ev = JSON.parse(line);
        if (ev.event === "ready") {
          onReady();
          continue;
        }
        if (ev.event === "connect") {
          const s = seen.get(ev.id) ?? { startedAt: ev.at as number, ports: [] as number[] };
          s.ports.push(ev.localPort);
          seen.set(ev.id, s);
          continue;
        }
        const s = seen.get(ev.id)!;
        out.set(ev.id, {
          id: ev.id,
          startedAt: s.startedAt,
          event: ev.event,
          ...(ev.code !== undefined ? { code: String(ev.code) } : {}),
          ms: ev.ms,
          ...(ev.connectedMs !== undefined ? { connectedMs: ev.connectedMs } : {}),
          localPort: ev.localPort ?? s.ports.at(-1) ?? 0,
          attempt: ev.attempt ?? 0,
          ports: s.ports,
        });
        if (out.size === requests.length) return out;
      }
      const status = await child.status;
      throw new Error(
        `sessions in ${ns.name} exited ${status.code} with ${out.size}/${requests.length} ` +
          `results: ${await err}`,
      );
    })();
    results.catch(() => {});
    return {
      ready: Promise.race([ready, results.then(() => {})]),
      async start(at: number) {
        const w = child.stdin.getWriter();
        await w.write(new TextEncoder().encode(`${at}\n`));
        await w.close();
      },
      results,
    };
  }

  /**
   * Listens to the node's conntrack events (`conntrack -E -e NEW,DESTROY`)
   * until `stop()`. Resolves once listening: a probe entry (198.18.255.1 →
   * 198.18.255.2, made and deleted here) has been seen.
   */
  async watchEvents(): Promise<EventWatch> {
    const child = this.node.spawn(
      ["conntrack", "-E", "-e", "NEW,DESTROY", "-o", "timestamp,extended,id", "-b", "8388608"],
      { stdout: "piped", stderr: "piped" },
    );
    const err = new Response(child.stderr).text();
    const events: CtEvent[] = [];
    let onProbe: () => void = () => {};
    const probed = new Promise<void>((r) => onProbe = r);
    const reading = (async () => {
      for await (const line of readLines(child.stdout)) {
        const ev = parseEventLine(line);
        if (ev === undefined) continue;
        if (ev.entry.src === PROBE.src) onProbe();
        else events.push(ev);
      }
    })();
    const spec = { ...PROBE, state: "SYN_SENT" as const, timeout: 30 };
    for (let i = 0; i < 50; i++) {
      await this.node.insert(spec);
      await this.node.delete(spec);
      const seen = await Promise.race([probed.then(() => true), sleep(100).then(() => false)]);
      if (seen) break;
      if (i === 49) throw new Error(`conntrack -E in ${this.node.name} saw no event: ${await err}`);
    }
    return {
      async stop() {
        try {
          child.kill("SIGTERM");
        } catch { /* gone */ }
        await child.status;
        await reading;
        const e = await err;
        if (/ENOBUFS/.test(e)) throw new Error(`conntrack -E lost events: ${e}`);
        return events;
      },
    };
  }
}

/**
 * Starts every set of sessions, waits until all are ready, then lets them go
 * together (each `atMs` counting from 300 ms after that), and resolves with
 * every result, so a slow start of one child under load cannot reorder them.
 * `onStart` is called with the start time (epoch ms) once they are let go.
 */
export async function sessionsTogether(
  net: SlowNet,
  sets: { ns: Netns; requests: SessionRequest[]; options?: SessionsOptions }[],
  onStart: (at: number) => Promise<void> = () => Promise.resolve(),
): Promise<Map<string, SessionResult>> {
  // Neighbours resolved before the clock starts: a first SYN that waits on neighbour discovery
  // is lost to the clock (a retransmission 1 s later), so warm each path with one ping.
  const paths = new Map<string, { ns: Netns; from: string | undefined; to: string }>();
  for (const s of sets) {
    for (const r of s.requests) {
      paths.set(`${s.ns.name} ${r.localAddress} ${r.host}`, {
        ns: s.ns,
        from: r.localAddress,
        to: r.host,
      });
    }
  }
  await Promise.all(
    [...paths.values()].map((p) =>
      p.ns.exec(["ping", "-c", "1", "-W", "1", ...(p.from ? ["-I", p.from] : []), p.to])
    ),
  );
  const runs = sets.map((s) => net.sessions(s.ns, s.requests, s.options));
  await Promise.all(runs.map((r) => r.ready));
  const at = Date.now() + 300;
  await Promise.all(runs.map((r) => r.start(at)));
  const [maps] = await Promise.all([Promise.all(runs.map((r) => r.results)), onStart(at)]);
  return new Map(maps.flatMap((m) => [...m]));
}

const denoDirs = new Map<number, string>();

/** A Deno cache directory owned by `uid`, made once per process and removed when it ends. */
function denoDirFor(uid: number): string {
  let dir = denoDirs.get(uid);
  if (dir === undefined) {
    dir = Deno.makeTempDirSync({ prefix: `cct-deno-${uid}-` });
    Deno.chownSync(dir, uid, uid);
    const made = dir;
    globalThis.addEventListener("unload", () => Deno.removeSync(made, { recursive: true }));
    denoDirs.set(uid, dir);
  }
  return dir;
}

function tables(family: "ipv4" | "ipv6"): string {
  return family === "ipv4" ? "iptables" : "ip6tables";
}

async function must(ns: Netns, cmd: string[], stdin?: string): Promise<void> {
  const r = await ns.exec(cmd, stdin === undefined ? {} : { stdin });
  if (r.code !== 0) {
    throw new Error(`${cmd.join(" ")} in ${ns.name} exited ${r.code}: ${r.stderr.trim()}`);
  }
}

/** Runs `ip` commands (without the leading `ip`) in one `ip -batch -` inside `ns`. */
function ipBatch(ns: Netns, lines: string[]): Promise<void> {
  return must(ns, ["ip", "-batch", "-"], lines.join("\n") + "\n");
}

/** The C helpers, compiled (see {@linkcode binaries}). */
interface Binaries {
  frameDelay: string;
  pongServer: string;
}

let compiled: Promise<Binaries> | undefined;

/**
 * Compiles frame_delay.c and pong_server.c once per process into a
 * temporary directory that is removed when the process ends.
 */
function binaries(): Promise<Binaries> {
  compiled ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "cct-slow-net-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const build = async (name: string) => {
      const src = new URL(`./${name}.c`, import.meta.url).pathname, bin = `${dir}/${name}`;
      const cc = await new Deno.Command("cc", {
        args: ["-O2", "-Wall", "-o", bin, src],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (cc.code !== 0) throw new Error(`cc ${name}.c: ${new TextDecoder().decode(cc.stderr)}`);
      return bin;
    };
    const [frameDelay, pongServer] = await Promise.all([
      build("frame_delay"),
      build("pong_server"),
    ]);
    return { frameDelay, pongServer };
  })();
  return compiled;
}

/**
 * Makes the five namespaces (`cct-LABEL-c-…`, `-n-`, `-b-`, `-r-`, `-s-`),
 * wires them for both families, starts the relay (compiled once per process)
 * and the servers, runs `fn`, and removes everything afterwards, also when
 * `fn` or the setup throws.
 */
export async function withSlowNet<T>(
  label: string,
  options: SlowNetOptions,
  fn: (net: SlowNet) => Promise<T>,
): Promise<T> {
  const p = label.slice(0, 16);
  const bin = await binaries();
  return await withNetns(
    `${p}-c`,
    (clients) =>
      withNetns(
        `${p}-n`,
        (node) =>
          withNetns(`${p}-b`, (backend) =>
            withNetns(`${p}-r`, (relay) =>
              withNetns(`${p}-s`, async (server) => {
                const net = new SlowNet(clients, node, backend, relay, server);
                await wire(net, options);
                await Promise.all([
                  startRelay(relay, bin.frameDelay, options.delayMs),
                  startServer(backend, bin.pongServer, BACKEND_PORT),
                  startServer(server, bin.pongServer, VIP_PORT),
                  options.nodeServer ? startServer(node, bin.pongServer, BACKEND_PORT) : undefined,
                  ...(options.nodePorts ?? []).map((p) =>
                    startServer(node, bin.pongServer, p)
                  ),
                ]);
                return await fn(net);
              }))),
      ),
  );
}

async function wire(net: SlowNet, options: SlowNetOptions): Promise<void> {
  const { clients, node, backend, relay, server } = net;
  // Before any link exists: no duplicate address detection (a link-local address still
  // tentative cannot resolve neighbours, and the first SYN would wait 1 s); the relay is no
  // host (no IPv6 of its own, nothing it would send); the node forwards.
  const noDad = ["net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"];
  await Promise.all([
    must(node, [
      ...["sysctl", "-qw", ...noDad],
      ...["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"],
    ]),
    must(relay, ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]),
    ...[clients, backend, server].map((ns) => must(ns, ["sysctl", "-qw", ...noDad])),
  ]);
  // The links are made from inside the namespaces, peers moved straight into the other one:
  // no interface ever exists on the host.
  await ipBatch(node, [
    `link add cl type veth peer name eth0 netns ${clients.name}`,
    `link add bk type veth peer name eth0 netns ${backend.name}`,
    `link add sv type veth peer name r0 netns ${relay.name}`,
    `link set sv address ${NODE_SERVER_MAC}`,
  ]);
  await ipBatch(relay, [`link add r1 type veth peer name eth0 netns ${server.name}`]);
  const ip: Map<Netns, string[]> = new Map([
    [node, []],
    [relay, ["link set r0 up", "link set r1 up"]],
    [clients, []],
    [backend, []],
    [server, [`link set eth0 address ${SERVER_MAC}`]],
  ]);
  const add = (ns: Netns, line: string) => ip.get(ns)!.push(line);
  for (const family of ["ipv4", "ipv6"] as const) {
    const a = SLOW_ADDRESSES[family];
    const nodad = family === "ipv6" ? " nodad" : "";
    const addr = (ns: Netns, address: string, dev: string, len = a.prefixLen) =>
      add(ns, `addr add ${address}/${len} dev ${dev}${nodad}`);
    addr(node, a.nodeA, "cl");
    addr(node, a.nodeB, "cl");
    addr(node, a.nodeBackend, "bk");
    addr(node, a.nodeServer, "sv");
    addr(clients, a.clientA, "eth0");
    addr(clients, a.clientB, "eth0");
    addr(backend, a.backend, "eth0");
    addr(server, a.server, "eth0");
    addr(server, a.vip, "lo", family === "ipv4" ? 32 : 128);
  }
  for (const dev of ["cl", "bk", "sv"]) add(node, `link set ${dev} up`);
  for (const ns of [clients, backend, server]) add(ns, "link set eth0 up");
  for (const family of ["ipv4", "ipv6"] as const) {
    const a = SLOW_ADDRESSES[family];
    add(clients, `route add default via ${a.nodeA}`);
    add(backend, `route add default via ${a.nodeBackend}`);
    add(server, `route add default via ${a.nodeServer}`);
    const perm = "nud permanent";
    add(node, `neigh replace ${a.server} lladdr ${SERVER_MAC} dev sv ${perm}`);
    add(server, `neigh replace ${a.nodeServer} lladdr ${NODE_SERVER_MAC} dev eth0 ${perm}`);
    add(node, `route add ${a.vipPrefix} via ${a.server} dev sv`);
  }
  await Promise.all([...ip].map(([ns, lines]) => ipBatch(ns, lines)));
  for (const family of ["ipv4", "ipv6"] as const) {
    const t = tables(family);
    // kube-proxy's iptables mode drops forwarded packets conntrack calls INVALID. A SYN-ACK
    // that no entry expects is addressed to the node itself (the MASQUERADE address) and goes
    // through INPUT: the node's stack answers it with a RST unless `inputInvalidDrop`.
    const invalid = (options.inputInvalidDrop ? ["FORWARD", "INPUT"] : ["FORWARD"])
      .map((chain) => `-A ${chain} -m conntrack --ctstate INVALID -j DROP`);
    await must(
      node,
      [`${t}-restore`],
      [
        "*filter",
        ...invalid,
        "COMMIT",
        "*nat",
        ":CCT-SERVICES - [0:0]",
        ":CCT-OUTPUT - [0:0]",
        "-A PREROUTING -j CCT-SERVICES",
        "-A OUTPUT -j CCT-OUTPUT",
        "-A POSTROUTING -o sv -j MASQUERADE",
        "COMMIT",
        "",
      ].join("\n"),
    );
    if (options.deadVip) {
      const vip = SLOW_ADDRESSES[family].vip;
      await must(server, [t, "-t", "raw", "-A", "PREROUTING", "-d", vip, "-j", "DROP"]);
    }
  }
}

/** Starts the relay in `relay` (node side r0 → server side r1 at once, back after `delayMs`). */
async function startRelay(relay: Netns, bin: string, delayMs: number): Promise<void> {
  const child = relay.spawn([bin, "r0", "r1", "0", String(delayMs)], {
    stdout: "piped",
    stderr: "piped",
  });
  const err = new Response(child.stderr).text();
  const lines = readLines(child.stdout);
  const first = await lines.next();
  if (first.value !== "ready") {
    const s = await child.status;
    throw new Error(`frame_delay exited ${s.code}: ${await err}`);
  }
  // Keep draining stdout; the namespace's close kills it.
  (async () => {
    for await (const _ of lines) { /* nothing more is printed */ }
  })();
}

/** Starts `pong_server` (see pong_server.c) in `ns` on `port`, every address. */
async function startServer(ns: Netns, bin: string, port: number): Promise<void> {
  const child = ns.spawn([bin, String(port)], { stdout: "piped", stderr: "piped" });
  const err = new Response(child.stderr).text();
  const first = await readLines(child.stdout).next();
  if (first.value !== "listening") {
    const s = await child.status;
    throw new Error(`pong_server in ${ns.name} exited ${s.code}: ${await err}`);
  }
}
