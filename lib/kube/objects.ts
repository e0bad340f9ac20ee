/**
 * Services (v1) and EndpointSlices (discovery.k8s.io/v1) as the API returns
 * them → the few fields the agent uses, checked once here where they enter.
 * Anything else of the object is dropped, so a stored Service costs a few
 * hundred bytes whatever the API sent. Pure.
 *
 * @module
 */
import { canonicalIPv6, parseIPv4 } from "../model/addr.ts";
import type { Family } from "../model/tuple.ts";

/** One TCP port of a Service. */
export interface ServicePort {
  /** `""` when the Service has a single unnamed port. */
  name: string;
  port: number;
  /** Set for NodePort and LoadBalancer Services (unless allocation is off). */
  nodePort?: number;
}

/** What the agent keeps of a Service. */
export interface ServiceRecord {
  /** `namespace/name`. */
  key: string;
  /** Virtual addresses kube-proxy NATs: ClusterIPs, externalIPs, LB ingress IPs not in Proxy mode. */
  addresses: { family: Family; addr: string }[];
  /** TCP ports only. */
  ports: ServicePort[];
}

/** One port of an EndpointSlice. */
export interface SlicePort {
  name: string;
  port: number;
}

/** What the agent keeps of an EndpointSlice. */
export interface SliceRecord {
  /** `namespace/name` of the slice. */
  key: string;
  /** `namespace/name` of its Service (label `kubernetes.io/service-name`). */
  service: string;
  family: Family;
  /** TCP ports only. */
  ports: SlicePort[];
  /** Canonical addresses of endpoints that are ready (traffic goes to them). */
  ready: string[];
  /** Canonical addresses of endpoints that are serving (ready, or terminating but serving). */
  serving: string[];
}

/** A decoded object, or why it was refused (the caller counts and logs it). */
export type Decoded<T> = { ok: true; value: T } | { ok: false; problem: string };

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const port = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535 ? v : undefined;

/** `namespace/name` of an object's metadata, or `undefined`. */
export function objectKey(o: unknown): string | undefined {
  if (!isObj(o) || !isObj(o.metadata)) return undefined;
  const ns = str(o.metadata.namespace);
  const name = str(o.metadata.name);
  return ns && name ? `${ns}/${name}` : undefined;
}

/** The object's `metadata.resourceVersion`, or `undefined`. */
export function resourceVersionOf(o: unknown): string | undefined {
  return isObj(o) && isObj(o.metadata) ? str(o.metadata.resourceVersion) : undefined;
}

/**
 * A canonical address of either family, or `undefined`.
 *
 * @example
 * ```ts
 * import { canonicalAddress } from "./objects.ts";
 * canonicalAddress("2001:DB8::0:1"); // => { family: "ipv6", addr: "2001:db8::1" }
 * canonicalAddress("None"); // => undefined
 * ```
 */
export function canonicalAddress(s: unknown): { family: Family; addr: string } | undefined {
  if (typeof s !== "string") return undefined;
  if (s.includes(":")) {
    const v6 = canonicalIPv6(s);
    return v6 === undefined ? undefined : { family: "ipv6", addr: v6 };
  }
  return parseIPv4(s) === undefined ? undefined : { family: "ipv4", addr: s };
}

/**
 * A v1 Service → {@linkcode ServiceRecord}. Headless (`clusterIP: None`) and
 * ExternalName Services keep no address; LoadBalancer ingress with
 * `ipMode: Proxy` is left out (the load balancer proxies, kube-proxy does
 * not NAT that address); non-TCP ports are left out.
 *
 * @example
 * ```ts
 * import { decodeService } from "./objects.ts";
 * const r = decodeService({
 *   metadata: { namespace: "web", name: "shop" },
 *   spec: { type: "LoadBalancer", clusterIPs: ["10.96.0.10"], ports: [{ port: 80, protocol: "TCP", nodePort: 30080 }] },
 *   status: { loadBalancer: { ingress: [{ ip: "203.0.113.7" }, { ip: "203.0.113.8", ipMode: "Proxy" }] } },
 * });
 * r.ok && r.value.addresses.map((a) => a.addr); // => ["10.96.0.10", "203.0.113.7"]
 * ```
 */
export function decodeService(o: unknown): Decoded<ServiceRecord> {
  const key = objectKey(o);
  if (key === undefined || !isObj(o)) return { ok: false, problem: "no metadata namespace/name" };
  const spec = isObj(o.spec) ? o.spec : {};
  const type = str(spec.type) ?? "ClusterIP";
  const ports: ServicePort[] = [];
  for (const p of arr(spec.ports)) {
    if (!isObj(p) || (str(p.protocol) ?? "TCP") !== "TCP") continue;
    const n = port(p.port);
    if (n === undefined) {
      return { ok: false, problem: `${key}: bad port ${JSON.stringify(p.port)}` };
    }
    const np = port(p.nodePort);
    ports.push({ name: str(p.name) ?? "", port: n, ...(np === undefined ? {} : { nodePort: np }) });
  }
  const addresses: ServiceRecord["addresses"] = [];
  const add = (a: unknown) => {
    const c = canonicalAddress(a);
    if (c && !addresses.some((x) => x.addr === c.addr)) addresses.push(c);
  };
  if (type !== "ExternalName" && str(spec.clusterIP) !== "None") {
    const ips = arr(spec.clusterIPs);
    for (const a of ips.length > 0 ? ips : [spec.clusterIP]) add(a);
    for (const a of arr(spec.externalIPs)) add(a);
    const lb = isObj(o.status) && isObj(o.status.loadBalancer) ? o.status.loadBalancer : {};
    for (const ing of arr(lb.ingress)) {
      if (isObj(ing) && str(ing.ipMode) !== "Proxy") add(ing.ip);
    }
  }
  return { ok: true, value: { key, addresses, ports } };
}

/**
 * A discovery.k8s.io/v1 EndpointSlice → {@linkcode SliceRecord}. Conditions
 * are read as the API documents them: `ready` or `serving` unset counts as
 * true (when in doubt an endpoint is serving, and its entries are kept). FQDN slices and slices without the
 * service-name label are refused (they name no Service the agent knows).
 *
 * @example
 * ```ts
 * import { decodeSlice } from "./objects.ts";
 * const r = decodeSlice({
 *   metadata: { namespace: "web", name: "shop-x1", labels: { "kubernetes.io/service-name": "shop" } },
 *   addressType: "IPv4",
 *   ports: [{ name: "", port: 8080, protocol: "TCP" }],
 *   endpoints: [
 *     { addresses: ["10.244.1.5"], conditions: { ready: true } },
 *     { addresses: ["10.244.2.9"], conditions: { ready: false, serving: true, terminating: true } },
 *   ],
 * });
 * r.ok && [r.value.ready, r.value.serving]; // => [["10.244.1.5"], ["10.244.1.5", "10.244.2.9"]]
 * ```
 */
export function decodeSlice(o: unknown): Decoded<SliceRecord> {
  const key = objectKey(o);
  if (key === undefined || !isObj(o)) return { ok: false, problem: "no metadata namespace/name" };
  const meta = o.metadata as Json;
  const labels = isObj(meta.labels) ? meta.labels : {};
  const svc = str(labels["kubernetes.io/service-name"]);
  if (!svc) return { ok: false, problem: `${key}: no kubernetes.io/service-name label` };
  const type = str(o.addressType);
  if (type !== "IPv4" && type !== "IPv6") {
    return { ok: false, problem: `${key}: addressType ${JSON.stringify(type)} is not IPv4/IPv6` };
  }
  const family: Family = type === "IPv4" ? "ipv4" : "ipv6";
  const ports: SlicePort[] = [];
  for (const p of arr(o.ports)) {
    if (!isObj(p) || (str(p.protocol) ?? "TCP") !== "TCP") continue;
    const n = port(p.port);
    if (n !== undefined) ports.push({ name: str(p.name) ?? "", port: n });
  }
  const ready: string[] = [];
  const serving: string[] = [];
  for (const e of arr(o.endpoints)) {
    if (!isObj(e)) continue;
    const cond = isObj(e.conditions) ? e.conditions : {};
    const isReady = cond.ready !== false;
    const isServing = cond.serving !== false;
    for (const a of arr(e.addresses)) {
      const c = canonicalAddress(a);
      if (c === undefined || c.family !== family) continue;
      if (isReady) ready.push(c.addr);
      if (isServing) serving.push(c.addr);
    }
  }
  return {
    ok: true,
    value: { key, service: `${key.split("/")[0]}/${svc}`, family, ports, ready, serving },
  };
}
