/**
 * Services and EndpointSlices as JSON in the shapes the real API returns
 * (the fields a kube-apiserver fills in, not just the ones the agent
 * reads), to feed the fake API server and the decoders.
 *
 * @example
 * ```ts
 * import { endpointSlice, service } from "./kube_objects.ts";
 * const svc = service("web", "shop", { clusterIPs: ["10.96.0.10"], ports: [{ name: "http", port: 80 }] });
 * const slice = endpointSlice("web", "shop", "ipv4", [{ name: "http", port: 8080 }], [{ addr: "10.244.1.5" }]);
 * (svc.spec as { type: string }).type; // => "ClusterIP"
 * (slice.metadata.labels as Record<string, string>)["kubernetes.io/service-name"]; // => "shop"
 * ```
 *
 * @module
 */

/** A port of {@linkcode service}. */
export interface PortSpec {
  name?: string;
  port: number;
  targetPort?: number;
  nodePort?: number;
  protocol?: "TCP" | "UDP" | "SCTP";
}

/** What {@linkcode service} may set. */
export interface ServiceSpec {
  type?: "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName";
  /** `["None"]` for headless. */
  clusterIPs?: string[];
  externalIPs?: string[];
  ports?: PortSpec[];
  /** LoadBalancer ingress, with `ipMode` where set. */
  ingress?: { ip: string; ipMode?: "VIP" | "Proxy" }[];
  externalName?: string;
}

let uid = 0;
const newUid = () => `0000aaaa-0000-4000-8000-${String(++uid).padStart(12, "0")}`;

/** A v1 Service as the API returns it. */
export function service(
  namespace: string,
  name: string,
  s: ServiceSpec,
): Record<string, unknown> & { metadata: Record<string, unknown> } {
  const type = s.type ?? (s.ingress ? "LoadBalancer" : "ClusterIP");
  const ips = s.clusterIPs ?? [];
  const families = ips.filter((a) => a !== "None").map((a) => (a.includes(":") ? "IPv6" : "IPv4"));
  return {
    kind: "Service",
    apiVersion: "v1",
    metadata: {
      name,
      namespace,
      uid: newUid(),
      creationTimestamp: "2026-12-04T12:00:00Z",
      labels: { app: name },
    },
    spec: {
      ...(type === "ExternalName" ? { externalName: s.externalName ?? "example.org" } : {
        ports: (s.ports ?? []).map((p) => ({
          ...(p.name !== undefined ? { name: p.name } : {}),
          protocol: p.protocol ?? "TCP",
          port: p.port,
          targetPort: p.targetPort ?? p.port,
          ...(p.nodePort !== undefined ? { nodePort: p.nodePort } : {}),
        })),
        selector: { app: name },
        clusterIP: ips[0] ?? "None",
        clusterIPs: ips.length > 0 ? ips : ["None"],
        ipFamilies: families.length > 0 ? families : ["IPv4"],
        ipFamilyPolicy: families.length > 1 ? "PreferDualStack" : "SingleStack",
        internalTrafficPolicy: "Cluster",
      }),
      ...(s.externalIPs ? { externalIPs: s.externalIPs } : {}),
      type,
      sessionAffinity: "None",
      ...(type === "LoadBalancer" || type === "NodePort"
        ? { externalTrafficPolicy: "Cluster" }
        : {}),
    },
    status: {
      loadBalancer: s.ingress
        ? {
          ingress: s.ingress.map((i) => ({ ip: i.ip, ...(i.ipMode ? { ipMode: i.ipMode } : {}) })),
        }
        : {},
    },
  };
}

/** One endpoint of {@linkcode endpointSlice}: ready (default true), serving, terminating. */
export interface EndpointSpec {
  addr: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  nodeName?: string;
}

/**
 * A discovery.k8s.io/v1 EndpointSlice of Service `namespace/service`, named
 * `SERVICE-SUFFIX` as the EndpointSlice controller names them.
 */
export function endpointSlice(
  namespace: string,
  serviceName: string,
  family: "ipv4" | "ipv6",
  ports: { name?: string; port: number; protocol?: "TCP" | "UDP" }[],
  endpoints: EndpointSpec[],
  suffix = family === "ipv4" ? "x4" : "x6",
): Record<string, unknown> & { metadata: Record<string, unknown> } {
  return {
    kind: "EndpointSlice",
    apiVersion: "discovery.k8s.io/v1",
    metadata: {
      name: `${serviceName}-${suffix}`,
      generateName: `${serviceName}-`,
      namespace,
      uid: newUid(),
      labels: {
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        "kubernetes.io/service-name": serviceName,
      },
      ownerReferences: [{ apiVersion: "v1", kind: "Service", name: serviceName, uid: newUid() }],
    },
    addressType: family === "ipv4" ? "IPv4" : "IPv6",
    endpoints: endpoints.map((e) => ({
      addresses: [e.addr],
      conditions: {
        ready: e.ready ?? true,
        serving: e.serving ?? e.ready ?? true,
        terminating: e.terminating ?? false,
      },
      ...(e.nodeName ? { nodeName: e.nodeName } : {}),
      targetRef: { kind: "Pod", namespace, name: `${serviceName}-pod-${e.addr}`, uid: newUid() },
    })),
    ports: ports.map((p) => ({ name: p.name ?? "", protocol: p.protocol ?? "TCP", port: p.port })),
  };
}

/** `o` with `labels` added to its metadata (e.g. `service.kubernetes.io/service-proxy-name`). */
export function withLabels<T extends { metadata: Record<string, unknown> }>(
  o: T,
  labels: Record<string, string>,
): T {
  const old = (o.metadata.labels ?? {}) as Record<string, string>;
  return { ...o, metadata: { ...o.metadata, labels: { ...old, ...labels } } };
}
