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

/** Which field of the Service an address comes from. */
export type AddressKind = "cluster" | "external" | "ingress";

/** What the agent keeps of a Service. */
export interface ServiceRecord {
  /** `namespace/name`. */
  key: string;
  /** Virtual addresses kube-proxy NATs: ClusterIPs, externalIPs, LB ingress IPs not in Proxy mode. */
  addresses: { family: Family; addr: string; kind: AddressKind }[];
  /** TCP ports only. */
  ports: ServicePort[];
}

/**
 * Labels that make kube-proxy skip a Service or an EndpointSlice (its
 * informers select `!service.kubernetes.io/service-proxy-name,
 * !service.kubernetes.io/headless`): another proxy, or none, handles it.
 */
export const NOT_PROXIED_LABELS = [
  "service.kubernetes.io/service-proxy-name",
  "service.kubernetes.io/headless",
] as const;

/** The first of {@linkcode NOT_PROXIED_LABELS} an object carries (any value), or `undefined`. */
export function notProxiedLabel(o: unknown): string | undefined {
  if (!isObj(o) || !isObj(o.metadata) || !isObj(o.metadata.labels)) return undefined;
  const labels = o.metadata.labels;
  return NOT_PROXIED_LABELS.find((l) => Object.hasOwn(labels, l));
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
  /**
   * How many endpoint addresses are ready (traffic goes to them): all the
   * rules ask of readiness is whether there is one.
   */
  ready: number;
  /**
   * Canonical addresses of the endpoints that are serving (ready, or
   * terminating but serving), joined by one space (`""` for none): one
   * string per slice rather than one per endpoint, a third of the memory at
   * 300,000 endpoints (see {@linkcode servingAddresses}).
   */
  serving: string;
  /**
   * Set when the slice carries one of {@linkcode NOT_PROXIED_LABELS}: kube-proxy
   * ignores it, so it has no endpoint here (`ready` 0, `serving` empty), and
   * its Service's endpoints never count as removed while it is there.
   */
  notProxied?: true;
}

/**
 * The serving endpoint addresses of a slice.
 *
 * @example
 * ```ts
 * import { servingAddresses } from "./objects.ts";
 * servingAddresses({ serving: "10.244.1.5 10.244.2.9" }); // => ["10.244.1.5", "10.244.2.9"]
 * servingAddresses({ serving: "" }); // => []
 * ```
 */
export function servingAddresses(s: Pick<SliceRecord, "serving">): string[] {
  return s.serving === "" ? [] : s.serving.split(" ");
}

/** The endpoint addresses a slice keeps (its weight against the endpoint bound). */
export function endpointCount(s: Pick<SliceRecord, "ready" | "serving">): number {
  let serving = s.serving === "" ? 0 : 1;
  for (let i = s.serving.indexOf(" "); i >= 0; i = s.serving.indexOf(" ", i + 1)) serving++;
  return Math.max(s.ready, serving);
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
 * ExternalName Services, and Services carrying one of
 * {@linkcode NOT_PROXIED_LABELS}, keep no address and no port; LoadBalancer ingress with
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
  // kube-proxy does not see it: no address, no NodePort, nothing vouched.
  if (notProxiedLabel(o) !== undefined) {
    return { ok: true, value: { key, addresses: [], ports: [] } };
  }
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
  const add = (a: unknown, kind: AddressKind) => {
    const c = canonicalAddress(a);
    if (c && !addresses.some((x) => x.addr === c.addr)) addresses.push({ ...c, kind });
  };
  if (type !== "ExternalName" && str(spec.clusterIP) !== "None") {
    const ips = arr(spec.clusterIPs);
    for (const a of ips.length > 0 ? ips : [spec.clusterIP]) add(a, "cluster");
    for (const a of arr(spec.externalIPs)) add(a, "external");
    const lb = isObj(o.status) && isObj(o.status.loadBalancer) ? o.status.loadBalancer : {};
    for (const ing of arr(lb.ingress)) {
      if (isObj(ing) && str(ing.ipMode) !== "Proxy") add(ing.ip, "ingress");
    }
  }
  return { ok: true, value: { key, addresses, ports } };
}

/**
 * A discovery.k8s.io/v1 EndpointSlice → {@linkcode SliceRecord}. Conditions
 * are read as the API documents them: `ready` or `serving` unset counts as
 * true (when in doubt an endpoint is serving, and its entries are kept). FQDN
 * slices and slices without the service-name label are refused (they name no
 * Service the agent knows). A slice with one of {@linkcode NOT_PROXIED_LABELS}
 * is kept without endpoints and marked `notProxied` (kube-proxy skips it).
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
 * r.ok && [r.value.ready, r.value.serving]; // => [1, "10.244.1.5 10.244.2.9"]
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
  const service = `${key.split("/")[0]}/${svc}`;
  if (notProxiedLabel(o) !== undefined) {
    return {
      ok: true,
      value: { key, service, family, ports: [], ready: 0, serving: "", notProxied: true },
    };
  }
  const ports: SlicePort[] = [];
  for (const p of arr(o.ports)) {
    if (!isObj(p) || (str(p.protocol) ?? "TCP") !== "TCP") continue;
    const n = port(p.port);
    if (n !== undefined) ports.push({ name: str(p.name) ?? "", port: n });
  }
  let ready = 0;
  const serving: string[] = [];
  for (const e of arr(o.endpoints)) {
    if (!isObj(e)) continue;
    const cond = isObj(e.conditions) ? e.conditions : {};
    const isReady = cond.ready !== false;
    const isServing = cond.serving !== false;
    for (const a of arr(e.addresses)) {
      const c = canonicalAddress(a);
      if (c === undefined || c.family !== family) continue;
      if (isReady) ready++;
      if (isServing) serving.push(c.addr);
    }
  }
  return {
    ok: true,
    value: { key, service, family, ports, ready, serving: serving.join(" ") },
  };
}
