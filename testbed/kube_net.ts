/**
 * The fake Kubernetes API (testbed/fake_kube_api.ts) run inside a network
 * namespace, on that namespace's loopback, so that an agent started there
 * with `ip netns exec` reaches it, plus a kubeconfig pointing at it. The test
 * drives it through the child's stdin (one JSON command a line, each
 * answered before the next is sent).
 *
 * @example
 * ```ts ignore
 * // ignore: needs root and a namespace.
 * import { startFakeApiIn } from "./kube_net.ts";
 * const api = await startFakeApiIn(net.node);
 * await api.set("services", service("web", "shop", { clusterIPs: ["198.19.0.10"], ports: [{ port: 80 }] }));
 * await api.close();
 * ```
 *
 * @module
 */
import type { Netns } from "./netns.ts";
import type { Resource } from "./fake_kube_api.ts";
import { readLines } from "./stuck_client.ts";

const FAKE = new URL("./fake_kube_api.ts", import.meta.url).pathname;

/** A fake API server running in a namespace. */
export interface FakeApiProcess {
  /** `http://127.0.0.1:PORT` (inside the namespace). */
  url: string;
  /** A kubeconfig file naming `url` (removed by `close`). */
  kubeconfig: string;
  set(resource: Resource, object: Record<string, unknown>): Promise<void>;
  delete(resource: Resource, namespace: string, name: string): Promise<void>;
  close(): Promise<void>;
}

/** Starts the fake in `ns` and writes a kubeconfig for it. */
export async function startFakeApiIn(ns: Netns): Promise<FakeApiProcess> {
  const child = ns.spawn([Deno.execPath(), "run", "-A", FAKE], {
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  });
  const lines = readLines(child.stdout);
  const first = await lines.next();
  if (first.done) throw new Error(`fake API server exited: ${(await child.status).code}`);
  const { url } = JSON.parse(first.value) as { url: string };
  const writer = child.stdin.getWriter();
  const enc = new TextEncoder();
  let queue = Promise.resolve();
  const send = (cmd: Record<string, unknown>) =>
    queue = queue.then(async () => {
      await writer.write(enc.encode(JSON.stringify(cmd) + "\n"));
      const r = await lines.next();
      if (r.done || !JSON.parse(r.value).ok) throw new Error(`fake API: ${JSON.stringify(cmd)}`);
    });
  const dir = await Deno.makeTempDir({ prefix: "cct-kubeconfig-" });
  const kubeconfig = `${dir}/config`;
  await Deno.writeTextFile(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "current-context: fake",
      "contexts: [{ name: fake, context: { cluster: fake, user: agent } }]",
      `clusters: [{ name: fake, cluster: { server: "${url}" } }]`,
      "users: [{ name: agent, user: { token: e2e } }]",
      "",
    ].join("\n"),
  );
  return {
    url,
    kubeconfig,
    set: (resource, object) => send({ op: "set", resource, object }),
    delete: (resource, namespace, name) => send({ op: "delete", resource, namespace, name }),
    async close() {
      await writer.close().catch(() => {});
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      for await (const _ of lines) { /* drain */ }
      await Deno.remove(dir, { recursive: true });
    },
  };
}
