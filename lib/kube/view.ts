/**
 * What the cluster says kube-proxy NATs, built from Services and
 * EndpointSlices: a pure value, rebuilt from the reflectors' maps when they
 * change. Two questions are answered:
 *
 * - {@linkcode ServiceView.vouch}: is (address, port) a Service destination
 *   that has ready endpoints now? ClusterIPs (every family), externalIPs and
 *   LoadBalancer ingress IPs (not `ipMode: Proxy`) with each TCP port, and
 *   this node's NodePort addresses (lib/kube/node_addresses.ts) with each
 *   NodePort. A Service port counts at an address only while some
 *   EndpointSlice of the Service of the address's family has a ready endpoint
 *   on a port of the same name: without one kube-proxy rejects or drops, it
 *   does not NAT (and it never NATs one family to the other's endpoints).
 * - {@linkcode ServiceView.servingAt}: the serving endpoints (address and
 *   port) behind a Service address and port, for the stale-endpoint rule.
 *
 * @module
 */
import type { Family } from "../model/tuple.ts";
import {
  type AddressKind,
  type ServicePort,
  type ServiceRecord,
  servingAddresses,
  type SliceRecord,
} from "./objects.ts";

/** One Service port reachable at some address. */
export interface ServiceTarget {
  /** `namespace/name`. */
  service: string;
  port: ServicePort;
  /** Which address of the Service matched: a ClusterIP, an externalIP, an LB ingress IP, a node's. */
  via: AddressKind | "node";
}

/** Node addresses, for NodePorts. */
export type NodeAddress = { family: Family; addr: string };

const addrPortKey = (addr: string, port: number) => `${addr} ${port}`;
const servicePortKey = (service: string, portName: string) => `${service}\u0000${portName}`;

/**
 * See the module comment. Indexed by address (and NodePort), not by every
 * address × port pair, so that 10,000 Services cost a few MiB.
 *
 * @example
 * ```ts
 * import { ServiceView } from "./view.ts";
 * const view = ServiceView.build(
 *   [{ key: "web/shop", addresses: [{ family: "ipv4", addr: "10.96.0.10", kind: "cluster" }], ports: [{ name: "http", port: 80, nodePort: 30080 }] }],
 *   [{ key: "web/shop-a", service: "web/shop", family: "ipv4", ports: [{ name: "http", port: 8080 }], ready: 1, serving: "10.244.1.5" }],
 *   [{ family: "ipv4", addr: "192.0.2.10" }],
 * );
 * view.vouch("ipv4", "10.96.0.10", 80)?.service; // => "web/shop"
 * view.vouch("ipv4", "192.0.2.10", 30080)?.via; // => "node"
 * view.servingAt("10.96.0.10", 80)?.has("10.244.1.5 8080"); // => true
 * ```
 */
export class ServiceView {
  /** Service address → the Service there (an array when several share it). */
  #byAddr = new Map<string, ServiceRecord | ServiceRecord[]>();
  /** NodePort → the Service with it (an array when several). */
  #byNodePort = new Map<number, ServiceRecord | ServiceRecord[]>();
  #nodes = new Set<string>();
  /** Service key → its slices (the records themselves, nothing copied). */
  #slices = new Map<string, SliceRecord | SliceRecord[]>();
  /** Services with a slice kube-proxy skips (labelled): their endpoints are not known here. */
  #notProxied = new Set<string>();
  /** Vouch for ClusterIPs only (a stale view: see lib/kube/services.ts). */
  #clusterIPsOnly = false;
  /** Vouch for nothing (objects over the bounds: see lib/kube/services.ts). */
  #vouchNone = false;
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
    const bySvc = new Map<string, SliceRecord | SliceRecord[]>();
    const notProxied = new Set<string>();
    for (const s of slices) {
      push(bySvc, s.service, s);
      if (s.notProxied) notProxied.add(s.service);
    }
    const byAddr = new Map<string, ServiceRecord | ServiceRecord[]>();
    const byNodePort = new Map<number, ServiceRecord | ServiceRecord[]>();
    const nodes = new Set(nodeAddresses.map((n) => n.addr));
    let vouched = 0;
    for (const svc of services) {
      for (const a of svc.addresses) push(byAddr, a.addr, svc);
      const mine = bySvc.get(svc.key);
      for (const p of svc.ports) {
        for (const family of FAMILIES) {
          // kube-proxy NATs an address of one family to endpoints of that family only.
          if (mine === undefined || !hasReady(mine, p.name, family)) continue;
          vouched += svc.addresses.filter((a) => a.family === family).length;
          if (p.nodePort !== undefined) {
            vouched += nodeAddresses.filter((n) => n.family === family).length;
          }
        }
        if (p.nodePort !== undefined) push(byNodePort, p.nodePort, svc);
      }
    }
    const view = new ServiceView(vouched);
    view.#byAddr = byAddr;
    view.#byNodePort = byNodePort;
    view.#nodes = nodes;
    view.#slices = bySvc;
    view.#notProxied = notProxied;
    return view;
  }

  /**
   * The same view, vouching only for ClusterIPs (not externalIPs, LoadBalancer
   * IPs or NodePorts); `servingAt` and the rest unchanged.
   */
  withClusterIPsOnly(): ServiceView {
    const v = this.#copy(this.vouched);
    v.#clusterIPsOnly = true;
    return v;
  }

  /** The same view, vouching for nothing; `servingAt` and the rest unchanged. */
  withNothingVouched(): ServiceView {
    const v = this.#copy(0);
    v.#vouchNone = true;
    return v;
  }

  #copy(vouched: number): ServiceView {
    const v = new ServiceView(vouched);
    v.#byAddr = this.#byAddr;
    v.#byNodePort = this.#byNodePort;
    v.#nodes = this.#nodes;
    v.#slices = this.#slices;
    v.#notProxied = this.#notProxied;
    return v;
  }

  /**
   * The Service port at (`addr`, `port`) that has ready endpoints of
   * `family` now (kube-proxy NATs each family to its own endpoints), or
   * `undefined`.
   */
  vouch(family: Family, addr: string, port: number): ServiceTarget | undefined {
    if (this.#vouchNone || (family === "ipv6") !== addr.includes(":")) return undefined;
    for (const t of this.targetsAt(addr, port)) {
      if (this.#clusterIPsOnly && t.via !== "cluster") continue;
      const mine = this.#slices.get(t.service);
      if (mine !== undefined && hasReady(mine, t.port.name, family)) return t;
    }
    return undefined;
  }

  /** The Service ports reachable at (`addr`, `port`), ready or not. */
  targetsAt(addr: string, port: number): ServiceTarget[] {
    const out: ServiceTarget[] = [];
    for (const svc of each(this.#byAddr.get(addr))) {
      const via = svc.addresses.find((a) => a.addr === addr)!.kind;
      for (const p of svc.ports) {
        if (p.port === port) out.push({ service: svc.key, port: p, via });
      }
    }
    if (this.#nodes.has(addr)) {
      for (const svc of each(this.#byNodePort.get(port))) {
        for (const p of svc.ports) {
          if (p.nodePort === port) out.push({ service: svc.key, port: p, via: "node" });
        }
      }
    }
    return out;
  }

  /**
   * The serving endpoints (`addr port`) behind (`addr`, `port`): the union
   * over every Service port there; `undefined` when no Service is there.
   */
  servingAt(addr: string, port: number): ReadonlySet<string> | undefined {
    const targets = this.targetsAt(addr, port);
    if (targets.length === 0) return undefined;
    const out = new Set<string>();
    for (const t of targets) for (const e of this.servingOf(t.service, t.port.name)) out.add(e);
    return out;
  }

  /** The serving endpoints (`addr port`) of one Service port. */
  servingOf(service: string, portName: string): string[] {
    const out: string[] = [];
    for (const sl of each(this.#slices.get(service))) {
      const p = sl.ports.find((x) => x.name === portName);
      if (p !== undefined) {
        for (const a of servingAddresses(sl)) out.push(addrPortKey(a, p.port));
      }
    }
    return out;
  }

  /**
   * Whether a slice of `service` is one kube-proxy skips (labelled): its
   * endpoints are not in this view, so none may be taken as removed.
   */
  hasNotProxied(service: string): boolean {
    return this.#notProxied.has(service);
  }

  /**
   * Calls `fn` for every Service port with serving endpoints (for diffs), of
   * `services` only when given.
   */
  forEachServing(
    fn: (service: string, portName: string, endpoints: readonly string[]) => void,
    services?: Iterable<string>,
  ): void {
    const visit = (service: string, slices: SliceRecord | SliceRecord[] | undefined) => {
      const names = new Set<string>();
      for (const sl of each(slices)) {
        if (sl.serving !== "") { for (const p of sl.ports) names.add(p.name); }
      }
      for (const name of names) fn(service, name, this.servingOf(service, name));
    };
    if (services === undefined) {
      for (const [service, slices] of this.#slices) visit(service, slices);
    } else for (const service of services) visit(service, this.#slices.get(service));
  }

  /**
   * The Services whose slices are not the very records `before` has (a slice
   * added, changed or gone): only their endpoints can have changed, since
   * records are never modified once decoded. A rebuild after one event
   * compares one Service's endpoints, not 300,000.
   */
  changedSince(before: ServiceView): Set<string> {
    const out = new Set<string>();
    for (const [service, slices] of this.#slices) {
      if (!sameSlices(before.#slices.get(service), slices)) out.add(service);
    }
    for (const service of before.#slices.keys()) {
      if (!this.#slices.has(service)) out.add(service);
    }
    return out;
  }
}

const FAMILIES = ["ipv4", "ipv6"] as const;

/** Whether one of `slices` of `family` has a ready endpoint on a port named `name`. */
function hasReady(slices: SliceRecord | SliceRecord[], name: string, family: Family): boolean {
  for (const s of each(slices)) {
    if (s.family === family && s.ready > 0 && s.ports.some((p) => p.name === name)) {
      return true;
    }
  }
  return false;
}

/** Whether two map values hold the same records in the same order. */
function sameSlices(a: SliceRecord | SliceRecord[] | undefined, b: SliceRecord | SliceRecord[]) {
  if (a === b) return true;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  return a.every((x, i) => x === b[i]);
}

/** A map value that is one item or several, as a list. */
function each<V>(v: V | V[] | undefined): readonly V[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function push<K, V>(m: Map<K, V | V[]>, k: K, v: V): void {
  const cur = m.get(k);
  if (cur === undefined) m.set(k, v);
  else if (Array.isArray(cur)) {
    if (!cur.includes(v)) cur.push(v);
  } else if (cur !== v) m.set(k, [cur, v]);
}

export { addrPortKey, servicePortKey };
