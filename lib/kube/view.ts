/**
 * What the cluster says kube-proxy NATs, built from Services and
 * EndpointSlices: a pure value, rebuilt from the reflectors' maps when they
 * change. Two questions are answered:
 *
 * - {@linkcode ServiceView.vouch}: is (address, port) a Service destination
 *   that has ready endpoints now? ClusterIPs (every family), externalIPs and
 *   LoadBalancer ingress IPs (not `ipMode: Proxy`) with each TCP port, and
 *   this node's addresses with each NodePort. A Service port counts only
 *   while some EndpointSlice of the Service has a ready endpoint on a port of
 *   the same name: without one kube-proxy rejects or drops, it does not NAT.
 * - {@linkcode ServiceView.servingAt}: the serving endpoints (address and
 *   port) behind a Service address and port, for the stale-endpoint rule.
 *
 * @module
 */
import type { Family } from "../tuple.ts";
import type { ServicePort, ServiceRecord, SliceRecord } from "./objects.ts";

/** One Service port reachable at some address. */
export interface ServiceTarget {
  /** `namespace/name`. */
  service: string;
  port: ServicePort;
  /** Which address of the Service matched. */
  via: "service" | "node";
}

/** Node addresses, for NodePorts. */
export type NodeAddress = { family: Family; addr: string };

const addrPortKey = (addr: string, port: number) => `${addr} ${port}`;
const servicePortKey = (service: string, portName: string) => `${service}\u0000${portName}`;

/**
 * See the module comment.
 *
 * @example
 * ```ts
 * import { ServiceView } from "./view.ts";
 * const view = ServiceView.build(
 *   [{ key: "web/shop", addresses: [{ family: "ipv4", addr: "10.96.0.10" }], ports: [{ name: "http", port: 80, nodePort: 30080 }] }],
 *   [{ key: "web/shop-a", service: "web/shop", family: "ipv4", ports: [{ name: "http", port: 8080 }], ready: ["10.244.1.5"], serving: ["10.244.1.5"] }],
 *   [{ family: "ipv4", addr: "192.0.2.10" }],
 * );
 * view.vouch("ipv4", "10.96.0.10", 80)?.service; // => "web/shop"
 * view.vouch("ipv4", "192.0.2.10", 30080)?.via; // => "node"
 * view.servingAt("10.96.0.10", 80)?.has("10.244.1.5 8080"); // => true
 * ```
 */
export class ServiceView {
  /** `addr port` → the Service ports reachable there (ready endpoints or not). */
  #targets = new Map<string, ServiceTarget[]>();
  /** Service port → `addr port` of its serving endpoints. */
  #serving = new Map<string, Set<string>>();
  /** Service ports with at least one ready endpoint. */
  #ready = new Set<string>();
  /** Destinations (address and port pairs) vouched for. */
  readonly vouched: number;

  private constructor(vouched: number) {
    this.vouched = vouched;
  }

  /** An empty view: vouches for nothing. */
  static empty(): ServiceView {
    return new ServiceView(0);
  }

  /** The view of these Services and slices, NodePorts on `nodeAddresses`. */
  static build(
    services: Iterable<ServiceRecord>,
    slices: Iterable<SliceRecord>,
    nodeAddresses: readonly NodeAddress[],
  ): ServiceView {
    const serving = new Map<string, Set<string>>();
    const ready = new Set<string>();
    for (const s of slices) {
      for (const p of s.ports) {
        const k = servicePortKey(s.service, p.name);
        if (s.ready.length > 0) ready.add(k);
        if (s.serving.length === 0) continue;
        let set = serving.get(k);
        if (set === undefined) serving.set(k, set = new Set());
        for (const a of s.serving) set.add(addrPortKey(a, p.port));
      }
    }
    const targets = new Map<string, ServiceTarget[]>();
    let vouched = 0;
    const add = (addr: string, port: number, t: ServiceTarget) => {
      const k = addrPortKey(addr, port);
      let list = targets.get(k);
      if (list === undefined) targets.set(k, list = []);
      list.push(t);
      if (ready.has(servicePortKey(t.service, t.port.name))) vouched++;
    };
    for (const svc of services) {
      for (const port of svc.ports) {
        for (const a of svc.addresses) {
          add(a.addr, port.port, { service: svc.key, port, via: "service" });
        }
        if (port.nodePort === undefined) continue;
        for (const n of nodeAddresses) {
          add(n.addr, port.nodePort, { service: svc.key, port, via: "node" });
        }
      }
    }
    const view = new ServiceView(vouched);
    view.#targets = targets;
    view.#serving = serving;
    view.#ready = ready;
    return view;
  }

  /**
   * The Service port at (`addr`, `port`) that has ready endpoints now, or
   * `undefined`. `family` only guards against a mismatched caller.
   */
  vouch(family: Family, addr: string, port: number): ServiceTarget | undefined {
    if ((family === "ipv6") !== addr.includes(":")) return undefined;
    for (const t of this.#targets.get(addrPortKey(addr, port)) ?? []) {
      if (this.#ready.has(servicePortKey(t.service, t.port.name))) return t;
    }
    return undefined;
  }

  /** The Service ports reachable at (`addr`, `port`), ready or not. */
  targetsAt(addr: string, port: number): readonly ServiceTarget[] {
    return this.#targets.get(addrPortKey(addr, port)) ?? [];
  }

  /**
   * The serving endpoints (`addr port`) behind (`addr`, `port`): the union
   * over every Service port there; `undefined` when no Service is there.
   */
  servingAt(addr: string, port: number): ReadonlySet<string> | undefined {
    const targets = this.#targets.get(addrPortKey(addr, port));
    if (targets === undefined) return undefined;
    const out = new Set<string>();
    for (const t of targets) {
      for (const e of this.#serving.get(servicePortKey(t.service, t.port.name)) ?? []) out.add(e);
    }
    return out;
  }

  /** Every Service port's serving endpoints, keyed by Service port (for diffs). */
  servingByPort(): ReadonlyMap<string, ReadonlySet<string>> {
    return this.#serving;
  }
}

export { addrPortKey, servicePortKey };
