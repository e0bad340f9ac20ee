/**
 * `deno task bench kubescale`: the whole agent against a big cluster. The
 * parent runs the fake API server (testbed/fake_kube_api.ts, a bookmark a
 * second) on loopback with Services and EndpointSlices in the shapes a real
 * kube-apiserver returns (labels, annotations, managedFields, owner
 * references; endpoints with conditions, nodeName, zone, targetRef, hints),
 * one slice per Service; then runs `main.ts` as the DaemonSet does (the start
 * task's V8 flags), with `--kubeconfig` to the fake, `--dry-run`, the procfs
 * source on an empty table file and `--nat-rules=off`, and reads, every
 * 100 ms, its peak resident memory (`VmHWM`), `/readyz` and `/healthz`. A
 * shape passes when the agent is ready, stays alive `--alive` seconds after
 * that, and its peak RSS is at most 128 MB.
 *
 *     deno task bench kubescale [-- --shapes=3000x100,10000x10 --alive=30]
 *       [--v8=--trace-gc --out=agent.log --timeline]
 *
 * Needs nothing but loopback. Figures (docs/benchmarks.md, "Kubernetes at
 * cluster scale"; 2 shared vCPUs, Deno 2.9.6), peak RSS of 3 runs:
 *
 * | Services × endpoints | before          | after                  | ready  |
 * | -------------------- | --------------- | ---------------------- | ------ |
 * | 3,000 × 100          | 131-133 MB ¹    | 93.5, 90.6, 86.0 MB    | 2-3 s  |
 * | 10,000 × 10          | 112-113 MB      | 100.9, 104.2, 107.1 MB | 3-4 s  |
 *
 * ¹ with half the slices ignored over the endpoint bound of then. The steps:
 * list pages split and parsed an item at a time, slices kept compactly,
 * rebuilds comparing only changed Services, pages taken apart as they arrive.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { FakeKubeApi } from "../../testbed/fake_kube_api.ts";
import { freePort } from "../../testbed/free_port.ts";

const V8 = "--v8-flags=--max-semi-space-size=1,--max-old-space-size=64";
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const GOAL_MB = 128;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ip = (first: number, i: number) => `${first}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const uid = (n: number) =>
  `5c0f${String(n).padStart(4, "0")}-8e2a-4b7d-9c1e-${String(n).padStart(12, "0")}`;
const TIME = "2026-11-02T09:14:27Z";

/** A Service as a cluster holds it after `kubectl apply` and a load balancer controller. */
function service(i: number): Record<string, unknown> {
  const name = `svc-${i}`;
  const ns = `team-${i % 50}`;
  const labels = {
    "app.kubernetes.io/name": name,
    "app.kubernetes.io/instance": `${name}-prod`,
    "app.kubernetes.io/part-of": `platform-${i % 7}`,
    "app.kubernetes.io/managed-by": "Helm",
    "helm.sh/chart": `${name}-1.4.2`,
  };
  const spec = {
    ports: [
      { name: "http", protocol: "TCP", port: 80, targetPort: 8080, nodePort: 30000 + (i % 2700) },
      { name: "metrics", protocol: "TCP", port: 9090, targetPort: 9090, nodePort: 32000 + i % 700 },
    ],
    selector: { "app.kubernetes.io/name": name, "app.kubernetes.io/instance": `${name}-prod` },
    type: "LoadBalancer",
  };
  return {
    metadata: {
      name,
      namespace: ns,
      uid: uid(i),
      creationTimestamp: TIME,
      labels,
      annotations: {
        "meta.helm.sh/release-name": `${name}-prod`,
        "meta.helm.sh/release-namespace": ns,
        "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify({
          apiVersion: "v1",
          kind: "Service",
          metadata: { labels, name, namespace: ns },
          spec,
        }),
      },
      managedFields: [
        {
          manager: "helm",
          operation: "Update",
          apiVersion: "v1",
          time: TIME,
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:metadata": {
              "f:annotations": { ".": {}, "f:meta.helm.sh/release-name": {} },
              "f:labels": Object.fromEntries(Object.keys(labels).map((k) => [`f:${k}`, {}])),
            },
            "f:spec": {
              "f:ports": { 'k:{"port":80,"protocol":"TCP"}': { "f:name": {}, "f:port": {} } },
              "f:selector": {},
              "f:type": {},
            },
          },
        },
        {
          manager: "cloud-controller-manager",
          operation: "Update",
          apiVersion: "v1",
          time: TIME,
          fieldsType: "FieldsV1",
          fieldsV1: { "f:status": { "f:loadBalancer": { "f:ingress": {} } } },
          subresource: "status",
        },
      ],
    },
    spec: {
      ...spec,
      clusterIP: ip(11, i),
      clusterIPs: [ip(11, i)],
      ipFamilies: ["IPv4"],
      ipFamilyPolicy: "SingleStack",
      sessionAffinity: "None",
      externalTrafficPolicy: "Cluster",
      internalTrafficPolicy: "Cluster",
      allocateLoadBalancerNodePorts: true,
    },
    status: { loadBalancer: { ingress: [{ ip: ip(12, i), ipMode: "VIP" }] } },
  };
}

/** The EndpointSlice of Service `i` with `n` endpoints, as the EndpointSlice controller writes it. */
function slice(i: number, n: number): Record<string, unknown> {
  const svc = `svc-${i}`;
  const ns = `team-${i % 50}`;
  const zones = ["zone-a", "zone-b", "zone-c"];
  const endpoints = [];
  for (let k = 0; k < n; k++) {
    const zone = zones[k % 3]!;
    // One endpoint in 50 terminating (not ready, still serving), as during a rollout.
    const terminating = k % 50 === 49;
    endpoints.push({
      addresses: [ip(10, i * n + k)],
      conditions: { ready: !terminating, serving: true, terminating },
      nodeName: `node-${String((i * 7 + k) % 5000).padStart(4, "0")}`,
      targetRef: {
        kind: "Pod",
        namespace: ns,
        name: `${svc}-7d9f8c6b5-${(i * n + k).toString(36).padStart(5, "x")}`,
        uid: uid(1_000_000 + i * n + k),
      },
      zone,
      hints: { forZones: [{ name: zone }] },
    });
  }
  return {
    metadata: {
      name: `${svc}-${(i * 31).toString(36).padStart(5, "q")}`,
      generateName: `${svc}-`,
      namespace: ns,
      uid: uid(500_000 + i),
      generation: 4,
      creationTimestamp: TIME,
      labels: {
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        "kubernetes.io/service-name": svc,
        "app.kubernetes.io/name": svc,
        "app.kubernetes.io/instance": `${svc}-prod`,
      },
      annotations: { "endpoints.kubernetes.io/last-change-trigger-time": TIME },
      ownerReferences: [{
        apiVersion: "v1",
        kind: "Service",
        name: svc,
        uid: uid(i),
        controller: true,
        blockOwnerDeletion: true,
      }],
      managedFields: [{
        manager: "kube-controller-manager",
        operation: "Update",
        apiVersion: "discovery.k8s.io/v1",
        time: TIME,
        fieldsType: "FieldsV1",
        fieldsV1: {
          "f:addressType": {},
          "f:endpoints": {},
          "f:metadata": {
            "f:annotations": { ".": {}, "f:endpoints.kubernetes.io/last-change-trigger-time": {} },
            "f:generateName": {},
            "f:labels": { ".": {}, "f:kubernetes.io/service-name": {} },
            "f:ownerReferences": { ".": {}, [`k:{"uid":"${uid(i)}"}`]: {} },
          },
          "f:ports": {},
        },
      }],
    },
    addressType: "IPv4",
    endpoints,
    ports: [{ name: "http", protocol: "TCP", port: 8080 }, {
      name: "metrics",
      protocol: "TCP",
      port: 9090,
    }],
  };
}

/** What one shape's run found. */
interface Result {
  services: number;
  perService: number;
  /** Bytes of the JSON of one Service and one slice (for the record). */
  serviceBytes: number;
  sliceBytes: number;
  readyMs: number | undefined;
  peakMB: number;
  endMB: number;
  alive: boolean;
  exit: string | undefined;
  /** Warnings and errors the agent logged, by message, with a count. */
  warnings: Map<string, number>;
}

async function status(pid: number): Promise<{ hwm: number; rss: number } | undefined> {
  try {
    const s = await Deno.readTextFile(`/proc/${pid}/status`);
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN);
    return { hwm: kb("VmHWM") / 1024, rss: kb("VmRSS") / 1024 };
  } catch {
    return undefined;
  }
}

async function get(url: string): Promise<number> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await r.body?.cancel();
    return r.status;
  } catch {
    return 0;
  }
}

/** Extra V8 flags (`--v8=--trace-gc`) and a file for the agent's stdout, for profiling. */
interface Profiling {
  v8: string;
  out: string | undefined;
  /** Print RSS and readiness every 500 ms. */
  timeline: boolean;
}

async function runShape(
  services: number,
  perService: number,
  aliveS: number,
  p: Profiling,
): Promise<Result> {
  const fake = new FakeKubeApi({ bookmarkEveryMs: 1000 });
  for (let i = 0; i < services; i++) {
    fake.set("services", service(i));
    fake.set("endpointslices", slice(i, perService));
  }
  const dir = await Deno.makeTempDir({ prefix: "cc-bench-kube-" });
  const kubeconfig = `${dir}/config`;
  await Deno.writeTextFile(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "current-context: fake",
      "contexts: [{ name: fake, context: { cluster: fake, user: agent } }]",
      `clusters: [{ name: fake, cluster: { server: "${fake.url}" } }]`,
      "users: [{ name: agent, user: { token: bench } }]",
      "",
    ].join("\n"),
  );
  const table = `${dir}/nf_conntrack`;
  await Deno.writeTextFile(table, "");
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      p.v8 ? `${V8},${p.v8}` : V8,
      MAIN,
      `--kubeconfig=${kubeconfig}`,
      "--dry-run",
      "--source=procfs",
      `--proc-file=${table}`,
      "--nat-rules=off",
      `--listen=127.0.0.1:${port}`,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const warnings = new Map<string, number>();
  let stderr = "";
  const keep = p.out ? await Deno.open(p.out, { write: true, create: true, append: true }) : null;
  const logs = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      await keep?.write(new TextEncoder().encode(chunk));
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const l = JSON.parse(line) as { level?: string; msg?: string };
          if (l.level === "warn" || l.level === "error") {
            warnings.set(l.msg ?? "", (warnings.get(l.msg ?? "") ?? 0) + 1);
          }
        } catch { /* not JSON */ }
      }
    }
  })();
  const errs = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr = (stderr + chunk).slice(-2000);
    }
  })();
  let exited: Deno.CommandStatus | undefined;
  child.status.then((s) => (exited = s));
  const t0 = performance.now();
  let readyAt: number | undefined;
  let peak = 0;
  let end = 0;
  let last = -1;
  const deadline = 180_000;
  while (exited === undefined) {
    const s = await status(child.pid);
    if (s) {
      peak = Math.max(peak, s.hwm);
      end = s.rss;
    }
    const now = performance.now() - t0;
    if (readyAt === undefined && await get(`http://127.0.0.1:${port}/readyz`) === 200) {
      readyAt = now;
    }
    if (p.timeline && s && Math.floor(now / 500) !== Math.floor(last / 500)) {
      console.log(
        `  ${(now / 1000).toFixed(1)} s: RSS ${s.rss.toFixed(1)} MB, peak ${s.hwm.toFixed(1)}${
          readyAt !== undefined ? ", ready" : ""
        }`,
      );
    }
    last = now;
    if (readyAt !== undefined && now - readyAt >= aliveS * 1000) break;
    if (readyAt === undefined && now > deadline) break;
    await sleep(100);
  }
  const healthy = exited === undefined && await get(`http://127.0.0.1:${port}/healthz`) === 200;
  const s = await status(child.pid);
  if (s) peak = Math.max(peak, s.hwm);
  if (exited === undefined) child.kill("SIGTERM");
  await child.status;
  await Promise.all([logs, errs]);
  keep?.close();
  await fake.close();
  await Deno.remove(dir, { recursive: true });
  const fatal = /Fatal[^\n]*/.exec(stderr)?.[0];
  return {
    services,
    perService,
    serviceBytes: JSON.stringify(service(0)).length,
    sliceBytes: JSON.stringify(slice(0, perService)).length,
    readyMs: readyAt,
    peakMB: peak,
    endMB: end,
    alive: healthy,
    exit: exited === undefined ? undefined : `exit ${exited.code}${fatal ? `: ${fatal}` : ""}`,
    warnings,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      shapes: { type: "string", default: "3000x100,10000x10" },
      alive: { type: "string", default: "30" },
      v8: { type: "string", default: "" },
      out: { type: "string" },
      timeline: { type: "boolean", default: false },
    },
  });
  const aliveS = Number(values.alive);
  console.log(
    `bench:kubescale deno ${Deno.version.deno}, main.ts with ${V8}, ready then ${aliveS} s alive`,
  );
  console.log(
    "Services × endpoints  Service B  slice B  ready s  peak RSS MB  RSS at end MB  alive  goal ≤ 128 MB",
  );
  for (const shape of values.shapes.split(",")) {
    const [s, e] = shape.split("x").map(Number);
    const r = await runShape(s!, e!, aliveS, {
      v8: values.v8,
      out: values.out,
      timeline: values.timeline,
    });
    const ok = r.readyMs !== undefined && r.alive && r.peakMB <= GOAL_MB;
    console.log(
      [
        `${r.services.toLocaleString("en")} × ${r.perService}`.padEnd(20),
        String(r.serviceBytes).padStart(9),
        String(r.sliceBytes).padStart(8),
        (r.readyMs === undefined ? "never" : (r.readyMs / 1000).toFixed(1)).padStart(7),
        r.peakMB.toFixed(1).padStart(12),
        r.endMB.toFixed(1).padStart(14),
        (r.alive ? "yes" : `no (${r.exit ?? "unhealthy"})`).padStart(6),
        ok ? "  met" : "  NOT met",
      ].join("  "),
    );
    for (const [msg, n] of r.warnings) console.log(`  logged ${n}×: ${msg}`);
  }
}

if (import.meta.main) {
  await main();
  // The fake API's watch timers would keep the process up to 240 s more.
  Deno.exit(0);
}
