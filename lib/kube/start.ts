/**
 * Kubernetes at start-up: `--kubernetes` and `--kubeconfig` → credentials
 * (lib/kube/access.ts) → a running {@linkcode KubeServices}, or nothing
 * when Kubernetes is off or no credentials are found. Also where this node's
 * addresses come from, for NodePorts: the local interfaces (the agent runs
 * with `hostNetwork`, so they are the node's), without loopback and link-local
 * addresses (kube-proxy's default `nodePortAddresses` serves NodePorts on
 * every local address; loopback NodePorts are rare and need route_localnet).
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import { type AccessEnvironment, REAL_ENVIRONMENT, resolveAccess } from "./access.ts";
import { canonicalAddress } from "./objects.ts";
import type { KubeServices } from "./services.ts";
import type { NodeAddress } from "./view.ts";

/** A running Kubernetes view. */
export interface RunningKube {
  services: KubeServices;
  /** Where the credentials came from, for the start-up log. */
  origin: string;
  /** Resolves when the watches stopped (after `signal` aborted). */
  done: Promise<void>;
  close(): void;
}

/**
 * Starts watching when `--kubernetes=auto` finds credentials; `undefined`
 * otherwise. Rejects with `AccessError` when the credentials found cannot be
 * used (the caller exits 1 with its message).
 */
export async function startKubernetes(
  o: { kubernetes: "auto" | "off"; kubeconfig: string | undefined; userAgent: string },
  log: Logger,
  signal: AbortSignal,
  e: AccessEnvironment = REAL_ENVIRONMENT,
): Promise<RunningKube | undefined> {
  if (o.kubernetes === "off") return undefined;
  const access = await resolveAccess(o.kubeconfig, e);
  if (access === undefined) {
    log.info("Kubernetes: no credentials found (not in a pod, no --kubeconfig or KUBECONFIG); off");
    return undefined;
  }
  // Loaded only now: an agent without Kubernetes does not carry the client (docs/benchmarks.md).
  const [{ FetchKubeApi }, { KubeServices }] = await Promise.all([
    import("./api.ts"),
    import("./services.ts"),
  ]);
  const api = new FetchKubeApi(access, { userAgent: o.userAgent });
  const services = new KubeServices({ api, log, nodeAddresses: localAddresses });
  log.info("Kubernetes: watching Services and EndpointSlices", {
    server: access.server,
    credentials: access.origin,
    node_addresses: localAddresses().map((a) => a.addr),
  });
  return { services, origin: access.origin, done: services.run(signal), close: () => api.close() };
}

/**
 * This host's addresses for NodePorts: every interface address but loopback
 * and link-local ones, canonical, de-duplicated.
 */
export function localAddresses(
  interfaces: () => Deno.NetworkInterfaceInfo[] = () => Deno.networkInterfaces(),
): NodeAddress[] {
  const out = new Map<string, NodeAddress>();
  for (const i of interfaces()) {
    const c = canonicalAddress(i.address.split("%")[0]);
    if (c === undefined) continue;
    if (c.family === "ipv4" ? c.addr.startsWith("127.") : c.addr === "::1") continue;
    if (c.family === "ipv6" && /^fe[89ab]/.test(c.addr)) continue;
    out.set(c.addr, c);
  }
  return [...out.values()];
}
