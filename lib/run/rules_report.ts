/**
 * The start-up "rules" line: which rules are active, on which destinations,
 * and whether this kernel gives the renewal rule anything to find (the
 * kernel's facts come from lib/os/kernel.ts).
 *
 * @module
 */
import { synSentRenewal } from "../os/kernel.ts";

/** What {@linkcode describeRules} says about the active rules, for the start-up log. */
export interface RulesReport {
  fields: Record<string, unknown>;
  warnings: string[];
}

/**
 * The start-up report on the rules: which are active, on which destinations,
 * and whether this kernel gives the renewal rule anything to find.
 *
 * @example
 * ```ts
 * import { describeRules } from "./rules_report.ts";
 * const r = describeRules({
 *   rules: ["renewals"], providers: [], release: "6.18.44", threshold: 3, unnatedAfter: "off",
 *   destinations: "all", synSentTimeout: 120,
 * });
 * r.fields.kernel_renews_syn_sent; // => "no"
 * r.warnings.length; // => 1: only the renewal rule, on a kernel that does not renew
 * ```
 */
export function describeRules(o: {
  /** The active rules' names, in order (each rule's `name`). */
  rules: readonly string[];
  /** The un-NATed rule's providers' names (empty when it is off). */
  providers: readonly string[];
  release: string;
  threshold: number;
  /** `off` or a duration. */
  unnatedAfter: string;
  /** `all` or the `--destinations` items. */
  destinations: string;
  /** Seconds, or why it could not be read; `undefined` when not needed. */
  synSentTimeout: number | string | undefined;
}): RulesReport {
  const renews = synSentRenewal(o.release);
  const unnated = o.rules.includes("unnated");
  const warnings: string[] = [];
  if (!unnated && renews === "no") {
    warnings.push(
      `only the renewal rule is active (--unnated-after=off), and kernel ${o.release} does not renew ` +
        "SYN_SENT entries on retransmitted SYNs: it will find nothing here",
    );
  }
  if (unnated && typeof o.synSentTimeout === "string") {
    warnings.push(
      `${o.synSentTimeout}; the un-NATed rule takes an entry's age from the time since it was first seen`,
    );
  }
  return {
    fields: {
      rules: [...o.rules],
      renewals_after: `more than ${o.threshold} renewals`,
      unnated_after: o.unnatedAfter,
      destinations: o.destinations,
      nated_now_from: unnated ? [...o.providers] : "off",
      kernel: o.release,
      kernel_renews_syn_sent: renews,
      ...(typeof o.synSentTimeout === "number" ? { syn_sent_timeout_s: o.synSentTimeout } : {}),
    },
    warnings,
  };
}
