/**
 * The cluster's Services as the rules see them: two reflectors (Services,
 * EndpointSlices) kept in step with the API, the {@linkcode ServiceView}
 * rebuilt from them at most once per question after a change, how fresh it
 * is, and which endpoints stopped serving (seen serving, then gone or
 * `serving: false`), for the stale-endpoint rule.
 *
 * Freshness comes from progress (a list landed, an event or a bookmark
 * arrived), not from mere contact: `live` while both watches are open and
 * each made progress within `progressLimitMs` (kube-apiserver sends a
 * bookmark about every minute on a quiet stream); `stale` otherwise, while
 * both made progress within `staleLimitMs`: the last view then vouches for
 * ClusterIPs only (virtual addresses no real host owns; an externalIP or
 * LoadBalancer IP of a Service deleted meanwhile may be a real host now), said
 * in the log, the metrics and /readyz; past that, `expired`: the view vouches
 * for nothing. The stale-endpoint rule acts only on a `live` view, and only
 * on a removal at least `settleMs` old that both watches have confirmed
 * since (a newer event or bookmark on each stream): the two streams may
 * deliver out of order, a slice writer may remove an endpoint from one slice
 * before adding it to another, a Service may come back with the same
 * ClusterIP. While objects are left out over a bound, the view vouches for
 * nothing and no endpoint counts as removed.
 *
 * @module
 */
import type { Clock } from "../basics.ts";
import type { Logger } from "../log/logger.ts";
import type { KubeApi } from "./api.ts";
import {
  decodeService,
  decodeSlice,
  endpointCount,
  type ServiceRecord,
  type SliceRecord,
} from "./objects.ts";
import { Reflector, type ReflectorState } from "./reflector.ts";
import { addrPortKey, type NodeAddress, servicePortKey, ServiceView } from "./view.ts";

/** Services kept at most (the bound); EndpointSlices at most 5 per Service. */
export const MAX_SERVICES = 10_000;
export const MAX_SLICES = 5 * MAX_SERVICES;
/**
 * Endpoint addresses kept at most over all slices: 500,000, over three times
 * the scalability envelope's 150,000 pods; a slice keeps its serving
 * addresses as one string, so that is some 10 MB of heap for IPv4
 * (docs/benchmarks.md, "Kubernetes at cluster scale"). Past it slices are
 * ignored (counted in `overflow`).
 */
export const MAX_ENDPOINT_ADDRESSES = 500_000;

/** Options for {@linkcode KubeServices}. */
export interface KubeServicesOptions {
  api: KubeApi;
  log: Logger;
  /** This node's addresses, for NodePorts; asked again every `nodeAddressesEveryMs`. */
  nodeAddresses: () => NodeAddress[];
  nodeAddressesEveryMs?: number;
  clock?: Clock;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** How long the last view is used after the watches stopped making progress; default 5 min. */
  staleLimitMs?: number;
  /** Each watch made progress within this long, or the view is not live; default 90 s. */
  progressLimitMs?: number;
  /** How old a removal must be before `removedAt` tells it; default 5 s. */
  settleMs?: number;
  /** How long a removed endpoint is remembered; default 180 s (past the 120 s SYN_SENT timeout). */
  removedTtlMs?: number;
  maxServices?: number;
  maxSlices?: number;
  /** See {@linkcode MAX_ENDPOINT_ADDRESSES}. */
  maxEndpointAddresses?: number;
  /** Passed to both reflectors (tests shorten them). */
  reflector?: {
    watchTimeoutS?: number;
    backoffMs?: { first: number; max: number };
    maxDropped?: number;
  };
}

/** How fresh the view is. */
export type Freshness = "unsynced" | "live" | "stale" | "expired";

/** What {@linkcode KubeServices.status} tells. */
export interface KubeStatus {
  freshness: Freshness;
  /** Objects kept. */
  services: number;
  slices: number;
  /** Objects over the bounds, not kept. */
  servicesIgnored: number;
  slicesIgnored: number;
  overflow: number;
  /** Destinations (address and port) the last view built vouches for. */
  destinations: number;
  /** Since the API last answered both watches (the older of the two). */
  lastContactAgeMs: number | undefined;
  lastError: string | undefined;
}

/** Removed endpoints remembered at most. */
const MAX_REMOVED = 50_000;

/** See the module comment. */
export class KubeServices {
  readonly services: Reflector<ServiceRecord>;
  readonly slices: Reflector<SliceRecord>;
  #o: KubeServicesOptions;
  #clock: Clock;
  #view = ServiceView.empty();
  /** `#view` restricted to ClusterIPs, for a stale view (made once per view). */
  #clusterOnly: ServiceView | undefined;
  /** `#view` vouching for nothing, while objects are over the bounds (made once per view). */
  #nothing: ServiceView | undefined;
  /** Whether the log last said the objects are over the bounds. */
  #saidOver = false;
  #dirty = true;
  #nodes: NodeAddress[] = [];
  #nodesAt = -Infinity;
  /** `service port \0 addr port` → monotonic ms when it stopped serving. */
  #removed = new Map<string, number>();
  #said: Freshness = "unsynced";

  constructor(o: KubeServicesOptions) {
    this.#o = o;
    this.#clock = o.clock ?? (() => performance.now());
    const common = {
      api: o.api,
      log: o.log,
      clock: this.#clock,
      ...(o.sleep ? { sleep: o.sleep } : {}),
      onChange: () => (this.#dirty = true),
      ...(o.reflector ?? {}),
    };
    this.services = new Reflector({
      ...common,
      path: "/api/v1/services",
      what: "services",
      decode: decodeService,
      maxItems: o.maxServices ?? MAX_SERVICES,
    });
    this.slices = new Reflector({
      ...common,
      path: "/apis/discovery.k8s.io/v1/endpointslices",
      what: "endpointslices",
      decode: decodeSlice,
      maxItems: o.maxSlices ?? MAX_SLICES,
      weight: endpointCount,
      maxWeight: o.maxEndpointAddresses ?? MAX_ENDPOINT_ADDRESSES,
      // Small pages: a slice holds up to 100 endpoints (1,000 with custom writers).
      pageSize: 100,
    });
  }

  /** Lists and watches both resources until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.services.run(signal), this.slices.run(signal)]);
  }

  /** How fresh the view is now. */
  freshness(): Freshness {
    const a = this.services.state;
    const b = this.slices.state;
    if (!a.synced || !b.synced) return "unsynced";
    const now = this.#clock();
    const progress = this.#o.progressLimitMs ?? 90_000;
    const moving = (r: ReflectorState) => now - (r.progressAt ?? -Infinity) <= progress;
    if (a.watching && b.watching && moving(a) && moving(b)) return "live";
    const limit = this.#o.staleLimitMs ?? 300_000;
    const last = Math.min(a.progressAt ?? -Infinity, b.progressAt ?? -Infinity);
    return now - last <= limit ? "stale" : "expired";
  }

  /**
   * The view to decide on: rebuilt when something changed; ClusterIPs only
   * when stale; empty when unsynced or expired. Says changes of freshness in
   * the log.
   */
  view(): ServiceView {
    const f = this.freshness();
    if (f !== this.#said) {
      const fields = { from: this.#said, to: f, ...this.status() };
      if (f === "live") this.#o.log.info("Kubernetes Services view is live", fields);
      else if (f === "stale") {
        this.#o.log.warn("Kubernetes API unreachable; keeping the last Services view", fields);
      } else if (f === "expired") {
        this.#o.log.error(
          "Kubernetes API unreachable for too long; Services vouch for nothing until it answers",
          fields,
        );
      }
      this.#said = f;
    }
    if (f === "unsynced" || f === "expired") return ServiceView.empty();
    const now = this.#clock();
    if (now - this.#nodesAt >= (this.#o.nodeAddressesEveryMs ?? 30_000)) {
      const nodes = this.#o.nodeAddresses();
      if (JSON.stringify(nodes) !== JSON.stringify(this.#nodes)) this.#dirty = true;
      this.#nodes = nodes;
      this.#nodesAt = now;
    }
    if (this.#dirty) this.#rebuild(now);
    if (this.#overBound()) return this.#nothing ??= this.#view.withNothingVouched();
    if (f === "stale") return this.#clusterOnly ??= this.#view.withClusterIPsOnly();
    return this.#view;
  }

  /**
   * When the endpoint `endpoint` (`addr port`) stopped serving the Service
   * port at (`addr`, `port`), and which Service that is, if it stopped while
   * this view watched, at least `settleMs` ago, both watches made progress
   * since, it is not serving again (behind any Service port there), and the
   * view is live; else `undefined`.
   */
  removedAt(
    addr: string,
    port: number,
    endpoint: string,
  ): { at: number; service: string } | undefined {
    if (this.freshness() !== "live") return undefined;
    const view = this.view();
    if (view.servingAt(addr, port)?.has(endpoint)) return undefined;
    for (const t of view.targetsAt(addr, port)) {
      const at = this.#removed.get(`${servicePortKey(t.service, t.port.name)}\u0000${endpoint}`);
      if (at !== undefined && this.#settled(at)) return { at, service: t.service };
    }
    return undefined;
  }

  /** For metrics, logs and /readyz. */
  status(): KubeStatus {
    const a: ReflectorState = this.services.state;
    const b: ReflectorState = this.slices.state;
    const contact = Math.min(a.lastContactAt ?? Infinity, b.lastContactAt ?? Infinity);
    return {
      freshness: this.freshness(),
      services: this.services.items.size,
      slices: this.slices.items.size,
      servicesIgnored: a.overflow,
      slicesIgnored: b.overflow,
      overflow: a.overflow + b.overflow,
      destinations: this.#overBound() ? 0 : this.#view.vouched,
      lastContactAgeMs: contact === Infinity ? undefined : this.#clock() - contact,
      lastError: a.lastError ?? b.lastError,
    };
  }

  /**
   * Whether objects were left out over a bound. The picture is then not
   * kube-proxy's: the view vouches for nothing and no endpoint counts as
   * removed until the objects fit again (said once in the log each way; the
   * `kubernetes_objects_ignored` gauge counts them).
   */
  #overBound(): boolean {
    const over = this.services.state.overflow > 0 || this.slices.state.overflow > 0;
    if (over !== this.#saidOver) {
      this.#saidOver = over;
      const fields = {
        services_ignored: this.services.state.overflow,
        slices_ignored: this.slices.state.overflow,
      };
      if (over) {
        this.#o.log.warn(
          "Kubernetes objects over the bounds: Services vouch for nothing and stale_endpoint does not act until they fit",
          fields,
        );
      } else this.#o.log.info("Kubernetes objects fit the bounds again", fields);
    }
    return over;
  }

  /** A removal at `at` is old enough and both watches made progress since. */
  #settled(at: number): boolean {
    const confirmed = (r: ReflectorState) => (r.progressAt ?? -Infinity) > at;
    return this.#clock() - at >= (this.#o.settleMs ?? 5_000) &&
      confirmed(this.services.state) && confirmed(this.slices.state);
  }

  /** Endpoints remembered as removed (bounded). */
  get removedCount(): number {
    return this.#removed.size;
  }

  #rebuild(now: number): void {
    const before = this.#view;
    const view = ServiceView.build(
      this.services.items.values(),
      this.slices.items.values(),
      this.#nodes,
    );
    const ttl = this.#o.removedTtlMs ?? 180_000;
    for (const [k, at] of this.#removed) if (now - at > ttl) this.#removed.delete(k);
    // A picture with objects left out cannot tell "removed" from "not kept".
    const trusted = this.slices.state.overflow === 0 && this.services.state.overflow === 0;
    if (!trusted) this.#removed.clear();
    // Only Services whose slices changed since the last view can have lost or regained an
    // endpoint; the rest were compared at an earlier rebuild.
    const changed = view.changedSince(before);
    before.forEachServing((service, portName, was) => {
      // A slice kube-proxy skips now hides its endpoints: not a removal.
      if (view.hasNotProxied(service)) return;
      const is = new Set(view.servingOf(service, portName));
      const k = servicePortKey(service, portName);
      for (const e of was) {
        if (is.has(e)) continue;
        if (trusted && this.#removed.size < MAX_REMOVED) this.#removed.set(`${k}\u0000${e}`, now);
      }
    }, changed);
    if (this.#removed.size > 0) {
      view.forEachServing((service, portName, is) => {
        const k = servicePortKey(service, portName);
        for (const e of is) this.#removed.delete(`${k}\u0000${e}`);
      }, changed);
    }
    this.#view = view;
    this.#clusterOnly = undefined;
    this.#nothing = undefined;
    this.#dirty = false;
  }
}

export { addrPortKey };
