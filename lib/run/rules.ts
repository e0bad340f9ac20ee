/**
 * The rule registry: every deletion rule, once, in the order the agent asks
 * them. Adding a rule is its file in lib/rules/ and one entry here; the union
 * of every rule's decision details ({@linkcode DecisionDetails}) follows.
 *
 * @module
 */
import type { DetailsOf, RuleEntry } from "./parts.ts";
import type { RenewalDetails } from "../rules/renewals.ts";
import type { UnnatedDetails } from "../rules/unnated.ts";
import type { StaleEndpointDetails } from "../rules/stale_endpoint.ts";
import type { StaleTranslationDetails } from "../rules/stale_translation.ts";
import { KUBERNETES_FEED } from "./kubernetes.ts";

const renewals: RuleEntry<RenewalDetails> = {
  name: "renewals",
  summary: "the entry's timeout keeps being renewed (kernels before 5.14), more than " +
    "--threshold times",
  enabled: () => true,
  create: async (c) => new (await import("../rules/renewals.ts")).RenewalRule(c.tracker),
};

const unnated: RuleEntry<UnnatedDetails> = {
  name: "unnated",
  summary: "the entry's destination was not translated, it is --unnated-after old, and its " +
    "next SYN would be translated now: the node's NAT rules say so, or, only where they are " +
    "unreadable, a provider vouches (--destinations, the same client's newer translated " +
    "connection, a Kubernetes Service)",
  enabled: (s) => s.unnatedAfterMs !== undefined,
  create: async (c) =>
    new (await import("../rules/unnated.ts")).UnnatedRule({
      afterMs: c.settings.unnatedAfterMs!,
      synSentTimeoutS: c.synSentTimeoutS,
      providers: await c.providers(),
    }),
};

const staleEndpoint: RuleEntry<StaleEndpointDetails> = {
  name: "stale_endpoint",
  summary: "the entry was translated to an endpoint that has since stopped serving its " +
    "Kubernetes Service (removed from its EndpointSlices, or serving: false), and it is " +
    "--unnated-after old",
  enabled: (s) => s.unnatedAfterMs !== undefined && s.kubernetes !== "off",
  create: async (c) => {
    const services = await c.use(KUBERNETES_FEED);
    if (services === undefined) return undefined;
    return new (await import("../rules/stale_endpoint.ts")).StaleEndpointRule({
      afterMs: c.settings.unnatedAfterMs!,
      synSentTimeoutS: c.synSentTimeoutS,
      endpoints: services,
    });
  },
};

const staleTranslation: RuleEntry<StaleTranslationDetails> = {
  name: "stale_translation",
  summary: "the entry was translated to X, it is --unnated-after old, and the node's NAT rules " +
    "now translate its next SYN elsewhere (X not among their targets)",
  enabled: (s) => s.unnatedAfterMs !== undefined && s.natRules !== "off",
  create: async (c) =>
    new (await import("../rules/stale_translation.ts")).StaleTranslationRule({
      afterMs: c.settings.unnatedAfterMs!,
      synSentTimeoutS: c.synSentTimeoutS,
    }),
};

/**
 * The rules, in the order the agent asks them (a tuple two rules decide is
 * acted on once, for the first).
 *
 * @example
 * ```ts
 * import { RULES } from "./rules.ts";
 * RULES.map((r) => r.name); // => ["renewals", "unnated", "stale_endpoint", "stale_translation"]
 * ```
 */
export const RULES = [renewals, unnated, staleEndpoint, staleTranslation] as const;

/** Every rule's decision details: a union discriminated by `rule`. */
export type DecisionDetails = DetailsOf<typeof RULES[number]>;

/** A registered rule's name. */
export type RuleName = DecisionDetails["rule"];
