/**
 * The Kubernetes manifests in deploy/: parsed with `yaml` and checked point by
 * point against what the agent needs and what the cluster must be told.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { loadConfig, OPTIONS } from "../../lib/run/config.ts";

const DEPLOY = new URL("../../deploy/", import.meta.url);
/** The environment variables the agent really reads (lib/run/config.ts). */
const AGENT_ENV = OPTIONS.flatMap((o) => (o.env ? [o.env] : []));

interface Meta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Manifest {
  apiVersion?: string;
  kind?: string;
  metadata?: Meta;
  [key: string]: unknown;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath?: string } };
}
interface Port {
  name?: string;
  containerPort: number;
  protocol?: string;
}
interface Probe {
  httpGet?: { path?: string; port?: number | string };
}
interface Container {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  env?: EnvVar[];
  ports?: Port[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: {
    requests?: Record<string, string | number>;
    limits?: Record<string, string | number>;
  };
  securityContext?: {
    runAsUser?: number;
    runAsNonRoot?: boolean;
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
    seccompProfile?: { type?: string };
  };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Toleration {
  key?: string;
  operator?: "Exists" | "Equal";
  value?: string;
  effect?: string;
  tolerationSeconds?: number;
}
interface DaemonSet extends Manifest {
  spec: {
    selector: { matchLabels: Record<string, string> };
    updateStrategy?: {
      type?: string;
      rollingUpdate?: { maxUnavailable?: number | string; maxSurge?: number | string };
    };
    template: {
      metadata: Meta;
      spec: {
        serviceAccountName?: string;
        automountServiceAccountToken?: boolean;
        hostNetwork?: boolean;
        dnsPolicy?: string;
        priorityClassName?: string;
        terminationGracePeriodSeconds?: number;
        tolerations?: Toleration[];
        containers: Container[];
        volumes?: { name: string; emptyDir?: Record<string, unknown> }[];
      };
    };
  };
}
interface Kustomization {
  resources?: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
}

/** Every document of one YAML file, failing on any parse error or warning. */
function readManifests(file: string): Manifest[] {
  const text = Deno.readTextFileSync(new URL(file, DEPLOY));
  const docs = parseAllDocuments(text);
  assert.ok(Array.isArray(docs), `${file}: not a YAML stream`);
  const out: Manifest[] = [];
  for (const doc of docs) {
    assert.deepEqual(doc.errors.map((e) => e.message), [], `${file}: YAML errors`);
    assert.deepEqual(doc.warnings.map((e) => e.message), [], `${file}: YAML warnings`);
    const value = doc.toJS();
    if (value === null || value === undefined) continue;
    out.push(value as Manifest);
  }
  return out;
}

/** The .yaml/.yml files in deploy/, kustomization.yaml excepted. */
function manifestFiles(): string[] {
  const names: string[] = [];
  for (const entry of Deno.readDirSync(DEPLOY)) {
    if (!entry.isFile || !/\.ya?ml$/.test(entry.name)) continue;
    if (/^kustomization\.ya?ml$/.test(entry.name)) continue;
    names.push(entry.name);
  }
  return names.sort();
}

function kustomization(): Kustomization {
  const [doc, ...rest] = readManifests("kustomization.yaml");
  assert.equal(rest.length, 0, "kustomization.yaml holds one document");
  return doc as Kustomization;
}

function allManifests(): Manifest[] {
  return manifestFiles().flatMap((f) => readManifests(f));
}

function daemonSet(): DaemonSet {
  const found = allManifests().filter((m) => m.kind === "DaemonSet");
  assert.equal(found.length, 1, "exactly one DaemonSet");
  return found[0] as DaemonSet;
}

function container(): Container {
  const containers = daemonSet().spec.template.spec.containers;
  assert.equal(containers.length, 1, "one container");
  return containers[0]!;
}

/** The HOST:PORT the agent listens on, from its args or environment. */
function listenSetting(c: Container): string {
  const args = [...(c.command ?? []), ...(c.args ?? [])];
  for (let i = 0; i < args.length; i++) {
    if (args[i]!.startsWith("--listen=")) return args[i]!.slice("--listen=".length);
    if (args[i] === "--listen") return args[i + 1] ?? "";
  }
  const env = c.env?.find((e) => e.name === "CONNTRACK_CLEANER_LISTEN");
  assert.ok(env?.value, "the listen address is set, by --listen or CONNTRACK_CLEANER_LISTEN");
  return env.value;
}

function listenPort(c: Container): number {
  const listen = listenSetting(c);
  const match = /^(.*):(\d+)$/.exec(listen);
  assert.ok(match, `listen setting '${listen}' is HOST:PORT`);
  return Number(match[2]);
}

/** A probe's port, a named port resolved through the container's ports. */
function probePort(c: Container, probe: Probe | undefined, what: string): number {
  const port = probe?.httpGet?.port;
  assert.ok(port !== undefined, `${what} has an httpGet port`);
  if (typeof port === "number") return port;
  if (/^\d+$/.test(port)) return Number(port);
  const named = c.ports?.find((p) => p.name === port);
  assert.ok(named, `${what}'s port '${port}' names a container port`);
  return named.containerPort;
}

/** A Kubernetes quantity in base units (cores, bytes). */
function quantity(q: string | number): number {
  if (typeof q === "number") return q;
  const m = /^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(q);
  assert.ok(m, `quantity '${q}' is understood`);
  const factor: Record<string, number> = {
    "": 1,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
  };
  return Number(m[1]) * factor[m[2] ?? ""]!;
}

/** Kubernetes' rule for whether a toleration tolerates a taint. */
function tolerates(t: Toleration, taint: { key: string; value?: string; effect: string }) {
  if (t.effect && t.effect !== taint.effect) return false;
  const operator = t.operator ?? "Equal";
  if (operator === "Exists") return !t.key || t.key === taint.key;
  return t.key === taint.key && (t.value ?? "") === (taint.value ?? "");
}

// --- kustomization -------------------------------------------------------------

Deno.test("kustomization: lists every manifest file in deploy/ and nothing else", () => {
  const listed = [...(kustomization().resources ?? [])].sort();
  assert.deepEqual(listed, manifestFiles());
});

Deno.test("kustomization: every listed resource file exists", () => {
  for (const file of kustomization().resources ?? []) {
    const info = Deno.statSync(new URL(file, DEPLOY));
    assert.ok(info.isFile, `${file} is a file`);
  }
});

Deno.test("kustomization: its image entry matches the DaemonSet's image and tag", () => {
  const [name, tag] = (container().image ?? "").split(":");
  const entry = kustomization().images?.find((i) => i.name === name);
  assert.ok(entry, `kustomization has an images: entry for '${name}'`);
  assert.equal(entry.newTag, tag);
});

// --- namespace and service account ---------------------------------------------

Deno.test("manifests: every namespaced object is in the conntrack-cleaner namespace", () => {
  const all = allManifests();
  const ns = all.filter((m) => m.kind === "Namespace");
  assert.deepEqual(ns.map((m) => m.metadata?.name), ["conntrack-cleaner"]);
  const clusterScoped = ["Namespace", "ClusterRole", "ClusterRoleBinding"];
  for (const m of all.filter((m) => !clusterScoped.includes(m.kind ?? ""))) {
    assert.equal(m.metadata?.namespace, "conntrack-cleaner", `${m.kind} ${m.metadata?.name}`);
  }
});

Deno.test("namespace: admits privileged pods (hostNetwork, root, NET_ADMIN)", () => {
  const ns = allManifests().find((m) => m.kind === "Namespace");
  assert.equal(ns?.metadata?.labels?.["pod-security.kubernetes.io/enforce"], "privileged");
});

Deno.test("service account: its token is mounted in the DaemonSet's pods (for --kubernetes=auto)", () => {
  const sa = allManifests().find((m) => m.kind === "ServiceAccount");
  assert.ok(sa, "a ServiceAccount exists");
  assert.equal(sa.automountServiceAccountToken, true);
  const pod = daemonSet().spec.template.spec;
  assert.equal(pod.serviceAccountName, sa.metadata?.name);
  assert.equal(pod.automountServiceAccountToken, true);
  const env = daemonSet().spec.template.spec.containers[0]?.env ?? [];
  assert.equal(
    env.find((e: { name: string }) => e.name === "CONNTRACK_CLEANER_KUBERNETES")?.value,
    "auto",
  );
});

Deno.test("RBAC: a ClusterRole with list and watch on services and endpointslices only, bound to the agent's ServiceAccount", () => {
  const all = allManifests();
  const kinds = all.map((m) => m.kind);
  for (const narrow of ["Role", "RoleBinding"]) assert.ok(!kinds.includes(narrow), `no ${narrow}`);
  // deno-lint-ignore no-explicit-any
  const roles = all.filter((m) => m.kind === "ClusterRole") as any[];
  assert.equal(roles.length, 1);
  assert.deepEqual(roles[0].rules, [
    { apiGroups: [""], resources: ["services"], verbs: ["list", "watch"] },
    { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
  ]);
  // deno-lint-ignore no-explicit-any
  const bindings = all.filter((m) => m.kind === "ClusterRoleBinding") as any[];
  assert.equal(bindings.length, 1);
  assert.deepEqual(bindings[0].roleRef, {
    apiGroup: "rbac.authorization.k8s.io",
    kind: "ClusterRole",
    name: roles[0].metadata.name,
  });
  const sa = all.find((m) => m.kind === "ServiceAccount")!;
  assert.deepEqual(bindings[0].subjects, [
    { kind: "ServiceAccount", name: sa.metadata?.name, namespace: sa.metadata?.namespace },
  ]);
});

// --- DaemonSet: pod --------------------------------------------------------------

Deno.test("daemonset: selector matches the pod template's labels", () => {
  const ds = daemonSet();
  for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) {
    assert.equal(ds.spec.template.metadata.labels?.[k], v, `template label ${k}`);
  }
});

Deno.test("daemonset: runs in the host network namespace with cluster DNS", () => {
  const pod = daemonSet().spec.template.spec;
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.dnsPolicy, "ClusterFirstWithHostNet");
});

Deno.test("daemonset: is system-node-critical", () => {
  assert.equal(daemonSet().spec.template.spec.priorityClassName, "system-node-critical");
});

Deno.test("daemonset: terminationGracePeriodSeconds is short (1..30)", () => {
  const grace = daemonSet().spec.template.spec.terminationGracePeriodSeconds;
  assert.ok(typeof grace === "number" && grace >= 1 && grace <= 30, `grace ${grace}`);
});

Deno.test("daemonset: tolerations match every taint, so it runs on every node", () => {
  const tolerations = daemonSet().spec.template.spec.tolerations ?? [];
  const taints = [
    { key: "node.kubernetes.io/not-ready", effect: "NoExecute" },
    { key: "node.kubernetes.io/unreachable", effect: "NoExecute" },
    { key: "node.kubernetes.io/disk-pressure", effect: "NoSchedule" },
    { key: "node.kubernetes.io/memory-pressure", effect: "NoSchedule" },
    { key: "node.kubernetes.io/pid-pressure", effect: "NoSchedule" },
    { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" },
    { key: "node.kubernetes.io/network-unavailable", effect: "NoSchedule" },
    { key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" },
    { key: "dedicated", value: "gpu", effect: "NoSchedule" },
    { key: "example.com/spot", value: "true", effect: "PreferNoSchedule" },
    { key: "example.com/maintenance", value: "x", effect: "NoExecute" },
  ];
  for (const taint of taints) {
    const match = tolerations.filter((t) => tolerates(t, taint));
    assert.ok(match.length > 0, `taint ${taint.key}:${taint.effect} is tolerated`);
    if (taint.effect === "NoExecute") {
      assert.ok(
        match.some((t) => t.tolerationSeconds === undefined),
        `taint ${taint.key}:NoExecute is tolerated forever (no tolerationSeconds)`,
      );
    }
  }
});

Deno.test("daemonset: rolling update with maxUnavailable set", () => {
  const strategy = daemonSet().spec.updateStrategy;
  assert.equal(strategy?.type, "RollingUpdate");
  const max = strategy?.rollingUpdate?.maxUnavailable;
  assert.ok(max !== undefined, "maxUnavailable is set");
  if (typeof max === "number") assert.ok(max >= 1, `maxUnavailable ${max} >= 1`);
  else {
    const m = /^(\d+)%$/.exec(max);
    assert.ok(m && Number(m[1]) >= 1 && Number(m[1]) <= 100, `maxUnavailable '${max}' is 1%..100%`);
  }
});

Deno.test("daemonset: Prometheus scrape annotations point at the listen port and /metrics", () => {
  const ds = daemonSet();
  const annotations = ds.spec.template.metadata.annotations ?? {};
  assert.equal(annotations["prometheus.io/scrape"], "true");
  assert.equal(annotations["prometheus.io/path"], "/metrics");
  assert.equal(Number(annotations["prometheus.io/port"]), listenPort(container()));
});

// --- DaemonSet: container --------------------------------------------------------

Deno.test("daemonset: the image is registry-qualified, tagged with the version, never :latest", () => {
  const image = container().image ?? "";
  assert.equal(image, "registry.example/conntrack-cleaner:0.1.0");
  const version = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", DEPLOY))).version;
  assert.ok(image.endsWith(`:${version}`), `${image} is tagged ${version}`);
  // The first path component names a registry (has a dot or a port), as kubelet reads it.
  assert.match(image.split("/")[0]!, /[.:]/, "registry host");
});

Deno.test("daemonset: sets CONNTRACK_TABLE_DUMP_FREQUENCY=1s and CONNECTION_RENEWAL_THRESHOLD=3", () => {
  const env = container().env ?? [];
  const byName = new Map(env.map((e) => [e.name, e.value]));
  assert.equal(byName.get("CONNTRACK_TABLE_DUMP_FREQUENCY"), "1s");
  assert.equal(byName.get("CONNECTION_RENEWAL_THRESHOLD"), "3");
});

/** Values as the kubelet hands them over: `$(NODE_IP)` expanded (to a sample node address). */
function expandedEnv(nodeIp: string): Map<string, string> {
  return new Map(
    (container().env ?? []).filter((e) => e.name !== "NODE_IP").map((
      e,
    ) => [e.name, (e.value ?? "").replaceAll("$(NODE_IP)", nodeIp)]),
  );
}

Deno.test("daemonset: env holds only variables the agent reads (and NODE_IP for them), each once", () => {
  const names = (container().env ?? []).map((e) => e.name);
  assert.equal(new Set(names).size, names.length, "no duplicate env names");
  for (const name of names) {
    if (name === "NODE_IP") continue;
    assert.ok(AGENT_ENV.includes(name), `${name} is read by the agent`);
  }
  const nodeIp = container().env?.find((e) => e.name === "NODE_IP");
  assert.equal(
    nodeIp?.valueFrom?.fieldRef?.fieldPath,
    "status.hostIP",
    "NODE_IP: the downward API",
  );
  assert.equal(names.indexOf("NODE_IP"), names.indexOf("CONNTRACK_CLEANER_LISTEN") - 1);
  // and the agent accepts every value, with the container's args, on IPv4 and IPv6 nodes
  for (const ip of ["10.0.0.7", "fd00::7"]) {
    const env = expandedEnv(ip);
    const r = loadConfig(container().args ?? [], (name) => env.get(name));
    assert.equal(r.kind, "run", r.kind === "error" ? r.message : "");
    if (r.kind === "run") assert.equal(r.settings.listen?.hostname, ip);
  }
  const env = expandedEnv("10.0.0.7");
  const r = loadConfig(container().args ?? [], (name) => env.get(name));
  assert.equal(r.kind, "run", r.kind === "error" ? r.message : "");
});

Deno.test("daemonset: listens on the node IP, port 10395, the named container port `metrics`", () => {
  const c = container();
  assert.equal(listenSetting(c), "[$(NODE_IP)]:10395");
  const metrics = c.ports?.find((p) => p.name === "metrics");
  assert.ok(metrics, "a container port named metrics");
  assert.equal(metrics.containerPort, listenPort(c));
  assert.equal(metrics.protocol ?? "TCP", "TCP");
});

Deno.test("daemonset: the default port 10395 avoids exporter and Kubernetes component ports", () => {
  const port = listenPort(container());
  assert.ok(port < 9100 || port > 9999, "outside the Prometheus exporter range 9100-9999");
  for (const taken of [10248, 10249, 10250, 10255, 10256, 10257, 10259]) {
    assert.notEqual(port, taken);
  }
});

Deno.test("daemonset: liveness probes /healthz and readiness /readyz on the listen port", () => {
  const c = container();
  assert.equal(c.livenessProbe?.httpGet?.path, "/healthz");
  assert.equal(c.readinessProbe?.httpGet?.path, "/readyz");
  assert.equal(probePort(c, c.livenessProbe, "livenessProbe"), listenPort(c));
  assert.equal(probePort(c, c.readinessProbe, "readinessProbe"), listenPort(c));
});

Deno.test("daemonset: resources have cpu and memory requests and limits, limits >= requests", () => {
  const { requests, limits } = container().resources ?? {};
  assert.ok(requests && limits, "requests and limits present");
  for (const r of ["cpu", "memory"]) {
    assert.ok(requests[r] !== undefined, `requests.${r}`);
    assert.ok(limits[r] !== undefined, `limits.${r}`);
    assert.ok(quantity(limits[r]) >= quantity(requests[r]), `limits.${r} >= requests.${r}`);
  }
  // A compiled Deno binary idles at ~40-60 MiB RSS: the request must cover it.
  assert.ok(quantity(requests.memory!) >= 64 * 2 ** 20, "memory request >= 64Mi");
});

Deno.test("daemonset: capabilities add exactly NET_ADMIN and drop ALL", () => {
  const caps = container().securityContext?.capabilities;
  assert.deepEqual(caps?.add, ["NET_ADMIN"]);
  assert.deepEqual(caps?.drop, ["ALL"]);
});

Deno.test("daemonset: read-only root, no privilege escalation, seccomp RuntimeDefault, not privileged", () => {
  const sc = container().securityContext;
  assert.equal(sc?.readOnlyRootFilesystem, true);
  assert.equal(sc?.allowPrivilegeEscalation, false);
  assert.equal(sc?.seccompProfile?.type, "RuntimeDefault");
  assert.notEqual(sc?.privileged, true);
});

Deno.test("daemonset: runs as root, with a comment saying /proc/net/nf_conntrack is why", () => {
  const sc = container().securityContext;
  assert.equal(sc?.runAsUser, 0);
  assert.equal(sc?.runAsNonRoot, false);
  const text = Deno.readTextFileSync(new URL("daemonset.yaml", DEPLOY));
  const lines = text.split("\n");
  const at = lines.findIndex((l) => /^\s*runAsUser:\s*0\s*$/.test(l));
  assert.ok(at > 0, "runAsUser: 0 line found");
  const comment = lines.slice(Math.max(0, at - 6), at).filter((l) => /^\s*#/.test(l)).join(" ");
  assert.match(comment, /\/proc\/net\/nf_conntrack/);
  assert.match(comment, /root/);
});

Deno.test("daemonset: /tmp is a writable emptyDir (root file system is read-only)", () => {
  const ds = daemonSet();
  const mount = container().volumeMounts?.find((m) => m.mountPath === "/tmp");
  assert.ok(mount, "/tmp is mounted");
  const volume = ds.spec.template.spec.volumes?.find((v) => v.name === mount.name);
  assert.ok(volume?.emptyDir, "/tmp is an emptyDir");
});
