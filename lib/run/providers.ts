/**
 * The NAT provider registry: who may vouch, for the un-NATed rule, that a
 * destination is NATed now for a client; asked in this order, the first
 * "yes" wins. Adding a provider is its file in lib/rules/providers/ and one
 * entry here.
 *
 * @module
 */
import type { ProviderEntry } from "./parts.ts";
import { KUBERNETES_FEED } from "./kubernetes.ts";

/**
 * The providers, in the order the un-NATed rule asks them.
 *
 * @example
 * ```ts
 * import { PROVIDERS } from "./providers.ts";
 * PROVIDERS.map((p) => p.name); // => ["destinations", "table", "kubernetes"]
 * ```
 */
export const PROVIDERS: readonly ProviderEntry[] = [
  {
    name: "destinations",
    summary: "--destinations vouches for every client",
    enabled: (s) => s.destinations !== undefined,
    create: async (c) =>
      new (await import("../rules/providers/destinations.ts")).DestinationsProvider(
        c.settings.destinations!,
      ),
  },
  {
    name: "table",
    summary: "the same client's newer connection to the destination was translated, in this read " +
      "(when --destinations is not given)",
    enabled: (s) => s.destinations === undefined,
    create: async () =>
      new (await import("../rules/providers/table_evidence.ts")).TableEvidenceProvider(),
  },
  {
    name: "kubernetes",
    summary: "a Service address and port with ready endpoints (--kubernetes)",
    enabled: (s) => s.kubernetes !== "off",
    create: async (c) => {
      const services = await c.use(KUBERNETES_FEED);
      if (services === undefined) return undefined;
      return new (await import("../rules/providers/kubernetes.ts")).KubernetesProvider(services);
    },
  },
];
