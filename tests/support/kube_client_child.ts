/**
 * Run as a child process by tests/kube/transport_test.ts, so that the
 * environment it starts with (trust store, proxy variables) is the one Deno
 * builds its TLS roots and proxies from: lists `/api/v1/services` once from
 * the server in `Deno.args[1]`, with `FetchKubeApi` (`api`, the CA PEM file
 * in `Deno.args[2]` or none) or a bare `fetch` (`plain`), and prints `ok` or
 * `refused: …`.
 *
 * @module
 */
import { FetchKubeApi } from "../../lib/kube/api.ts";

const [mode, server, caFile] = Deno.args;
try {
  if (mode === "plain") {
    const r = await fetch(`${server}/api/v1/services?limit=1`, {
      signal: AbortSignal.timeout(5000),
    });
    await r.body?.cancel();
  } else {
    const caPem = caFile ? await Deno.readTextFile(caFile) : undefined;
    const api = new FetchKubeApi({ server: server!, origin: "child", ...(caPem ? { caPem } : {}) });
    await api.list("/api/v1/services", { limit: 1 }, AbortSignal.timeout(5000));
    api.close();
  }
  console.log("ok");
} catch (e) {
  console.log(`refused: ${String((e as Error).cause ?? e).split("\n")[0]}`);
}
