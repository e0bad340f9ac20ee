/**
 * `deno task bench kube`: the Kubernetes client's footprint at the bound
 * (issue 16: "memory bounded at 10,000 Services"). The parent runs the fake
 * API server (testbed/fake_kube_api.ts) on loopback with N Services (each a
 * ClusterIP, an LB ingress IP and two TCP ports, one a NodePort) and one
 * EndpointSlice each (3 endpoints); a child process with the agent's V8 flags
 * measures its RSS before loading the client, after the full lists and the
 * first view, and after 1,000 watch events; and how long list and view took.
 *
 *     deno task bench kube [--services=10000]
 *
 * Needs nothing but loopback.
 *
 * @module
 */
import { parseArgs } from "node:util";

const MIB = 2 ** 20;
const V8 = "--v8-flags=--max-semi-space-size=1,--max-old-space-size=64";

async function child(url: string): Promise<void> {
  const rss0 = Deno.memoryUsage().rss;
  const { FetchKubeApi } = await import("../../lib/kube/api.ts");
  const { KubeServices } = await import("../../lib/kube/services.ts");
  const silent = { debug() {}, info() {}, warn() {}, error() {} };
  const api = new FetchKubeApi({ server: url, origin: "bench" });
  const kube = new KubeServices({
    api,
    log: silent,
    nodeAddresses: () => [{ family: "ipv4", addr: "192.0.2.10" }],
  });
  const stop = new AbortController();
  const t0 = performance.now();
  const done = kube.run(stop.signal);
  while (kube.freshness() !== "live") await new Promise((r) => setTimeout(r, 5));
  const listMs = performance.now() - t0;
  const t1 = performance.now();
  const view = kube.view();
  const viewMs = performance.now() - t1;
  (globalThis as { gc?: () => void }).gc?.();
  const rssSynced = Deno.memoryUsage().rss;
  const heapSynced = Deno.memoryUsage().heapUsed;
  // Ask the parent for 1,000 changes, and wait for them.
  console.log(JSON.stringify({ ready: true }));
  const before = kube.slices.resourceVersion;
  while (kube.slices.resourceVersion === before || kube.slices.state.lists === 0) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 1500));
  kube.view();
  const rssAfter = Deno.memoryUsage().rss;
  console.log(JSON.stringify({
    services: kube.services.items.size,
    slices: kube.slices.items.size,
    vouched: view.vouched,
    list_ms: Math.round(listMs),
    view_ms: Math.round(viewMs),
    rss_before_mib: +(rss0 / MIB).toFixed(1),
    rss_synced_mib: +(rssSynced / MIB).toFixed(1),
    heap_synced_mib: +(heapSynced / MIB).toFixed(1),
    rss_after_1000_events_mib: +(rssAfter / MIB).toFixed(1),
  }));
  stop.abort();
  await done;
  api.close();
}

async function parent(n: number): Promise<void> {
  const { FakeKubeApi } = await import("../../testbed/fake_kube_api.ts");
  const { endpointSlice, service } = await import("../../testbed/kube_objects.ts");
  const fake = new FakeKubeApi({ history: 5000 });
  const ip = (base: number, i: number) => `${base}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const slice = (i: number, k: number) =>
    endpointSlice("bench", `svc-${i}`, "ipv4", [{ name: "http", port: 8080 }, {
      name: "https",
      port: 8443,
    }], [
      { addr: ip(10, (i * 3 + k) % 16_000_000) },
      { addr: ip(10, (i * 3 + 1) % 16_000_000) },
      { addr: ip(10, (i * 3 + 2) % 16_000_000) },
    ]);
  for (let i = 0; i < n; i++) {
    fake.set(
      "services",
      service("bench", `svc-${i}`, {
        clusterIPs: [ip(11, i)],
        ingress: [{ ip: ip(12, i) }],
        ports: [{ name: "http", port: 80, nodePort: 30000 + (i % 2700) }, {
          name: "https",
          port: 443,
        }],
      }),
    );
    fake.set("endpointslices", slice(i, 0));
  }
  const c = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", V8, import.meta.filename!, `--child=${fake.url}`],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let out = "";
  for await (const chunk of c.stdout.pipeThrough(new TextDecoderStream())) {
    out += chunk;
    if (out.includes('"ready"') && !out.includes("changed")) {
      out += "changed";
      for (let i = 0; i < 1000; i++) fake.set("endpointslices", slice(i, 1 + (i % 5)));
    }
  }
  await c.status;
  const result = out.split("\n").find((l) => l.includes("rss_synced_mib"));
  console.log(`bench:kube ${n} Services, ${n} EndpointSlices, deno ${Deno.version.deno}`);
  console.log(result);
  await fake.close();
}

const args = parseArgs({
  args: Deno.args,
  options: { services: { type: "string", default: "10000" }, child: { type: "string" } },
});
if (args.values.child) await child(args.values.child);
else await parent(Number(args.values.services));
