/**
 * Kubernetes at start-up: `--kubernetes` and `--kubeconfig` → credentials
 * (lib/kube/access.ts) → a running {@linkcode KubeServices}, or nothing
 * when Kubernetes is off or no credentials are found. NodePorts count on the
 * addresses `--nodeport-addresses` chooses (lib/kube/node_addresses.ts).
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import {
  type AccessEnvironment,
  plainHttpWarning,
  REAL_ENVIRONMENT,
  resolveAccess,
} from "./access.ts";
import { type NodePortAddresses, nodePortAddresses } from "./node_addresses.ts";
import type { KubeServices } from "./services.ts";

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
  o: {
    kubernetes: "auto" | "off";
    kubeconfig: string | undefined;
    userAgent: string;
    /** `--nodeport-addresses`; default `primary`. */
    nodePortAddresses?: NodePortAddresses;
    /** `--stale-endpoint-settle` in ms (lib/kube/services.ts). */
    settleMs?: number;
  },
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
  const plain = plainHttpWarning(access.server);
  if (plain !== undefined) log.warn(plain);
  if (api.transport.proxiesIgnored.length > 0) {
    log.info("Kubernetes: proxy variables ignored; the API is reached directly", {
      variables: api.transport.proxiesIgnored,
    });
  }
  const choice = o.nodePortAddresses ?? { kind: "primary" };
  const nodeAddresses = () => nodePortAddresses(choice);
  const services = new KubeServices({
    api,
    log,
    nodeAddresses,
    ...(o.settleMs !== undefined ? { settleMs: o.settleMs } : {}),
  });
  log.info("Kubernetes: watching Services and EndpointSlices", {
    server: access.server,
    credentials: access.origin,
    nodeport_addresses: nodeAddresses().map((a) => a.addr),
  });
  return { services, origin: access.origin, done: services.run(signal), close: () => api.close() };
}
