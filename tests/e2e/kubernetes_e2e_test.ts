/**
 * Issue 16 end to end: Kubernetes Services as trusted destinations, with
 * real sockets in three namespaces (testbed/stuck_client.ts) and the fake API
 * server running on the node namespace's loopback (testbed/kube_net.ts); the
 * agent runs in the node namespace with `--kubeconfig` pointing at it and no
 * `--destinations`.
 *
 * Every agent here runs with `--nat-rules=off`: these stories are about the
 * Kubernetes view, which decides only where the node's NAT rules are not read
 * (or unreadable). Where they are read, the rules decide
 * (tests/e2e/nat_rules_e2e_test.ts, with a Kubernetes API too).
 *
 * @module
 */
import assert from "node:assert/strict";
import { kernelTest } from "../support/machine.ts";
import { startFakeApiIn } from "../../testbed/kube_net.ts";
import { endpointSlice, service, withLabels } from "../../testbed/kube_objects.ts";
import { sessionsTogether, SLOW_ADDRESSES, VIP_PORT, withSlowNet } from "../../testbed/slow_net.ts";
import {
  ADDRESSES,
  BACKEND_PORT,
  findEntry,
  isTranslated,
  runStory,
  SERVICE_PORT,
  startAgent,
  STUCK_SPORT,
  type StuckNet,
  withStuckNet,
} from "../../testbed/stuck_client.ts";

const A = ADDRESSES.ipv4;
/** The Kubernetes view decides only where the NAT rules are not read. */
const NO_NAT_RULES = "--nat-rules=off";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until the agent's logs have a line matching `pred`, or `ms` passed. */
async function logged(
  logs: Record<string, unknown>[],
  pred: (l: Record<string, unknown>) => boolean,
  ms: number,
): Promise<Record<string, unknown> | undefined> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const hit = logs.find(pred);
    if (hit) return hit;
    await sleep(50);
  }
  return undefined;
}

/** The agent with the fake API in the node namespace; `fn` runs once the view is live. */
async function withKubeAgent(
  net: StuckNet,
  setup: (api: Awaited<ReturnType<typeof startFakeApiIn>>) => Promise<void>,
  fn: (
    api: Awaited<ReturnType<typeof startFakeApiIn>>,
    logs: Record<string, unknown>[],
  ) => Promise<void>,
  args: string[] = [],
): Promise<Record<string, unknown>[]> {
  const api = await startFakeApiIn(net.node);
  try {
    await setup(api);
    const agent = startAgent(net.node, [`--kubeconfig=${api.kubeconfig}`, NO_NAT_RULES, ...args]);
    try {
      await agent.ready;
      const live = await logged(
        agent.logs,
        (l) => l.msg === "Kubernetes Services view is live",
        8000,
      );
      assert.ok(live, `the view goes live: ${JSON.stringify(agent.logs)}`);
      await fn(api, agent.logs);
    } finally {
      await agent.stop();
    }
    return agent.logs;
  } finally {
    await api.close();
  }
}

const deletions = (logs: Record<string, unknown>[]) =>
  logs.filter((l) => l.msg === "deleted stale entry");

kernelTest(
  "a single stuck client of a Service connects ≤ 6 s after its first SYN when endpoints and the DNAT rule appear 2 s in (no other client, no --destinations; IPv4, IPv6)",
  async () => {
    await Promise.all(
      (["ipv4", "ipv6"] as const).map((family) =>
        withStuckNet(`k16-one-${family.slice(-1)}`, { zone: 0 }, async (net) => {
          const a = ADDRESSES[family];
          const logs = await withKubeAgent(
            net,
            (api) =>
              api.set(
                "services",
                service("web", "shop", {
                  clusterIPs: [a.service],
                  ports: [{ name: "http", port: SERVICE_PORT, targetPort: BACKEND_PORT }],
                }),
              ),
            async (api) => {
              const r = await runStory(net, {
                family,
                deadlineMs: 10_000,
                secondClientAtMs: null,
                afterFirstSyn: () => {
                  // The endpoints arrive with the rule, 2 s after the first SYN.
                  setTimeout(() => {
                    api.set(
                      "endpointslices",
                      endpointSlice("web", "shop", family, [{ name: "http", port: BACKEND_PORT }], [
                        { addr: a.backend },
                      ]),
                    ).catch(() => {});
                  }, 1900);
                  return Promise.resolve();
                },
              });
              console.log(
                `${family}: stuck client connected after ${r.stuck.ms} ms (rule at ${r.dnatMs} ms)`,
              );
              assert.ok(r.stuck.connected, `the stuck client connects: ${JSON.stringify(r)}`);
              assert.ok(r.stuck.ms <= 6000, `within 6 s: ${r.stuck.ms} ms`);
              assert.equal(r.second, undefined, "no second client");
            },
          );
          const d = deletions(logs);
          assert.equal(d.length, 1, JSON.stringify(d));
          assert.equal(d[0]!.rule, "unnated");
          assert.equal(d[0]!.provider, "kubernetes");
          assert.equal(d[0]!.sport, STUCK_SPORT);
        })
      ),
    );
  },
);

kernelTest(
  "a Service without ready endpoints, or reached through LoadBalancer ingress in ipMode Proxy, frees nothing",
  async () => {
    await withStuckNet("k16-none", { zone: 0 }, async (net) => {
      const logs = await withKubeAgent(
        net,
        async (api) => {
          // shop: ready endpoints never come (a pod that never gets ready).
          await api.set(
            "services",
            service("web", "shop", {
              clusterIPs: ["10.96.0.10"],
              externalIPs: [A.service],
              ports: [{ name: "http", port: SERVICE_PORT, targetPort: BACKEND_PORT }],
            }),
          );
          await api.set(
            "endpointslices",
            endpointSlice("web", "shop", "ipv4", [{ name: "http", port: BACKEND_PORT }], [
              { addr: A.backend, ready: false },
            ]),
          );
          // lb: ready, but its ingress is a proxying load balancer (kube-proxy does not NAT it).
          await api.set(
            "services",
            service("web", "lb", {
              clusterIPs: ["10.96.0.11"],
              ingress: [{ ip: A.otherService, ipMode: "Proxy" }],
              ports: [{ name: "http", port: SERVICE_PORT, targetPort: BACKEND_PORT }],
            }),
          );
          await api.set(
            "endpointslices",
            endpointSlice("web", "lb", "ipv4", [{ name: "http", port: BACKEND_PORT }], [
              { addr: A.backend },
            ]),
          );
        },
        async () => {
          const at = Date.now() + 800;
          const c1 = net.connect({ family: "ipv4", sport: STUCK_SPORT, at, deadlineMs: 7000 });
          const c2 = net.connect({
            family: "ipv4",
            dst: A.otherService,
            sport: STUCK_SPORT + 1,
            at,
            deadlineMs: 7000,
          });
          await c1.started;
          await sleep(2000);
          // The node gets DNAT rules for both: freeing either entry would let it connect.
          await net.dnat("ipv4");
          await net.dnat("ipv4", A.otherService);
          const [r1, r2] = await Promise.all([c1.done, c2.done]);
          assert.equal(
            r1.outcome,
            "deadline",
            `no ready endpoints: stays stuck ${JSON.stringify(r1)}`,
          );
          assert.equal(r2.outcome, "deadline", `ipMode Proxy: stays stuck ${JSON.stringify(r2)}`);
          const table = await net.table();
          for (
            const [dst, sport] of [[A.service, STUCK_SPORT], [
              A.otherService,
              STUCK_SPORT + 1,
            ]] as const
          ) {
            const e = findEntry(table, { src: A.client, dst, sport, dport: SERVICE_PORT, zone: 0 });
            assert.ok(e && e.state === "SYN_SENT" && !isTranslated(e), `${dst}: still there`);
          }
        },
      );
      assert.deepEqual(deletions(logs), []);
    });
  },
);

kernelTest(
  "a SYN_SENT entry DNATed to an endpoint that was removed is deleted once the removal settled (--stale-endpoint-settle=1s, both watches confirmed it: 1–3.5 s after); one DNATed to a serving endpoint stays",
  async () => {
    await withStuckNet("k16-stale", { zone: 0 }, async (net) => {
      // Two pods in the dead-end prefix: nobody answers for either.
      const gone = "198.19.0.50", slow = "198.19.0.51";
      const slice = (addrs: string[]) =>
        endpointSlice(
          "web",
          "shop",
          "ipv4",
          [{ name: "http", port: BACKEND_PORT }],
          addrs.map((addr) => ({ addr })),
        );
      const dnatFrom = async (sport: number, to: string, op = "-A") => {
        const r = await net.node.exec([
          "iptables",
          "-t",
          "nat",
          op,
          "CCT-SERVICES",
          "-d",
          A.service,
          "-p",
          "tcp",
          "--sport",
          String(sport),
          "--dport",
          String(SERVICE_PORT),
          "-j",
          "DNAT",
          "--to-destination",
          `${to}:${BACKEND_PORT}`,
        ]);
        assert.equal(r.code, 0, r.stderr);
      };
      let removedAt = 0;
      const logs = await withKubeAgent(
        net,
        async (api) => {
          await api.set(
            "services",
            service("web", "shop", {
              clusterIPs: [A.service],
              ports: [{ name: "http", port: SERVICE_PORT, targetPort: BACKEND_PORT }],
            }),
          );
          await api.set("endpointslices", slice([gone, slow]));
          await dnatFrom(STUCK_SPORT, gone);
          await dnatFrom(STUCK_SPORT + 1, slow);
        },
        async (api, logs) => {
          const at = Date.now() + 800;
          const toGone = net.connect({ family: "ipv4", sport: STUCK_SPORT, at, deadlineMs: 9000 });
          const toSlow = net.connect({
            family: "ipv4",
            sport: STUCK_SPORT + 1,
            at,
            deadlineMs: 9000,
          });
          await toGone.started;
          await sleep(2500);
          const before = await net.table();
          const spec = (sport: number) => ({
            src: A.client,
            dst: A.service,
            sport,
            dport: SERVICE_PORT,
            zone: 0,
          });
          const gone0 = findEntry(before, spec(STUCK_SPORT));
          const slow0 = findEntry(before, spec(STUCK_SPORT + 1));
          assert.ok(gone0 && isTranslated(gone0) && gone0.replySrc === gone, JSON.stringify(gone0));
          assert.ok(slow0 && isTranslated(slow0) && slow0.replySrc === slow, JSON.stringify(slow0));
          // The pod behind `gone` goes away: kube-proxy would now send its client to the backend.
          await dnatFrom(STUCK_SPORT, gone, "-D");
          await dnatFrom(STUCK_SPORT, A.backend);
          await api.set("endpointslices", slice([slow, A.backend]));
          removedAt = Date.now();
          const del = await logged(logs, (l) => l.msg === "deleted stale entry", 4000);
          const delMs = Date.now() - removedAt;
          console.log(`entry toward the removed endpoint deleted ${delMs} ms after the removal`);
          assert.ok(del, "deleted");
          assert.ok(delMs >= 1000 && delMs <= 3500, `${delMs} ms`);
          const [rg, rs] = await Promise.all([toGone.done, toSlow.done]);
          assert.ok(
            rg.connected,
            `its client then reaches the new endpoint: ${JSON.stringify(rg)}`,
          );
          assert.equal(rs.outcome, "deadline", "the other keeps waiting on its serving endpoint");
          const slow1 = findEntry(await net.table(), spec(STUCK_SPORT + 1));
          assert.equal(
            slow1?.id,
            slow0.id,
            "the entry toward the serving endpoint was never deleted",
          );
        },
        ["--stale-endpoint-settle=1s"],
      );
      const d = deletions(logs);
      assert.equal(d.length, 1, JSON.stringify(d));
      assert.equal(d[0]!.rule, "stale_endpoint");
      assert.equal(d[0]!.sport, STUCK_SPORT);
      assert.equal(d[0]!.endpoint, `${gone}:${BACKEND_PORT}`);
      assert.equal(d[0]!.service, "web/shop");
    });
  },
);

kernelTest(
  "a LoadBalancer Service kube-proxy skips (labelled service-proxy-name; IPv6: its slices labelled headless), its ingress IP a real server answering 3 s late behind MASQUERADE + INVALID drop: every client connects as without the agent, no entry deleted (IPv4, IPv6)",
  async () => {
    const DELAY_MS = 3000, LATE_MS = 700;
    const S = SLOW_ADDRESSES;
    await withSlowNet("k21-label", { delayMs: DELAY_MS }, async (net) => {
      const api = await startFakeApiIn(net.node);
      try {
        const ports = [{ name: "http", port: VIP_PORT, targetPort: 8080, nodePort: 30080 }];
        // IPv4: the Service itself is labelled; its slice is not (and has a ready endpoint).
        await api.set(
          "services",
          withLabels(
            service("web", "lb4", {
              clusterIPs: ["10.96.0.40"],
              ingress: [{ ip: S.ipv4.vip }],
              ports,
            }),
            { "service.kubernetes.io/service-proxy-name": "other-proxy" },
          ),
        );
        await api.set(
          "endpointslices",
          endpointSlice("web", "lb4", "ipv4", [{ name: "http", port: 8080 }], [
            { addr: S.ipv4.backend },
          ]),
        );
        // IPv6: the Service is plain; its only slice is labelled headless (kube-proxy skips it).
        await api.set(
          "services",
          service("web", "lb6", { clusterIPs: ["fd00::40"], ingress: [{ ip: S.ipv6.vip }], ports }),
        );
        await api.set(
          "endpointslices",
          withLabels(
            endpointSlice("web", "lb6", "ipv6", [{ name: "http", port: 8080 }], [
              { addr: S.ipv6.backend },
            ]),
            { "service.kubernetes.io/headless": "" },
          ),
        );
        const watch = await net.watchEvents();
        const agent = startAgent(net.node, [`--kubeconfig=${api.kubeconfig}`, NO_NAT_RULES]);
        let events;
        try {
          await agent.ready;
          const live = await logged(
            agent.logs,
            (l) => l.msg === "Kubernetes Services view is live",
            8000,
          );
          assert.ok(live, `the view goes live: ${JSON.stringify(agent.logs)}`);
          const requests = (["ipv4", "ipv6"] as const).flatMap((f) =>
            [41001, 41002, 41003].map((p) => ({
              id: `${f}-${p}`,
              host: S[f].vip,
              port: VIP_PORT,
              localAddress: S[f].clientB,
              localPort: p,
              atMs: 0,
              deadlineMs: 15_000,
            }))
          );
          // Every path warmed first (sessionsTogether pings each client → VIP path): a first SYN
          // waiting on neighbour discovery on either hop costs 1 s.
          const results = await sessionsTogether(net, [{ ns: net.clients, requests }]);
          events = await watch.stop();
          const ctx = `${JSON.stringify([...results.values()])}\n${
            agent.logs.map((l) => JSON.stringify(l)).join("\n")
          }`;
          const destroyed = events.filter((e) => e.type === "DESTROY" && e.userspace);
          assert.deepEqual(destroyed, [], `nothing deleted: ${ctx}`);
          assert.deepEqual(deletions(agent.logs), [], ctx);
          for (const [id, r] of results) {
            console.log(`${id}: ${r.event} after ${r.connectedMs ?? r.ms} ms`);
            assert.equal(r.event, "answered", `${id}: ${ctx}`);
            assert.ok(r.connectedMs! >= DELAY_MS - 100, `${id} went to the real server: ${ctx}`);
            // The harm this story guards against is a reset (deleted entries: asserted above).
            // One retransmission is allowed: on this testbed an IPv6 client's first SYN is
            // sometimes lost on the delayed hop with or without the agent (nothing deleted).
            assert.ok(
              r.connectedMs! <= DELAY_MS + 1000 + LATE_MS,
              `${id} as without the agent: ${ctx}`,
            );
          }
        } finally {
          await agent.stop();
          await watch.stop().catch(() => []);
        }
      } finally {
        await api.close();
      }
    });
  },
);
