/**
 * The Kubernetes feed: the Services view that the `kubernetes` provider and
 * the `stale_endpoint` rule share, started when the first of them asks
 * (lib/kube/ and `yaml` load only then), its /readyz word and its metrics.
 *
 * @module
 */
import type { Feed } from "./parts.ts";
import { SetupError } from "./checks.ts";
import type { Registry } from "../serve/prom.ts";
import type { KubeServices, KubeStatus } from "../kube/services.ts";
import { VERSION } from "./version.ts";

const PREFIX = "conntrack_cleaner_";

/** Watches Services and EndpointSlices while the agent runs (`--kubernetes=auto` with credentials). */
export const KUBERNETES_FEED: Feed<KubeServices> = {
  name: "kubernetes",
  async start(c) {
    const [{ AccessError }, { startKubernetes }, { kubeReadiness }] = await Promise.all([
      import("../kube/access.ts"),
      import("../kube/start.ts"),
      import("../kube/readiness.ts"),
    ]);
    let kube;
    try {
      kube = await startKubernetes(
        {
          kubernetes: c.settings.kubernetes,
          kubeconfig: c.settings.kubeconfig,
          userAgent: `conntrack-cleaner/${VERSION}`,
          nodePortAddresses: c.settings.nodePortAddresses,
          settleMs: c.settings.staleEndpointSettleMs,
        },
        c.log,
        c.stop,
      );
    } catch (e) {
      if (e instanceof AccessError) throw new SetupError(`Kubernetes: ${e.message}`);
      throw e;
    }
    if (kube === undefined) return undefined;
    const running = kube;
    return {
      value: running.services,
      ready: () => kubeReadiness(running.services.status()),
      close: async () => {
        await running.done;
        running.close();
      },
    };
  },
  metrics: (r, read) => kubernetesMetrics(r, () => read()?.status()),
};

/** The Kubernetes view's gauges, read from its status at each scrape (`off` while it does not run). */
export function kubernetesMetrics(r: Registry, status: () => KubeStatus | undefined): void {
  const states = ["off", "unsynced", "live", "stale", "expired"] as const;
  r.gauge(
    `${PREFIX}kubernetes_view`,
    "1 for the Kubernetes Services view's state now (off, unsynced, live, stale, expired), 0 for the others.",
    ["state"],
    (g) => {
      const now = status()?.freshness ?? "off";
      for (const state of states) g.set(state === now ? 1 : 0, { state });
    },
  );
  r.gauge(
    `${PREFIX}kubernetes_last_contact_age_seconds`,
    "Seconds since the Kubernetes API last answered (the older of the two watches); 0 when off.",
    [],
    (g) => g.set((status()?.lastContactAgeMs ?? 0) / 1000),
  );
  r.gauge(
    `${PREFIX}kubernetes_objects`,
    "Services and EndpointSlices kept, by resource.",
    ["resource"],
    (g) => {
      const s = status();
      g.set(s?.services ?? 0, { resource: "services" });
      g.set(s?.slices ?? 0, { resource: "endpointslices" });
    },
  );
  r.gauge(
    `${PREFIX}kubernetes_objects_ignored`,
    "Services and EndpointSlices over the bounds, not kept, by resource; while any, Services vouch for nothing and stale_endpoint does not act.",
    ["resource"],
    (g) => {
      const s = status();
      g.set(s?.servicesIgnored ?? 0, { resource: "services" });
      g.set(s?.slicesIgnored ?? 0, { resource: "endpointslices" });
    },
  );
  r.gauge(
    `${PREFIX}kubernetes_destinations`,
    "Service addresses and ports with ready endpoints that the Kubernetes provider vouches for.",
    [],
    (g) => g.set(status()?.destinations ?? 0),
  );
}
