/**
 * Planted mutants: each entry of {@linkcode MUTANTS} is one unsafe change to
 * lib/ or a build file (an exact text replaced once) and the test files that
 * must catch it.
 * For each, the repository is copied to a scratch directory, the change is
 * applied there (never in the working tree), and only those test files run.
 * A mutant is "killed" when they fail, "survived" when they pass; the script
 * exits 1 if any survived, or if a search text is not found exactly once (the
 * code moved: update the entry).
 *
 * Usage: `deno task test:mutants [NAME-SUBSTRING…]` (no argument: all).
 * `--check` only checks that every file a mutant names exists and that each
 * search text occurs exactly once, without running anything (`deno task
 * test:static` runs it, so an edit to lib/ that moves a mutant's text fails
 * at once, not only in the mutants run).
 *
 * @module
 */

/** One planted mutation. */
export interface Mutant {
  /** Short name, printed with the verdict. */
  name: string;
  /** File to change, relative to the repository root. */
  file: string;
  /** Exact text that must occur exactly once in `file`. */
  search: string;
  /** What it becomes. */
  replace: string;
  /** Test files (relative to the root) that must fail with the change. */
  tests: string[];
}

const TRACKER = ["tests/rules/tracker_test.ts"];
const FAST = ["tests/text/fast_line_test.ts"];
const CLI = [
  "tests/deleters/conntrack_cli_test.ts",
  "tests/deleters/conntrack_cli_kernel_test.ts",
];
const NETLINK = ["tests/deleters/netlink_test.ts", "tests/deleters/netlink_kernel_test.ts"];
const UNNATED = ["tests/rules/unnated_test.ts"];
const EVENT_GUARDS = "tests/sources/netlink_events_guards_test.ts";

/** The mutants; adding one is adding an entry here. */
export const MUTANTS: Mutant[] = [
  // doc examples: a `// =>` result that is wrong must fail (issue 13: it used to be a comment)
  {
    name: "doc example result wrong",
    file: "lib/run/duration.ts",
    search: 'parseGoDuration("1m30s"); // => 90000',
    replace: 'parseGoDuration("1m30s"); // => 90001',
    tests: ["tests/doc_results_test.ts"],
  },
  // the reaper kills only what carries the helpers' mark (issue 14: setsid'd grandchildren)
  {
    name: "reaper kills every child it did not start, marked or not",
    file: "lib/os/reaper.ts",
    search: "!started.has(p) && (killed.has(p) || marked(p))",
    replace: "!started.has(p)",
    tests: ["tests/os/process_test.ts"],
  },
  // tracker: the deadline interval, the margin, the threshold, one renewal per poll
  {
    name: "tracker lower bound uses seenTo",
    file: "lib/rules/tracker.ts",
    search: "const lo = c.seenFrom + c.timeout * 1000",
    replace: "const lo = c.seenTo + c.timeout * 1000",
    tests: TRACKER,
  },
  {
    name: "tracker upper bound drops the +1 s",
    file: "lib/rules/tracker.ts",
    search: "const hi = c.seenTo + (c.timeout + 1) * 1000",
    replace: "const hi = c.seenTo + c.timeout * 1000",
    tests: TRACKER,
  },
  {
    name: "tracker upper bound uses seenFrom",
    file: "lib/rules/tracker.ts",
    search: "const hi = c.seenTo + (c.timeout + 1) * 1000",
    replace: "const hi = c.seenFrom + (c.timeout + 1) * 1000",
    tests: TRACKER,
  },
  {
    name: "tracker margin 0",
    file: "lib/rules/tracker.ts",
    search: "this.marginMs = options.marginMs ?? 50;",
    replace: "this.marginMs = 0;",
    tests: TRACKER,
  },
  {
    name: "tracker threshold compared with >=",
    file: "lib/rules/tracker.ts",
    search: "t.renewals > this.threshold",
    replace: "t.renewals >= this.threshold",
    tests: TRACKER,
  },
  {
    name: "tracker renewal when the new interval merely starts later",
    file: "lib/rules/tracker.ts",
    search: "if (lo >= t.hi && !again)",
    replace: "if (lo > t.lo && !again)",
    tests: TRACKER,
  },
  {
    name: "tracker one-per-poll guard off",
    file: "lib/rules/tracker.ts",
    search: "const again = t.lastPoll === poll;",
    replace: "const again = false;",
    tests: TRACKER,
  },
  // fast path: port and zone bounds
  {
    name: "fast path sport bound 65536",
    file: "lib/text/fast_line.ts",
    search: "const sport = c.uint(65535);",
    replace: "const sport = c.uint(65536);",
    tests: FAST,
  },
  {
    name: "fast path dport bound 65536",
    file: "lib/text/fast_line.ts",
    search: "const dport = c.uint(65535);",
    replace: "const dport = c.uint(65536);",
    tests: FAST,
  },
  {
    name: "fast path zone bound 65536",
    file: "lib/text/fast_line.ts",
    search: "(zone = c.uint(65535))",
    replace: "(zone = c.uint(65536))",
    tests: FAST,
  },
  {
    name: "fast path reply sport bound 65536",
    file: "lib/text/fast_line.ts",
    search: "const replySport = c.uint(65535);",
    replace: "const replySport = c.uint(65536);",
    tests: FAST,
  },
  // full parser: the same bounds (the fast path must agree with it)
  {
    name: "parser zone= bound 65536",
    file: "lib/text/parse.ts",
    search: "zone = replyZone = parseUint(t[i]!.slice(5), 65535);",
    replace: "zone = replyZone = parseUint(t[i]!.slice(5), 65536);",
    tests: ["tests/text/parse_test.ts"],
  },
  {
    name: "parser zone-orig= bound 65536",
    file: "lib/text/parse.ts",
    search: "zone = parseUint(t[i]!.slice(10), 65535);",
    replace: "zone = parseUint(t[i]!.slice(10), 65536);",
    tests: ["tests/text/parse_test.ts"],
  },
  {
    name: "parser sport bound 65536",
    file: "lib/text/parse.ts",
    search: "const sport = parseUint(sp.slice(6), 65535);",
    replace: "const sport = parseUint(sp.slice(6), 65536);",
    tests: ["tests/text/parse_test.ts"],
  },
  // conntrack CLI deleter: state, status and zone
  {
    name: "CLI deleter without --state SYN_SENT",
    file: "lib/deleters/conntrack_cli.ts",
    search: '    "--state",\n    "SYN_SENT",\n',
    replace: "",
    tests: CLI,
  },
  {
    name: "CLI deleter without -u UNREPLIED",
    file: "lib/deleters/conntrack_cli.ts",
    search: '    "-u",\n    "UNREPLIED",\n',
    replace: "",
    tests: CLI,
  },
  {
    name: "CLI deleter without the zone",
    file: "lib/deleters/conntrack_cli.ts",
    search: '    "-w",\n    String(t.zone),\n',
    replace: "",
    tests: CLI,
  },
  {
    name: "CLI deleter always zone 0",
    file: "lib/deleters/conntrack_cli.ts",
    search: '    "-w",\n    String(t.zone),\n',
    replace: '    "-w",\n    "0",\n',
    tests: CLI,
  },
  // netlink deleter: state/status check, id check, zone
  {
    name: "netlink deleter skips the SYN_SENT + unreplied check",
    file: "lib/deleters/netlink.ts",
    search: "} else if (!isSynSentUnreplied(e)) {",
    replace: "} else if (false) {",
    tests: NETLINK,
  },
  {
    name: "netlink status filter ignores SEEN_REPLY",
    file: "lib/netlink/syn_sent.ts",
    search: "(e.status & IPS_SEEN_REPLY) === 0 &&",
    replace: "true &&",
    tests: NETLINK,
  },
  {
    name: "netlink state filter ignores the TCP state",
    file: "lib/netlink/syn_sent.ts",
    search: "e.tcpState === TCP_CONNTRACK_SYN_SENT &&",
    replace: "true &&",
    tests: NETLINK,
  },
  {
    name: "netlink deleter ignores a changed id",
    file: "lib/deleters/netlink.ts",
    search: "} else if (tuples[i]!.id !== undefined && e.id !== tuples[i]!.id) {",
    replace: "} else if (false) {",
    tests: NETLINK,
  },
  {
    name: "netlink GET in zone 0",
    file: "lib/netlink/ctnetlink.ts",
    search: "  appendTuple(b, CTA_TUPLE_ORIG, t);\n  b.be16(CTA_ZONE, t.zone);\n  b.endMessage();",
    replace: "  appendTuple(b, CTA_TUPLE_ORIG, t);\n  b.be16(CTA_ZONE, 0);\n  b.endMessage();",
    tests: NETLINK,
  },
  {
    name: "netlink DELETE in zone 0",
    file: "lib/netlink/ctnetlink.ts",
    search: "  b.be16(CTA_ZONE, t.zone);\n  if (id !== undefined) b.be32(CTA_ID, id);",
    replace: "  b.be16(CTA_ZONE, 0);\n  if (id !== undefined) b.be32(CTA_ID, id);",
    tests: NETLINK,
  },
  {
    name: "tuple parser: port and zone bound 65536",
    file: "lib/model/tuple.ts",
    search: "v < 0 || v > 0xffff) {",
    replace: "v < 0 || v > 0x10000) {",
    tests: ["tests/model/tuple_test.ts", "tests/deleters/same_tuples_test.ts", ...NETLINK, ...CLI],
  },
  {
    name: "netlink DELETE without the id",
    file: "lib/netlink/ctnetlink.ts",
    search: "  if (id !== undefined) b.be32(CTA_ID, id);",
    replace: "",
    tests: NETLINK,
  },
  // the un-NATed rule: "was the destination translated", the destination match, age, evidence
  {
    name: "fast path: translated judged by the port alone",
    file: "lib/text/fast_line.ts",
    search: "if (replySport !== dport || !sameBytes(buf, dstAt, dstEnd, replyAt, replyEnd)) {",
    replace: "if (replySport !== dport) {",
    tests: [...FAST, "tests/text/scanner_test.ts"],
  },
  {
    name: "parser: translated judged by the port alone",
    file: "lib/text/parse.ts",
    search: "if (r.src !== o.dst || r.sport !== o.dport) c.translated",
    replace: "if (r.sport !== o.dport) c.translated",
    tests: [...FAST, "tests/text/scanner_test.ts", "tests/text/parse_test.ts"],
  },
  {
    name: "netlink: translated judged by the port alone",
    file: "lib/netlink/entry_candidate.ts",
    search: "for (let i = 0; same && i < r.length; i++) same = r[i] === e.dstAddr[i];",
    replace: "",
    tests: [
      "tests/sources/netlink_test.ts",
      "tests/sources/netlink_kernel_test.ts",
      "tests/sources/source_kernel_test.ts",
    ],
  },
  {
    name: "un-NATed rule takes translated candidates too",
    file: "lib/rules/unnated.ts",
    search: "if (c.translated !== undefined) continue;\n      const sameSince",
    replace: "const sameSince",
    tests: UNNATED,
  },
  {
    name: "un-NATed rule: one second younger than --unnated-after",
    file: "lib/rules/unnated.ts",
    search: "if (ageMs < this.afterMs) {",
    replace: "if (ageMs < this.afterMs - 1000) {",
    tests: UNNATED,
  },
  {
    name: "age-gated rules: kernel age not rounded down",
    file: "lib/rules/rule.ts",
    search: "synSentTimeoutS - c.timeout - 1) * 1000",
    replace: "synSentTimeoutS - c.timeout) * 1000",
    tests: [...UNNATED, "tests/rules/stale_endpoint_test.ts"],
  },
  {
    name: "age-gated rules: age counted from seenTo, not seenFrom",
    file: "lib/rules/rule.ts",
    search: "Math.max(0, c.seenFrom - sameSince)",
    replace: "Math.max(0, (c as Candidate).seenTo - sameSince)",
    tests: [...UNNATED, "tests/rules/stale_endpoint_test.ts"],
  },
  {
    name: "un-NATed decision without the kernel id",
    file: "lib/rules/unnated.ts",
    search: "          ...(c.id !== undefined ? { id: c.id } : {}),\n        });\n      const nat",
    replace: "        });\n      const nat",
    tests: UNNATED,
  },
  {
    name: "tracker: an entry replaced between polls keeps its age (sameSince not reset)",
    file: "lib/rules/tracker.ts",
    search: "        t.sameSince = c.seenTo;\n",
    replace: "",
    tests: UNNATED,
  },
  // table evidence: each clause of "this client's newer connection, in this read"
  {
    name: "evidence from another source address counts",
    file: "lib/model/tuple.ts",
    search: "return `${k.family} ${k.src} ${k.dst} ${k.dport} ${k.zone}`;",
    replace: "return `${k.family} ${k.dst} ${k.dport} ${k.zone}`;",
    tests: [...UNNATED, "tests/text/scanner_test.ts"],
  },
  {
    name: "evidence from another zone counts",
    file: "lib/model/tuple.ts",
    search: "return `${k.family} ${k.src} ${k.dst} ${k.dport} ${k.zone}`;",
    replace: "return `${k.family} ${k.src} ${k.dst} ${k.dport}`;",
    tests: [...UNNATED, "tests/text/scanner_test.ts"],
  },
  {
    name: "evidence with a directional zone counts",
    file: "lib/rules/providers/table_evidence.ts",
    search: "      if (e.replyZone !== c.zone) continue;\n",
    replace: "",
    tests: UNNATED,
  },
  {
    name: "parser: reply zone taken from zone-orig=",
    file: "lib/text/parse.ts",
    search: "replyZone: replyZone ?? 0,",
    replace: "replyZone: zone ?? 0,",
    tests: ["tests/text/parse_fixtures_test.ts", "tests/text/scanner_test.ts"],
  },
  {
    name: "netlink: reply zone taken from the original tuple",
    file: "lib/netlink/conntrack_entry.ts",
    search: "replyZone: d.zone ?? reply?.zone ?? 0,",
    replace: "replyZone: d.zone ?? orig!.zone ?? 0,",
    tests: ["tests/sources/netlink_test.ts"],
  },
  {
    name: "netlink evidence takes a DNATed UDP entry",
    file: "lib/sources/evidence_dump.ts",
    search: "if (e.proto !== IPPROTO_TCP || e.dport === undefined",
    replace: "if (e.dport === undefined",
    tests: ["tests/sources/netlink_test.ts"],
  },
  {
    name: "evidence older than the candidate counts",
    file: "lib/rules/providers/table_evidence.ts",
    search: "if (e.absentAt !== undefined && e.absentAt > sameSince) {",
    replace: "if (e.absentAt !== undefined) {",
    tests: UNNATED,
  },
  {
    name: "a translated entry that may be older than the candidate does not keep it",
    file: "lib/rules/providers/table_evidence.ts",
    search: "// transparent proxy's own user): never vouch.\n      return undefined;",
    replace: "// transparent proxy's own user): never vouch.\n      continue;",
    tests: UNNATED,
  },
  {
    name: "evidence present from a watch's first read counts as newer",
    file: "lib/rules/providers/table_evidence.ts",
    search: "absentAt: seen !== undefined ? seen.absentAt : old?.readAt,",
    replace: "absentAt: seen !== undefined ? seen.absentAt : old?.readAt ?? s.startedAt - 1,",
    tests: UNNATED,
  },
  {
    name: "evidence not seen this poll: a read that does not list the key vouches",
    file: "lib/rules/providers/table_evidence.ts",
    search: "if (w === undefined || w.readAt !== now) return undefined;",
    replace: "if (w === undefined) return undefined;",
    tests: UNNATED,
  },
  {
    name: "evidence not seen this poll: an entry gone from the read still counts",
    file: "lib/rules/providers/table_evidence.ts",
    search: "const entries = new Map<number, Sighting>();",
    replace: "const entries = new Map<number, Sighting>(old?.entries ?? []);",
    tests: UNNATED,
  },
  {
    name: "evidence bounds ignored",
    file: "lib/model/evidence_builder.ts",
    search: "if (list.length >= this.#perKey || this.#room <= 0) {",
    replace: "if (list.length > Number.MAX_SAFE_INTEGER) {",
    tests: [...UNNATED, "tests/text/scanner_test.ts", "tests/model/evidence_builder_test.ts"],
  },
  {
    name: "evidence bound on all keys ignored",
    file: "lib/model/evidence_builder.ts",
    search: "if (list.length >= this.#perKey || this.#room <= 0) {",
    replace: "if (list.length >= this.#perKey) {",
    tests: ["tests/model/evidence_builder_test.ts"],
  },
  {
    name: "--destinations provider vouches for every destination",
    file: "lib/rules/providers/destinations.ts",
    search: "return item === undefined\n      ? undefined\n      :",
    replace: 'return item === undefined\n      ? { reason: "any" }\n      :',
    tests: UNNATED,
  },
  {
    name: "netlink deleter takes a GET answer for another tuple",
    file: "lib/deleters/netlink.ts",
    search: "if (e.proto !== IPPROTO_TCP || tupleKey(got) !== tupleKey(batch.get(i)!)) {",
    replace: "if (e.proto !== IPPROTO_TCP) {",
    tests: ["tests/deleters/netlink_test.ts"],
  },
  {
    name: "--destinations not applied before the rules",
    file: "lib/agent/agent.ts",
    search:
      "const candidates = s.candidates.filter((c) => d.match(c.family, c.dst, c.dport) !== undefined);",
    replace: "const candidates = s.candidates;",
    tests: ["tests/agent/agent_test.ts", ...UNNATED],
  },
  {
    name: "--destinations port range ignores its upper end",
    file: "lib/model/destination_set.ts",
    search: "const to = this.#segment(items[i]!.portHigh + 1);",
    replace: "const to = this.#first.length;",
    tests: ["tests/model/destination_set_test.ts", ...UNNATED],
  },
  {
    name: "--destinations prefix ignored",
    file: "lib/model/destination_set.ts",
    search: "const whole = item.prefix >> 4, bits = item.prefix & 15;",
    replace: "const whole = 0, bits = 0;",
    tests: ["tests/model/destination_set_test.ts", ...UNNATED],
  },
  // events source: the kernel filter, overflow, re-reading candidates
  {
    name: "event filter lets UDP through",
    file: "lib/netlink/bpf.ts",
    search: 'jeq(IPPROTO_TCP, "info", "drop")',
    replace: 'jeq(IPPROTO_TCP, "info", "info")',
    tests: ["tests/netlink/bpf_test.ts"],
  },
  {
    name: "event filter passes updates of translated entries as new",
    file: "lib/netlink/bpf.ts",
    search: 'jset(NLM_F_CREATE >> 8, "status", "drop")',
    replace: 'jset(NLM_F_CREATE >> 8, "status", "status")',
    tests: ["tests/netlink/bpf_test.ts"],
  },
  {
    name: "events: an update of a translated entry counts as a new one (evidence)",
    file: "lib/netlink/events.ts",
    search: "const created = (m.flags & NLM_F_CREATE) !== 0;",
    replace: "const created = m.flags >= 0;",
    tests: ["tests/netlink/events_test.ts", "tests/sources/netlink_events_test.ts"],
  },
  {
    name: "events: a GET answer for another tuple is taken for the one asked",
    file: "lib/netlink/get_batch.ts",
    search: "out[i] = got === tupleKey(tuples[i]!)",
    replace: "out[i] = got === got",
    tests: ["tests/netlink/get_batch_test.ts"],
  },
  {
    name: "events: ENOBUFS does not make the poll dump",
    file: "lib/sources/event_stream.ts",
    search: 'r.overflows++;\n          lose("overflow");',
    replace: "r.overflows++;",
    tests: ["tests/sources/netlink_events_test.ts"],
  },
  {
    name: "events: a re-read entry that got its reply stays a candidate",
    file: "lib/sources/netlink_events.ts",
    search: 'a.kind === "entry" && isSynSentUnreplied(a.entry)',
    replace: 'a.kind === "entry"',
    tests: ["tests/sources/netlink_events_test.ts"],
  },
  // events source guards (issue 21): evidence per watched key, incomplete drains, lost events,
  // a quiet stream, events switched off
  {
    name: "events evidence: a watched key's entries are kept by recency like any other key's",
    file: "lib/sources/heard_translations.ts",
    search: "    if (w !== undefined) {\n      if (w.incomplete) return;",
    replace: "    if (w !== undefined && this.#other.size < 0) {\n      if (w.incomplete) return;",
    tests: [EVENT_GUARDS],
  },
  {
    name:
      "events evidence: a watched key over its bound drops entries silently instead of being unknown",
    file: "lib/sources/heard_translations.ts",
    search: "        this.#incomplete(w, true);\n        return;",
    replace: "        return;",
    tests: [EVENT_GUARDS],
  },
  {
    name: "events evidence: a key not watched drops entries silently past its bound",
    file: "lib/sources/heard_translations.ts",
    search: "if (rec.entries.length >= this.#perKey) this.#incomplete(rec, false);\n      else ",
    replace: "if (rec.entries.length < this.#perKey) ",
    tests: [EVENT_GUARDS],
  },
  {
    name: "events evidence: keys watched without a bound",
    file: "lib/sources/heard_translations.ts",
    search: "    if (this.#watched.size >= this.#maxWatched) return undefined;\n",
    replace: "",
    tests: ["tests/sources/heard_translations_test.ts"],
  },
  {
    name: "events evidence: a key once watched is watched forever",
    file: "lib/sources/heard_translations.ts",
    search: "if (read - w.askedAt >= this.#watchReads) this.#unwatch(key, w);",
    replace: "if (read < 0) this.#unwatch(key, w);",
    tests: ["tests/sources/heard_translations_test.ts"],
  },
  {
    name: "events evidence: reply zone taken from the original zone",
    file: "lib/sources/heard_evidence.ts",
    search: "replyZone: e.replyZone,",
    replace: "replyZone: e.zone,",
    tests: [EVENT_GUARDS],
  },
  {
    name: "events evidence: read although the drain stopped at maxEventsPerPoll",
    file: "lib/sources/netlink_events.ts",
    search: "if (!(await this.#drain(signal)) || this.#health.eventsOff) return undefined;",
    replace: "await this.#drain(signal);\n    if (this.#health.eventsOff) return undefined;",
    tests: [EVENT_GUARDS],
  },
  {
    name: "events evidence: given while conntrack events are off",
    file: "lib/sources/netlink_events.ts",
    search: " || this.#health.eventsOff) return undefined;",
    replace: ") return undefined;",
    tests: [EVENT_GUARDS],
  },
  {
    name: "events: a truncated event not forcing a resync",
    file: "lib/sources/event_stream.ts",
    search: "        bad(`event datagram cut short (${n} bytes)`);\n",
    replace: "",
    tests: [EVENT_GUARDS],
  },
  {
    name: "events: an event that does not decode not forcing a resync",
    file: "lib/sources/event_stream.ts",
    search: "          bad(e.message);\n          continue;",
    replace: "          continue;",
    tests: [EVENT_GUARDS],
  },
  {
    name: "events: a quiet stream while the table changes is never checked",
    file: "lib/sources/events_health.ts",
    search: 'return quietFor >= this.#quiet && count !== this.#countAt ? "stalled" : undefined;',
    replace: "return undefined;",
    tests: [EVENT_GUARDS],
  },
  {
    name: "events: candidates a dump found unannounced are not counted as missed",
    file: "lib/sources/netlink_events.ts",
    search: "let missed = unknown.filter((k) => !heard.has(k));",
    replace: "let missed = unknown.filter(() => false);",
    tests: [EVENT_GUARDS],
  },
  {
    name: "events: nf_conntrack_events not re-read after the start",
    file: "lib/sources/events_health.ts",
    search: 'const off = (await this.#read("nf_conntrack_events")) === "0";',
    replace: "const off = false;",
    tests: [EVENT_GUARDS],
  },
  // the build context (issue 22): docker build failed at COPY tests/deno.json and no test saw it
  {
    name: "docker: .dockerignore drops the workspace member tests/deno.json again",
    file: ".dockerignore",
    search: "!tests/deno.json\n",
    replace: "",
    tests: ["tests/deploy/dockerignore_test.ts"],
  },
  ...KUBERNETES_MUTANTS(),
  ...NAT_MUTANTS(),
  ...KUBE_SEMANTICS_MUTANTS(),
];

/**
 * Kubernetes (issue 16): Services as trusted destinations and the
 * stale-endpoint rule. Each would delete a working client's entry.
 */
function KUBERNETES_MUTANTS(): Mutant[] {
  const VIEW = ["tests/kube/view_test.ts", "tests/rules/providers/kubernetes_test.ts"];
  const SERVICES = ["tests/kube/services_test.ts"];
  const STALE = ["tests/rules/stale_endpoint_test.ts"];
  return [
    {
      name: "kubernetes: ipMode Proxy ingress taken as NATed",
      file: "lib/kube/objects.ts",
      search: 'if (isObj(ing) && str(ing.ipMode) !== "Proxy") add(ing.ip, "ingress");',
      replace: 'if (isObj(ing)) add(ing.ip, "ingress");',
      tests: ["tests/kube/objects_test.ts", ...VIEW],
    },
    {
      name: "kubernetes: a Service port vouched without ready endpoints",
      file: "lib/kube/view.ts",
      search: "if (mine !== undefined && hasReady(mine, t.port.name, family)) return t;",
      replace: "return t;",
      tests: VIEW,
    },
    {
      name: "kubernetes: headless Service vouched (clusterIP None not skipped)",
      file: "lib/kube/objects.ts",
      search: 'if (type !== "ExternalName" && str(spec.clusterIP) !== "None") {',
      replace: 'if (type !== "ExternalName") {',
      tests: ["tests/kube/objects_test.ts"],
    },
    {
      name: "kubernetes: unset serving read as not serving",
      file: "lib/kube/objects.ts",
      search: "const isServing = cond.serving !== false;",
      replace: "const isServing = cond.serving === true;",
      tests: ["tests/kube/objects_test.ts"],
    },
    {
      name:
        "stale_endpoint: an endpoint still serving (behind another Service there) taken as removed",
      file: "lib/kube/services.ts",
      search: "if (view.servingAt(addr, port)?.has(endpoint)) return undefined;",
      replace: "",
      tests: SERVICES,
    },
    {
      name: "stale_endpoint: acts on a view that is not live",
      file: "lib/kube/services.ts",
      search: 'if (this.freshness() !== "live") return undefined;',
      replace: "",
      tests: SERVICES,
    },
    {
      name: "stale_endpoint: removals counted from a view with objects left out",
      file: "lib/kube/services.ts",
      search:
        "const trusted = this.slices.state.overflow === 0 && this.services.state.overflow === 0;",
      replace: "const trusted = true;",
      tests: SERVICES,
    },
    {
      name: "stale_endpoint: no minimum age",
      file: "lib/rules/stale_endpoint.ts",
      search: "if (ageMs < this.#o.afterMs) {",
      replace: "if (ageMs < 0) {",
      tests: STALE,
    },
    {
      name: "stale_endpoint: decisions without the kernel id",
      file: "lib/rules/stale_endpoint.ts",
      search: "...(c.id !== undefined ? { id: c.id } : {}),",
      replace: "",
      tests: STALE,
    },
    {
      name: "kubernetes: an expired view still vouches",
      file: "lib/kube/services.ts",
      search: 'if (f === "unsynced" || f === "expired") return ServiceView.empty();',
      replace: 'if (f === "unsynced") return ServiceView.empty();',
      tests: SERVICES,
    },
  ];
}

/**
 * The NAT evaluator (issue 19): each would answer "translated" where the
 * kernel may do otherwise, and so delete an entry whose next SYN is not
 * translated.
 */
function NAT_MUTANTS(): Mutant[] {
  const EVAL = ["tests/nat/evaluate_test.ts"];
  const SHAPES = ["tests/nat/shapes_test.ts"];
  const XT = ["tests/nat/xt_test.ts"];
  return [
    {
      name: "nat: a negated comparison read as the plain one",
      file: "lib/nat/bits.ts",
      search: 'if (op === "neq") return eq === "both" ? "both" : !eq;',
      replace: 'if (op === "neq") return eq;',
      tests: EVAL,
    },
    {
      name: "nat: a negated range read as the plain one",
      file: "lib/nat/step.ts",
      search: 'return test(p, e.cmp === "eq" || t === "both" ? t : !t);',
      replace: "return test(p, t);",
      tests: EVAL,
    },
    {
      name: "nat: a test it cannot decide taken as true only (both ways collapsed)",
      file: "lib/nat/step.ts",
      search: 'return { split: [[p, "next"], [clonePath(p), "break"]] };',
      replace: 'return "next";',
      tests: EVAL,
    },
    {
      name: "nat: a test it cannot decide taken as false only (both ways collapsed)",
      file: "lib/nat/step.ts",
      search: 'return { split: [[p, "next"], [clonePath(p), "break"]] };',
      replace: 'return "break";',
      tests: EVAL,
    },
    {
      name: "nat: the miss branch of a look-up not explored",
      file: "lib/nat/step.ts",
      search: 'if (o.miss) split.push([p, "break"]);',
      replace: "",
      tests: SHAPES,
    },
    {
      name: "nat: numgen/hash explored for its first value only",
      file: "lib/nat/step.ts",
      search: "for (let v = 0; v < e.mod; v++) {",
      replace: "for (let v = 0; v < Math.min(1, e.mod); v++) {",
      tests: SHAPES,
    },
    {
      name: "nat: equal-priority chains taken in the listed order only",
      file: "lib/nat/evaluate.ts",
      search: "for (let i = 0; i < group.length && this.bad === undefined; i++) {",
      replace: "for (let i = 0; i < Math.min(1, group.length) && this.bad === undefined; i++) {",
      tests: EVAL,
    },
    {
      name: "nat: an identity target (T holds the original destination) accepted",
      file: "lib/nat/evaluate.ts",
      search: "rangeContains(t, q.dst, q.dport)",
      replace: "false",
      tests: EVAL,
    },
    {
      name: "nat: a drop in a chain before nat ignored",
      file: "lib/nat/evaluate.ts",
      search: "c.base.priority <= NAT_DST_PRIORITY",
      replace: "c.base.priority <= -1000",
      tests: EVAL,
    },
    {
      name: "nat: ct state taken as known before conntrack ran",
      file: "lib/nat/evaluate.ts",
      search: "c.base!.priority > CONNTRACK_PRIORITY",
      replace: "true",
      tests: EVAL,
    },
    {
      name: "nat: the mark taken as 0 at the start (not unknown)",
      file: "lib/nat/evaluate.ts",
      search:
        "const unknownMarks = (): Marks => ({ mark: Bits.unknown(4), ctmark: Bits.unknown(4) });",
      replace:
        "const unknownMarks = (): Marks => ({ mark: Bits.known(new Uint8Array(4)), ctmark: Bits.unknown(4) });",
      tests: EVAL,
    },
    {
      name: "nat: a DNAT for the other family (inet table) applied",
      file: "lib/nat/step.ts",
      search: 'if (e.nfproto !== 1 && e.nfproto !== nfproto(syn.family)) return "next";',
      replace: "",
      tests: EVAL,
    },
    {
      name: "nat: DNAT without a port keeps the source port",
      file: "lib/nat/nat_target.ts",
      search: "let [pmin, pmax] = [syn.dport, syn.dport];",
      replace: "let [pmin, pmax] = [syn.sport, syn.sport];",
      tests: EVAL,
    },
    {
      name: "nat: REDIRECT at prerouting taken to loopback",
      file: "lib/nat/nat_target.ts",
      search: 'if (hook === "output") {',
      replace: "if (true) {",
      tests: EVAL,
    },
    {
      name: "nat: goto pushes a return point like jump",
      file: "lib/nat/walk.ts",
      search: 'if (v.kind === "jump") {',
      replace: "if (true) {",
      tests: EVAL,
    },
    {
      name: "nat: jump pushes no return point",
      file: "lib/nat/walk.ts",
      search: "p.stack.push({ chain: p.at.chain, ri: p.at.ri + 1 });",
      replace: "",
      tests: EVAL,
    },
    {
      name: "nat: no jump depth limit",
      file: "lib/nat/walk.ts",
      search: "if (p.stack.length >= JUMP_STACK) {",
      replace: "if (false) {",
      tests: EVAL,
    },
    {
      name: "nat: a base chain's drop policy ignored",
      file: "lib/nat/walk.ts",
      search: 'base.base?.policy === "accept"',
      replace: "true",
      tests: EVAL,
    },
    {
      name: "nat: a set updated from the packet path read as fixed",
      file: "lib/nat/sets.ts",
      search: "return { hits: maybe, miss: true, unseen: set.flags.dynamic };",
      replace: "return { hits: maybe, miss: true, unseen: false };",
      tests: EVAL,
    },
    {
      name: "nat: an unknown expression taken as a no-op",
      file: "lib/nat/step.ts",
      search: 'return { kind: "bad", reason: `expression ${e.name} in ${where(p)}` };',
      replace: 'return "next";',
      tests: EVAL,
    },
    {
      name: "nat: the rule index skips a rule for the SYN's own destination",
      file: "lib/nat/rule_index.ts",
      search: "list = merge(ix.unguarded, ix.byGuard.get(key) ?? []);",
      replace: "list = merge(ix.unguarded, []);",
      tests: ["tests/nat/rule_index_test.ts"],
    },
    {
      name: "nat: registers kept across rules the index skipped",
      file: "lib/nat/walk.ts",
      search: "p.regs.clobberAll();",
      replace: "",
      tests: ["tests/nat/rule_index_test.ts"],
    },
    {
      name: "nat: an unknown xtables match taken as true",
      file: "lib/nat/xt.ts",
      search: '    default:\n      return "both";\n  }\n}',
      replace: "    default:\n      return true;\n  }\n}",
      tests: [...EVAL, ...XT],
    },
    ...NAT_DECISION_MUTANTS(),
  ];
}

/** Issue 19: where the NAT rules' verdict reaches a deletion. */
function NAT_DECISION_MUTANTS(): Mutant[] {
  const HOOKS = ["tests/nat/hooks_test.ts", "tests/nat/verdicts_test.ts"];
  const STALE = ["tests/rules/stale_translation_test.ts"];
  return [
    {
      name: "nat: an entry outside zone 0 taken for this SYN's without a rule putting it there",
      file: "lib/nat/evaluate.ts",
      search: "let zoned = q.zone === 0;",
      replace: "let zoned = true;",
      tests: ["tests/nat/evaluate_test.ts"],
    },
    {
      name: "nat: a zone set to another zone than the candidate's taken as its own",
      file: "lib/nat/packet.ts",
      search: "return z === want ? undefined : `zone ${z} set`;",
      replace: "return undefined;",
      tests: ["tests/nat/evaluate_test.ts"],
    },
    {
      name: "nat: the rules' not_proven left to the providers",
      file: "lib/rules/unnated.ts",
      search: 'if (nat?.kind === "not_proven") {',
      replace: "if (false) {",
      tests: UNNATED,
    },
    {
      name: "nat: unreadable taken as translated",
      file: "lib/rules/unnated.ts",
      search: 'if (nat?.kind === "translated") {',
      replace: 'if (nat !== undefined && nat.kind !== "not_proven") {',
      tests: UNNATED,
    },
    {
      name: "nat: stale_translation acts on what the rules do not prove",
      file: "lib/rules/stale_translation.ts",
      search: 'if (nat?.kind !== "translated") {',
      replace: "if (nat === undefined) {",
      tests: STALE,
    },
    {
      name: "nat: stale_translation ignores a translation the rules may still pick",
      file: "lib/rules/stale_translation.ts",
      search: "if (addr === undefined || targetsContain(nat.targets, addr, x.port)) {",
      replace: "if (addr === undefined) {",
      tests: STALE,
    },
    {
      name: "nat: stale_translation without the age gate",
      file: "lib/rules/stale_translation.ts",
      search: "      if (ageMs < this.#o.afterMs) {",
      replace: "      if (false) {",
      tests: STALE,
    },
    {
      name: "nat: two hooks, only the first asked to agree",
      file: "lib/nat/verdicts.ts",
      search: "for (let k = 0; k < hooks.length; k++) {",
      replace: "for (let k = 0; k < 1; k++) {",
      tests: HOOKS,
    },
    {
      name: "nat: a local socket does not decide the hook",
      file: "lib/nat/hooks.ts",
      search: '  if (o.localSocket) return ["output"];\n',
      replace: "",
      tests: HOOKS,
    },
    {
      name: "nat: a listener counted as the connection's socket",
      file: "lib/nat/sock_diag.ts",
      search: "if (p[0] !== family || p[1] === TCP_LISTEN) continue;",
      replace: "if (p[0] !== family) continue;",
      tests: HOOKS,
    },
    {
      name: "nat: the agent never passes the verdicts to the rules",
      file: "lib/agent/agent.ts",
      search: "if (nat.asked > 0) input.nat = nat.verdict;",
      replace: "",
      tests: ["tests/agent/agent_test.ts"],
    },
    {
      name: "nat: a failing judge read as translated",
      file: "lib/agent/decide.ts",
      search: 'verdicts = asked.map(() => ({ kind: "unreadable", reason }));',
      replace:
        'verdicts = asked.map(() => ({ kind: "translated", targets: [], hooks: ["output"] }));',
      tests: ["tests/agent/decide_test.ts"],
    },
  ];
}

/**
 * Issue 21: kube-proxy's semantics, the stale-endpoint guards, the limits and
 * the client's security, and the clauses earlier tests did not bite.
 */
function KUBE_SEMANTICS_MUTANTS(): Mutant[] {
  const VIEW = ["tests/kube/view_test.ts"];
  const SERVICES = ["tests/kube/services_test.ts"];
  const STALE = ["tests/rules/stale_endpoint_test.ts"];
  const PROVIDER = ["tests/rules/providers/kubernetes_test.ts"];
  const REFLECTOR = ["tests/kube/reflector_test.ts"];
  const TRANSPORT = ["tests/kube/transport_test.ts"];
  return [
    {
      name: "table evidence: a key whose evidence overflowed is recorded from the partial list",
      file: "lib/rules/providers/table_evidence.ts",
      search: "if (ev!.overflow.has(key) || !this.#want.has(key)) continue;",
      replace: "if (!this.#want.has(key)) continue;",
      tests: UNNATED,
    },
    {
      name: "stale_endpoint: age from the kernel only (sameSince not passed through decide)",
      file: "lib/rules/stale_endpoint.ts",
      search: "const ageMs = this.ageMs(c, input.sameSince(c));",
      replace: "const ageMs = this.ageMs(c, undefined);",
      tests: STALE,
    },
    {
      name: "kubernetes: a NodePort counted on any address",
      file: "lib/kube/view.ts",
      search: "if (this.#nodes.has(addr)) {",
      replace: "if (true) {",
      tests: VIEW,
    },
    {
      name: "kubernetes: live with either watch open instead of both",
      file: "lib/kube/services.ts",
      search: 'if (a.watching && b.watching && moving(a) && moving(b)) return "live";',
      replace: 'if ((a.watching || b.watching) && moving(a) && moving(b)) return "live";',
      tests: SERVICES,
    },
    {
      name: "kubernetes: staleness from the newer of the two watches' progress",
      file: "lib/kube/services.ts",
      search: "const last = Math.min(a.progressAt ?? -Infinity, b.progressAt ?? -Infinity);",
      replace: "const last = Math.max(a.progressAt ?? -Infinity, b.progressAt ?? -Infinity);",
      tests: SERVICES,
    },
    {
      name: "kubernetes: live from an open stream without progress",
      file: "lib/kube/services.ts",
      search: 'if (a.watching && b.watching && moving(a) && moving(b)) return "live";',
      replace: 'if (a.watching && b.watching) return "live";',
      tests: SERVICES,
    },
    {
      name: "stale_endpoint: removed-endpoint memory 18 s instead of 180 s",
      file: "lib/kube/services.ts",
      search: "const ttl = this.#o.removedTtlMs ?? 180_000;",
      replace: "const ttl = this.#o.removedTtlMs ?? 18_000;",
      tests: SERVICES,
    },
    {
      name: "stale_endpoint: removal records kept past an overflow",
      file: "lib/kube/services.ts",
      search: "    if (!trusted) this.#removed.clear();\n",
      replace: "",
      tests: SERVICES,
    },
    {
      name: "stale_endpoint: a removal acted on before it settled",
      file: "lib/kube/services.ts",
      search: "return this.#clock() - at >= (this.#o.settleMs ?? 5_000) &&",
      replace: "return true &&",
      tests: SERVICES,
    },
    {
      name: "stale_endpoint: a removal confirmed by the slices watch alone",
      file: "lib/kube/services.ts",
      search: "confirmed(this.services.state) && confirmed(this.slices.state);",
      replace: "confirmed(this.slices.state);",
      tests: SERVICES,
    },
    {
      name: "kubernetes: a stale view vouches for externalIPs, LB IPs and NodePorts",
      file: "lib/kube/services.ts",
      search: 'if (f === "stale") return this.#clusterOnly ??= this.#view.withClusterIPsOnly();',
      replace: "",
      tests: SERVICES,
    },
    {
      name: "kubernetes: the provider caches a view forever",
      file: "lib/rules/providers/kubernetes.ts",
      search: "this.#view = this.#views.view();",
      replace: "this.#view ??= this.#views.view();",
      tests: PROVIDER,
    },
    {
      name: "rules given the unscoped snapshot (--destinations with Kubernetes)",
      file: "lib/agent/agent.ts",
      search: "const stale = await this.#decide(rules, scoped, track);",
      replace: "const stale = await this.#decide(rules, snapshot, track);",
      tests: ["tests/agent/agent_test.ts"],
    },
    {
      name: "a rule's decision on a heard candidate acted on",
      file: "lib/agent/agent.ts",
      search: "const heard = new Set(s.candidates.filter((c) => c.heard).map(tupleKey));",
      replace: "const heard = new Set<string>();",
      tests: ["tests/agent/agent_heard_test.ts"],
    },
    {
      name: "events source: an ending event ignored",
      file: "lib/sources/netlink_events.ts",
      search: "if (ev.ended) this.#tracked.ended(tupleKey(p.tuple), ev.entry.id);",
      replace: "",
      tests: ["tests/sources/netlink_events_heard_test.ts"],
    },
    {
      name: "tracked set: an ending event drops whatever id it names",
      file: "lib/sources/tracked_candidates.ts",
      search: "if (id !== undefined && this.#ids.get(key) === id) this.delete(key);",
      replace: "this.delete(key);",
      tests: ["tests/sources/netlink_events_heard_test.ts"],
    },
    {
      name: "event filter: ended passes creations to SYN_RECV too",
      file: "lib/netlink/bpf.ts",
      search: 'jset(NLM_F_CREATE >> 8, notSynSent, "accept")',
      replace: 'jset(NLM_F_CREATE >> 8, "accept", "accept")',
      tests: ["tests/netlink/bpf_test.ts"],
    },

    {
      name: "kubernetes: a Service labelled for another proxy still vouched",
      file: "lib/kube/objects.ts",
      search:
        "  if (notProxiedLabel(o) !== undefined) {\n    return { ok: true, value: { key, addresses",
      replace: "  if (false) {\n    return { ok: true, value: { key, addresses",
      tests: ["tests/kube/objects_test.ts", ...VIEW],
    },
    {
      name: "kubernetes: a slice labelled for another proxy still counted",
      file: "lib/kube/objects.ts",
      search: "  if (notProxiedLabel(o) !== undefined) {\n    return {\n      ok: true,",
      replace: "  if (false) {\n    return {\n      ok: true,",
      tests: ["tests/kube/objects_test.ts", ...VIEW],
    },
    {
      name: "stale_endpoint: endpoints hidden by a labelled slice taken as removed",
      file: "lib/kube/services.ts",
      search: "if (view.hasNotProxied(service)) return;",
      replace: "",
      tests: SERVICES,
    },
    {
      name: "kubernetes: a view with objects left out over a bound still vouches",
      file: "lib/kube/services.ts",
      search: "if (this.#overBound()) return this.#nothing ??= this.#view.withNothingVouched();",
      replace: "",
      tests: SERVICES,
    },
    {
      name: "kubernetes: a list item split at a bracket inside a string",
      file: "lib/kube/list_items.ts",
      search: "else if (b === QUOTE) {\n          inString = false;",
      replace: "else if (b === QUOTE || b === CLOSE_OBJ) {\n          inString = false;",
      tests: ["tests/kube/list_items_test.ts"],
    },
    {
      name: "kubernetes: readiness not per family",
      file: "lib/kube/view.ts",
      search: "if (s.family === family && s.ready > 0",
      replace: "if (s.ready > 0",
      tests: VIEW,
    },
    {
      name: "kubernetes: the provider answers for every zone",
      file: "lib/rules/providers/kubernetes.ts",
      search: "if (c.zone !== this.#zone) return undefined;",
      replace: "",
      tests: PROVIDER,
    },
    {
      name: "stale_endpoint: acts in every zone",
      file: "lib/rules/stale_endpoint.ts",
      search: "if (t === undefined || c.zone !== (this.#o.zone ?? 0)) continue;",
      replace: "if (t === undefined) continue;",
      tests: STALE,
    },
    {
      name: "kubernetes client: redirects followed",
      file: "lib/kube/api.ts",
      search: '      redirect: "error",\n',
      replace: "",
      tests: TRANSPORT,
    },
    {
      name: "kubernetes client: the configured CA added to the default roots",
      file: "lib/kube/transport.ts",
      search: "  if (onlyConfiguredCa) {",
      replace: "  if (false) {",
      tests: TRANSPORT,
    },
    {
      name: "kubernetes client: a list page read whole past its limit",
      file: "lib/kube/transport.ts",
      search: "      if (n > max) {",
      replace: "      if (false) {",
      tests: [...TRANSPORT, ...REFLECTOR],
    },
    {
      name: "reflector: repeated 410s relisted at once, in a loop",
      file: "lib/kube/reflector.ts",
      search: "const waitMs = gones === 1 ? 0 : wait(gones - 1);",
      replace: "const waitMs = 0;",
      tests: REFLECTOR,
    },
    {
      name: "reflector: a watch that ends without an event retried at once",
      file: "lib/kube/reflector.ts",
      search:
        'if (!moved) throw new ApiError(0, "NoProgress", "the watch ended without an event");',
      replace: "",
      tests: REFLECTOR,
    },
    {
      name: "reflector: the endpoint bound ignored",
      file: "lib/kube/reflector.ts",
      search: "        base + w <= this.#maxWeight;",
      replace: "        true;",
      tests: REFLECTOR,
    },
    {
      name: "reflector: an object updated past the bound keeps its old version",
      file: "lib/kube/reflector.ts",
      search: "        if (old !== undefined) this.items.delete(key);\n",
      replace: "",
      tests: REFLECTOR,
    },
    {
      name: "kubeconfig: credentials in the server URL accepted",
      file: "lib/kube/access.ts",
      search: "  if (/^https?:\\/\\/[^/]*@/.test(server)) {",
      replace: "  if (false) {",
      tests: ["tests/kube/access_test.ts"],
    },
  ];
}

/** Applies `m` to `text`; throws unless `m.search` occurs exactly once. */
export function applyMutant(text: string, m: Mutant): string {
  const at = text.indexOf(m.search);
  if (at < 0) throw new Error(`mutant "${m.name}": search text not found in ${m.file}`);
  if (text.indexOf(m.search, at + 1) >= 0) {
    throw new Error(`mutant "${m.name}": search text found more than once in ${m.file}`);
  }
  return text.slice(0, at) + m.replace + text.slice(at + m.search.length);
}

/** Copies what the tests need (everything but .git and dist) into `to`. */
async function copyRepo(from: string, to: string): Promise<void> {
  for await (const e of Deno.readDir(from)) {
    if (e.name === ".git" || e.name === "dist" || e.name === "node_modules") continue;
    const r = await new Deno.Command("cp", {
      args: ["-a", `${from}/${e.name}`, `${to}/`],
      stderr: "piped",
    }).output();
    if (!r.success) throw new Error(`cp ${e.name}: ${new TextDecoder().decode(r.stderr)}`);
  }
}

async function runTests(dir: string, tests: string[]): Promise<{ ok: boolean; output: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--no-check", ...tests],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { ok: r.success, output: d.decode(r.stdout) + d.decode(r.stderr) };
}

async function main(args: string[]): Promise<number> {
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const checkOnly = args[0] === "--check";
  if (checkOnly) args = args.slice(1);
  const chosen = args.length === 0
    ? MUTANTS
    : MUTANTS.filter((m) => args.some((a) => m.name.includes(a)));
  if (chosen.length === 0) {
    console.error(`no mutant matches ${args.join(", ")}`);
    return 2;
  }
  // A moved or renamed test file must not turn a mutant into a silent "killed".
  const missing = [...new Set(chosen.flatMap((m) => [m.file, ...m.tests]))].filter((f) => {
    try {
      return !Deno.statSync(`${root}/${f}`).isFile;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    console.error(`mutants: no such file: ${missing.join(", ")}`);
    return 2;
  }
  if (checkOnly) {
    for (const m of chosen) applyMutant(await Deno.readTextFile(`${root}/${m.file}`), m);
    console.log(
      `mutants: ${chosen.length} mutants, each search text found once, every file present`,
    );
    return 0;
  }
  const scratch = await Deno.makeTempDir({ prefix: "cct-mutants-" });
  const started = performance.now();
  let killed = 0;
  const survived: string[] = [];
  try {
    await copyRepo(root, scratch);
    // the unmutated tests must pass, or every "killed" below would mean nothing
    const all = [...new Set(chosen.flatMap((m) => m.tests))];
    const base = await runTests(scratch, all);
    if (!base.ok) {
      console.error(base.output);
      console.error("mutants: the tests fail without any mutation; fix that first");
      return 1;
    }
    for (const m of chosen) {
      const path = `${scratch}/${m.file}`;
      const original = await Deno.readTextFile(path);
      await Deno.writeTextFile(path, applyMutant(original, m));
      const t0 = performance.now();
      try {
        const r = await runTests(scratch, m.tests);
        const secs = ((performance.now() - t0) / 1000).toFixed(1);
        if (r.ok) {
          survived.push(m.name);
          console.log(`SURVIVED  ${m.name}  (${m.file}; ${m.tests.join(" ")}; ${secs} s)`);
        } else {
          killed++;
          console.log(`killed    ${m.name}  (${secs} s)`);
        }
      } finally {
        await Deno.writeTextFile(path, original);
      }
    }
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
  const secs = ((performance.now() - started) / 1000).toFixed(0);
  console.log(
    `mutants: ${killed} killed, ${survived.length} survived of ${chosen.length} (${secs} s)` +
      (survived.length > 0 ? `: ${survived.join("; ")}` : ""),
  );
  return survived.length === 0 ? 0 : 1;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`mutants: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
