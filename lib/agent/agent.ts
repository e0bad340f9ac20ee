/**
 * The poll loop: snapshot → tracker → rules → delete, on a fixed schedule, never
 * overlapping, until the signal aborts. All effects come in through
 * {@linkcode AgentOptions} so tests can drive it with fakes.
 *
 * @module
 */
import type { Snapshot } from "../model/snapshot.ts";
import { tupleKey } from "../model/tuple.ts";
import type { Deleter } from "../deleters/deleter.ts";
import type { DestinationSet } from "../model/destination_set.ts";
import type { Logger } from "../log/logger.ts";
import { type Clock, errorText, sleep, yieldToIo } from "../basics.ts";
import { QuietLog } from "../log/quiet_log.ts";
import { PollDecisionLog, PollKeptLog } from "../log/decision_log.ts";
import type { AgentObserver, DecisionResult } from "./observer.ts";
import type { Source } from "../sources/source.ts";
import type { RenewalTracker, TrackResult } from "../rules/tracker.ts";
import { type Decision, mergeWants, type Rule, type RuleInput } from "../rules/rule.ts";
import { askNatRules, decideAll, type NatJudge } from "./decide.ts";
import { decisionFields as fields, PollNotes } from "./notes.ts";

/** Everything the loop needs. */
export interface AgentOptions {
  source: Source;
  deleter: Deleter;
  tracker: RenewalTracker;
  /** Only candidates whose original destination is inside this set are considered, by every rule. */
  destinations?: DestinationSet;
  /**
   * The deletion rules, asked in this order; a tuple two rules decide is
   * acted on once, for the first.
   */
  rules: readonly Rule[];
  /**
   * The node's NAT rules, asked once a poll about the candidates the rules
   * name (`Rule.natAsk`); absent with `--nat-rules=off`.
   */
  nat?: NatJudge;
  log: Logger;
  intervalMs: number;
  dryRun?: boolean;
  /** `--log-level=debug`: a debug line per kept candidate with the rules' reasons (lib/decision_log.ts). */
  logKept?: boolean;
  observer?: AgentObserver;
  /**
   * At most this many stale entries are deleted per poll; the rest wait for
   * the next one (they stay stale). Default: no limit.
   */
  maxDeletesPerPoll?: number;
  /** Monotonic milliseconds; default `performance.now`. */
  clock?: Clock;
  /** Waits `ms` or until `signal` aborts; default a timer. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** What {@linkcode Agent.pollOnce} did. */
export interface PollReport {
  ok: boolean;
  track?: TrackResult;
  results: { decision: Decision; result: DecisionResult; error?: string | undefined }[];
}

/** Liveness and readiness as the HTTP probes see them. */
export interface AgentStatus {
  /** Monotonic ms when the last poll started; `undefined` before the first. */
  lastPollStartedAt: number | undefined;
  /** Monotonic ms when the last poll ended; `undefined` before the first. */
  lastPollEndedAt: number | undefined;
  /** Whether the last snapshot succeeded; `undefined` before the first finished. */
  lastSnapshotOk: boolean | undefined;
  /** The last snapshot error, while the last snapshot failed. */
  lastError: string | undefined;
  /** A poll is in progress. */
  polling: boolean;
  /** Polls in a row whose deletions all failed (0 once one succeeds). */
  deleteFailures?: number;
  /** Why the last failed deletion failed, while `deleteFailures` > 0. */
  lastDeleteError?: string | undefined;
}

/**
 * The agent's loop.
 *
 * @example
 * ```ts ignore
 * // ignore: needs root; runs the agent, which deletes from this host's conntrack table.
 * import { Agent } from "./agent.ts";
 * import { RenewalTracker } from "../rules/tracker.ts";
 *  * import { ProcfsSource } from "../sources/procfs.ts";
 * import { ConntrackCliDeleter } from "../deleters/conntrack_cli.ts";
 * import { createLogger } from "../log/logger.ts";
 * const tracker = new RenewalTracker({ threshold: 3 });
 * const agent = new Agent({
 *   source: new ProcfsSource(),
 *   deleter: new ConntrackCliDeleter(),
 *   tracker,
 *   rules: [new RenewalRule(tracker)],
 *   log: createLogger(),
 *   intervalMs: 1000,
 * });
 * const stop = new AbortController();
 * Deno.addSignalListener("SIGTERM", () => stop.abort());
 * await agent.run(stop.signal);
 * ```
 */
export class Agent {
  readonly status: AgentStatus = {
    lastPollStartedAt: undefined,
    lastPollEndedAt: undefined,
    lastSnapshotOk: undefined,
    lastError: undefined,
    polling: false,
  };
  #o: AgentOptions;
  #clock: Clock;
  #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  #warnedOverrun = false;
  /** Dry run: entries already reported (tuple keys), while they stay candidates. */
  #dryRunSaid = new Set<string>();
  /** Warnings and failure lines that would repeat every poll, said once a minute. */
  #quiet: QuietLog;
  #notes: PollNotes;
  /** Keys (and ids) the deleter reported already gone in the last poll. */
  /** Only at debug level (`logKept`). */
  #kept: PollKeptLog | undefined;

  constructor(options: AgentOptions) {
    this.#o = options;
    this.#clock = options.clock ?? (() => performance.now());
    this.#sleep = options.sleep ?? sleep;
    this.#quiet = new QuietLog(options.log, this.#clock);
    this.#notes = new PollNotes(this.#quiet, options.deleter.name);
    if (options.logKept) this.#kept = new PollKeptLog(options.log);
  }

  /**
   * Polls every `intervalMs` until `signal` aborts; resolves when the poll in
   * progress (if any) has finished. A poll that outlasts the interval delays
   * the next one: polls never overlap, and the ticks missed are counted.
   *
   * `kill` (default: `signal`) is handed to the source and the deleter: when
   * it aborts they stop what they are doing (a running `conntrack` is killed).
   * Abort `signal` first and `kill` a moment later to let an in-flight
   * deletion finish.
   */
  async run(signal: AbortSignal, kill: AbortSignal = signal): Promise<void> {
    const interval = this.#o.intervalMs;
    let tick = this.#clock();
    while (!signal.aborted) {
      await this.pollOnce(kill);
      if (signal.aborted) break;
      const now = this.#clock();
      // Ticks that came due while this poll ran: the next poll starts at once, late.
      const missed = Math.floor((now - tick) / interval);
      if (missed > 0) {
        this.#o.observer?.skippedTicks?.(missed);
        const fields = { poll_ms: Math.round(now - tick), interval_ms: interval, missed };
        if (!this.#warnedOverrun) {
          this.#o.log.warn(
            "a poll took longer than the interval; the next one starts late (said once, counted in conntrack_cleaner_skipped_ticks_total)",
            fields,
          );
          this.#warnedOverrun = true;
        } else this.#o.log.debug("poll overran the interval", fields);
        tick = now; // start again from here rather than firing a burst
        await yieldToIo(); // the probes get their turn between two polls
        continue;
      }
      tick += interval;
      await this.#sleep(Math.max(0, tick - now), signal);
    }
  }

  /** One snapshot, one tracker step, the deletions it calls for. Never rejects. */
  async pollOnce(signal?: AbortSignal): Promise<PollReport> {
    const { source, tracker, log, observer } = this.#o;
    const started = this.#clock();
    this.status.lastPollStartedAt = started;
    this.status.polling = true;
    try {
      let snapshot: Snapshot;
      const rules = this.#o.rules;
      // What the rules want collected in the same read (evidence keys).
      const wants = mergeWants(rules.map((r) => r.wants?.()));
      try {
        snapshot = await source.snapshot(signal, wants.evidenceFor ? wants : undefined);
      } catch (e) {
        if (signal?.aborted) {
          // Shutting down: not a failure of the table, and there is no next poll.
          log.info("snapshot interrupted by shutdown", { source: source.name });
          return { ok: false, results: [] };
        }
        const ms = this.#clock() - started;
        const first = this.status.lastSnapshotOk !== false;
        this.status.lastSnapshotOk = false;
        this.status.lastError = `${source.name} snapshot failed: ${errorText(e)}`;
        observer?.snapshotFailed?.(e, ms);
        // Said at error level when it starts failing, then quietly until it recovers.
        (first ? log.error : log.debug)("reading the conntrack table failed; will retry", {
          source: source.name,
          error: errorText(e),
        });
        return { ok: false, results: [] };
      }
      const snapMs = this.#clock() - started;
      if (this.status.lastSnapshotOk === false) {
        log.info("reading the conntrack table works again", { source: source.name });
      }
      this.status.lastSnapshotOk = true;
      this.status.lastError = undefined;
      observer?.evidenceRead?.(wants.evidenceFor?.length ?? 0, snapshot.evidence !== undefined);
      const scoped = this.#scope(snapshot);
      const track = tracker.observe(scoped);
      observer?.snapshotOk?.(snapshot, snapMs, track);
      this.#notes.malformed(snapshot);
      this.#notes.overflow(snapshot);
      this.#notes.stillThere(snapshot);
      const stale = await this.#decide(rules, scoped, track);
      log.debug("poll", {
        scanned: snapshot.scanned,
        candidates: snapshot.candidates.length,
        in_scope: scoped.candidates.length,
        tracked: track.tracked,
        renewals: track.renewals,
        stale: stale.length,
        snapshot_ms: round(snapMs),
      });
      const results = stale.length > 0 ? await this.#act(stale, signal) : [];
      return { ok: true, track, results };
    } finally {
      this.status.polling = false;
      this.status.lastPollEndedAt = this.#clock();
    }
  }

  /** The snapshot with only the candidates inside `--destinations` (all of them by default). */
  #scope(s: Snapshot): Snapshot {
    const d = this.#o.destinations;
    if (d === undefined) return s;
    const candidates = s.candidates.filter((c) => d.match(c.family, c.dst, c.dport) !== undefined);
    return { ...s, candidates };
  }

  /**
   * Every rule's decisions for this read, each tuple once (the first rule's);
   * in a dry run, each entry said once while it stays a candidate.
   */
  async #decide(rules: readonly Rule[], s: Snapshot, track: TrackResult): Promise<Decision[]> {
    const input: RuleInput = {
      snapshot: s,
      track,
      sameSince: this.#o.tracker.sameSince.bind(this.#o.tracker),
    };
    if (this.#o.nat !== undefined) {
      const nat = await askNatRules(rules, { ...input, snapshot: readOnly(s) }, this.#o.nat);
      if (nat.asked > 0) input.nat = nat.verdict;
    }
    const kept = this.#kept;
    const decided = decideAll(rules, input, kept && ((rule, c, why) => kept.note(rule, c, why)));
    // Rules (and their providers) see every candidate, but none acts on one only heard of
    // (`Candidate.heard`): its entry may have been answered since its event.
    const heard = new Set(s.candidates.filter((c) => c.heard).map(tupleKey));
    const out = heard.size === 0
      ? decided.decisions
      : decided.decisions.filter((d) => !heard.has(tupleKey(d.tuple)));
    kept?.end(decided.taken);
    if (!this.#o.dryRun) return out;
    // A dry run deletes nothing: say each entry once while it stays, not at every poll.
    const present = new Set(s.candidates.map(tupleKey));
    for (const k of this.#dryRunSaid) if (!present.has(k)) this.#dryRunSaid.delete(k);
    return out.filter((d) => {
      const key = tupleKey(d.tuple);
      if (this.#dryRunSaid.has(key)) return false;
      this.#dryRunSaid.add(key);
      return true;
    });
  }

  async #act(all: Decision[], signal?: AbortSignal): Promise<PollReport["results"]> {
    const { deleter, tracker, log, observer, dryRun } = this.#o;
    const max = this.#o.maxDeletesPerPoll ?? Infinity;
    const stale = all.length > max ? all.slice(0, max) : all;
    if (stale.length < all.length) {
      log.debug("more stale entries than one poll deletes; the rest wait", {
        stale: all.length,
        now: stale.length,
      });
    }
    const said = new PollDecisionLog(log);
    if (dryRun) {
      for (const d of stale) {
        said.say(d.rule, "dry_run", "dry run: would delete stale entry", fields(d, this.#o.rules));
        tracker.forget(d.tuple);
      }
      said.end();
      observer?.deletions?.(stale.map((d) => ({ result: "dry_run", rule: d.rule })), 0);
      return stale.map((decision) => ({ decision, result: "dry_run" }));
    }
    const t0 = this.#clock();
    const targets = stale.map((d) => (d.id === undefined ? d.tuple : { ...d.tuple, id: d.id }));
    const outcomes = await deleter.delete(targets, signal);
    const ms = this.#clock() - t0;
    const results = stale.map((decision, i) => {
      const o = outcomes[i] ?? { tuple: decision.tuple, result: "failed", error: "no outcome" };
      const f = {
        ...fields(decision, this.#o.rules),
        deleter: deleter.name,
        batch: stale.length,
        delete_ms: round(ms),
      };
      const rule = decision.rule;
      if (o.result === "deleted") said.say(rule, o.result, "deleted stale entry", f);
      else if (o.result === "already_gone") {
        said.say(rule, o.result, "stale entry was already gone (it expired or got its reply)", f);
        this.#notes.reportedGone(decision);
      } else if (signal?.aborted) {
        log.info("deletion interrupted by shutdown; outcome unknown", { ...f, error: o.error });
      } else {
        this.#quiet.errorPerCause(
          "deleting stale entry failed; will retry next poll",
          o.error ?? "unknown",
          f,
        );
      }
      if (o.result !== "failed") tracker.forget(decision.tuple);
      return { decision, result: o.result as DecisionResult, error: o.error };
    });
    said.end();
    observer?.deletions?.(results.map((r) => ({ result: r.result, rule: r.decision.rule })), ms);
    const failed = results.filter((r) => r.result === "failed");
    if (failed.length < results.length) {
      this.status.deleteFailures = 0;
      this.status.lastDeleteError = undefined;
    } else if (!signal?.aborted) {
      this.status.deleteFailures = (this.status.deleteFailures ?? 0) + 1;
      this.status.lastDeleteError = `${deleter.name} deleter: ${failed[0]!.error ?? "failed"}`;
    }
    return results;
  }
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

/** The snapshot without the candidates only heard of (`Candidate.heard`): not asked about. */
function readOnly(s: Snapshot): Snapshot {
  if (!s.candidates.some((c) => c.heard)) return s;
  return { ...s, candidates: s.candidates.filter((c) => !c.heard) };
}
