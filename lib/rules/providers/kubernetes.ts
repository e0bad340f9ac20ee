/**
 * The Kubernetes provider (zero config in a cluster): a destination is NATed
 * now when it is a Service address and TCP port whose Service has ready
 * endpoints (ClusterIPs, externalIPs, LoadBalancer ingress IPs not in
 * `ipMode: Proxy`, NodePorts on this node's addresses; see
 * lib/kube/view.ts). These addresses are virtual: kube-proxy NATs every
 * client's connection to them, so an un-NATed `SYN_SENT` entry toward one is
 * stuck whoever the client is. The view comes from an API watch
 * (lib/kube/services.ts) and is taken once per read; an unsynced or expired
 * view vouches for nothing. Only entries of kube-proxy's conntrack zone
 * (`--kubernetes-zone`, 0 unless told) are answered: kube-proxy's rules do
 * not set a zone, so another zone's traffic is someone else's NAT.
 *
 * @module
 */
import type { ServiceView } from "../../kube/view.ts";
import type { NatProvider, Vouch, VouchQuery } from "./provider.ts";

/** Where the provider gets the view from (lib/kube/services.ts's `KubeServices`). */
export interface ServiceViews {
  view(): ServiceView;
}

/**
 * Vouches for candidates toward a Service destination with ready endpoints.
 *
 * @example
 * ```ts
 * import { KubernetesProvider } from "./kubernetes.ts";
 * import { ServiceView } from "../../kube/view.ts";
 * const view = ServiceView.build(
 *   [{ key: "web/shop", addresses: [{ family: "ipv4", addr: "10.96.0.10", kind: "cluster" }], ports: [{ name: "", port: 80 }] }],
 *   [{ key: "web/shop-a", service: "web/shop", family: "ipv4", ports: [{ name: "", port: 8080 }], ready: 1, serving: "10.244.1.5" }],
 *   [],
 * );
 * const p = new KubernetesProvider({ view: () => view });
 * const candidate = {
 *   family: "ipv4" as const, src: "10.1.0.7", dst: "10.96.0.10", sport: 40000, dport: 80, zone: 0,
 *   timeout: 110, seenFrom: 0, seenTo: 1,
 * };
 * p.observe();
 * p.vouch({ candidate, sameSince: 1, now: 0 })?.reason;
 * // => "Service web/shop port 80 has ready endpoints"
 * ```
 */
export class KubernetesProvider implements NatProvider {
  readonly name = "kubernetes";
  #views: ServiceViews;
  #view: ServiceView | undefined;
  #zone: number;

  /** `o.zone`: the conntrack zone kube-proxy's traffic is tracked in (default 0). */
  constructor(views: ServiceViews, o: { zone?: number } = {}) {
    this.#views = views;
    this.#zone = o.zone ?? 0;
  }

  /** Takes the view once per read. */
  observe(): void {
    this.#view = this.#views.view();
  }

  vouch({ candidate: c }: VouchQuery): Vouch | undefined {
    if (c.zone !== this.#zone) return undefined;
    const t = (this.#view ??= this.#views.view()).vouch(c.family, c.dst, c.dport);
    if (t === undefined) return undefined;
    const port = t.port.name === "" ? String(t.port.port) : `${t.port.name} (${t.port.port})`;
    const where = t.via === "node" ? ` (NodePort ${t.port.nodePort} on this node)` : "";
    return { reason: `Service ${t.service} port ${port} has ready endpoints${where}` };
  }
}
