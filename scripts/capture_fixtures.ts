/**
 * Captures real conntrack tables into `tests/fixtures/` (`deno task fixtures`).
 *
 * In a throwaway network namespace it inserts the entries listed in
 * {@linkcode ENTRIES} with `conntrack -I` and saves what the kernel shows:
 *
 * - `procfs_plain.txt`: `/proc/net/nf_conntrack`, acct and timestamp off
 *   (the kernel's defaults);
 * - `procfs_acct_timestamp.txt`: the same entries inserted into a second
 *   namespace with `nf_conntrack_acct=1` and `nf_conntrack_timestamp=1`
 *   (`packets= bytes=` per direction, `delta-time=`);
 * - `conntrack_extended.txt` and `conntrack_extended_acct_timestamp.txt`:
 *   `conntrack -L -o extended -f ipv4`, then `-f ipv6`, of each namespace;
 * - `procfs_expected.json`: the entries as this script inserted them (from
 *   the list below, never from parsing the captures), with the candidates
 *   (TCP `SYN_SENT` without `SEEN_REPLY`, shown `[UNREPLIED]`) in canonical
 *   address spelling, so tests can compare a parser's output with them.
 *
 * With real traffic ({@linkcode TRAFFIC}), in a third namespace with
 * `nf_conntrack_acct=1` and `nf_conntrack_timestamp=1`, iptables DNAT, SNAT,
 * CONNMARK and CT zone rules, and real sockets on its loopback (a TCP
 * listener, connections that exchange data, SYNs dropped at INPUT so they
 * stay `SYN_SENT` `[UNREPLIED]`):
 *
 * - `procfs_traffic.txt` and `conntrack_extended_traffic.txt`: the table;
 * - `traffic_expected.json`: the setup (rules, addresses) and each
 *   connection's expected tuples, zone, mark and state, from the list below.
 *
 * `deno task fixtures [table] [traffic]` (default: both). Needs root, `ip`,
 * `conntrack` and `iptables`; touches nothing outside its namespaces, and
 * the traffic never leaves its namespace's loopback.
 *
 * @module
 */
import {
  canRunKernelTests,
  type EntrySpec,
  familyOf,
  insertArgs,
  isCandidate,
  Netns,
  statusOf,
  withNetns,
} from "../testbed/netns.ts";
import type { Direction } from "../lib/text/parse.ts";
import type { ExpectedTcp } from "../testbed/fixtures.ts";

/** One inserted entry (in the JSON, `args` is written as one `conntrack` string). */
interface FixtureEntry {
  description: string;
  family: "ipv4" | "ipv6";
  protocol: string;
  /** The `conntrack` arguments that created it (starting with `-I`). */
  args: string[];
  /** Seconds given with `-t`; the capture shows at most this. */
  timeout: number;
  /** Present for TCP entries. */
  tcp?: ExpectedTcp;
  candidate: boolean;
}

/** An entry made from an {@linkcode EntrySpec} (addresses must be written canonically). */
function spec(description: string, s: EntrySpec): FixtureEntry {
  const proto = s.proto ?? "tcp";
  const status = statusOf(s).split(",");
  return {
    description,
    family: familyOf(s),
    protocol: proto,
    args: insertArgs(s),
    timeout: s.timeout,
    ...(proto === "tcp"
      ? {
        tcp: {
          state: s.state!,
          original: { src: s.src, dst: s.dst, sport: s.sport, dport: s.dport },
          reply: { src: s.dst, dst: s.src, sport: s.dport, dport: s.sport },
          zone: s.zone ?? 0,
          unreplied: !status.includes("SEEN_REPLY"),
          ...(status.includes("ASSURED") ? { flag: "ASSURED" } : {}),
          mark: s.mark ?? 0,
        },
      }
      : {}),
    candidate: isCandidate(s),
  };
}

/** An entry `EntrySpec` cannot express: its args and expectation written out. */
function raw(e: FixtureEntry): FixtureEntry {
  return e;
}

const SYN = { state: "SYN_SENT", timeout: 120 } as const;
const EST = { state: "ESTABLISHED", timeout: 300 } as const;

/** Everything inserted into each namespace. Tuples are unique per zone. */
export const ENTRIES: FixtureEntry[] = [
  // IPv4 candidates
  spec("ipv4 SYN_SENT/UNREPLIED zone 0", {
    src: "10.0.0.1",
    dst: "10.0.0.2",
    sport: 40000,
    dport: 80,
    ...SYN,
  }),
  spec("ipv4 SYN_SENT/UNREPLIED zone 5, same tuple as the zone-0 one", {
    src: "10.0.0.1",
    dst: "10.0.0.2",
    sport: 40000,
    dport: 80,
    zone: 5,
    ...SYN,
  }),
  spec("ipv4 SYN_SENT/UNREPLIED zone 5", {
    src: "10.0.0.1",
    dst: "10.0.0.3",
    sport: 40001,
    dport: 443,
    zone: 5,
    ...SYN,
  }),
  spec("ipv4 SYN_SENT/UNREPLIED zone 65535 with mark 42", {
    src: "172.16.1.10",
    dst: "192.168.100.200",
    sport: 51234,
    dport: 8443,
    zone: 65535,
    mark: 42,
    ...SYN,
  }),
  spec("ipv4 SYN_SENT/UNREPLIED extreme addresses and ports, huge timeout", {
    src: "0.0.0.0",
    dst: "255.255.255.255",
    sport: 0,
    dport: 65535,
    state: "SYN_SENT",
    timeout: 4294967,
  }),
  spec("ipv4 SYN_SENT/UNREPLIED that is also ASSURED", {
    src: "10.0.0.1",
    dst: "10.0.0.2",
    sport: 40002,
    dport: 80,
    status: "UNREPLIED,ASSURED",
    ...SYN,
  }),
  raw({
    description: "ipv4 SYN_SENT/UNREPLIED with an orig-direction zone 7 (zone-orig=7)",
    family: "ipv4",
    protocol: "tcp",
    args: [
      ..."-I -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 40003 --dport 80".split(" "),
      ..."--state SYN_SENT -u UNREPLIED -t 120 --orig-zone 7".split(" "),
    ],
    timeout: 120,
    tcp: {
      state: "SYN_SENT",
      original: { src: "10.0.0.1", dst: "10.0.0.2", sport: 40003, dport: 80 },
      reply: { src: "10.0.0.2", dst: "10.0.0.1", sport: 80, dport: 40003 },
      zone: 7,
      unreplied: true,
      mark: 0,
    },
    candidate: true,
  }),
  raw({
    description: "ipv4 SYN_SENT/UNREPLIED with only a reply-direction zone 8 (original zone 0)",
    family: "ipv4",
    protocol: "tcp",
    args: [
      ..."-I -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 40004 --dport 80".split(" "),
      ..."--state SYN_SENT -u UNREPLIED -t 120 --reply-zone 8".split(" "),
    ],
    timeout: 120,
    tcp: {
      state: "SYN_SENT",
      original: { src: "10.0.0.1", dst: "10.0.0.2", sport: 40004, dport: 80 },
      reply: { src: "10.0.0.2", dst: "10.0.0.1", sport: 80, dport: 40004 },
      zone: 0,
      unreplied: true,
      mark: 0,
    },
    candidate: true,
  }),
  raw({
    description: "ipv4 SYN_SENT/UNREPLIED whose reply tuple is not the mirror (DNAT-like)",
    family: "ipv4",
    protocol: "tcp",
    args: [
      ..."-I -p tcp -s 10.0.0.1 -d 10.96.0.10 --sport 40005 --dport 80".split(" "),
      ..."-r 10.244.1.7 -q 10.0.0.1 --reply-port-src 8080 --reply-port-dst 40005".split(" "),
      ..."--state SYN_SENT -u UNREPLIED -t 120".split(" "),
    ],
    timeout: 120,
    tcp: {
      state: "SYN_SENT",
      original: { src: "10.0.0.1", dst: "10.96.0.10", sport: 40005, dport: 80 },
      reply: { src: "10.244.1.7", dst: "10.0.0.1", sport: 8080, dport: 40005 },
      zone: 0,
      unreplied: true,
      mark: 0,
    },
    candidate: true,
  }),
  // IPv4 TCP non-candidates
  spec("ipv4 SYN_SENT that saw a reply (no [UNREPLIED])", {
    src: "10.0.0.1",
    dst: "10.0.0.2",
    sport: 40010,
    dport: 80,
    status: "SEEN_REPLY",
    ...SYN,
  }),
  spec("ipv4 ESTABLISHED/ASSURED zone 0", {
    src: "10.0.0.1",
    dst: "10.0.0.2",
    sport: 40011,
    dport: 80,
    ...EST,
  }),
  spec("ipv4 ESTABLISHED/ASSURED zone 5", {
    src: "10.0.0.1",
    dst: "10.0.0.2",
    sport: 40011,
    dport: 80,
    zone: 5,
    ...EST,
  }),
  spec("ipv4 ESTABLISHED without SEEN_REPLY (shown [UNREPLIED], not SYN_SENT)", {
    src: "10.0.0.1",
    dst: "10.0.0.2",
    sport: 40012,
    dport: 80,
    status: "",
    ...EST,
  }),
  spec("ipv4 TIME_WAIT", {
    src: "10.0.0.1",
    dst: "10.0.0.2",
    sport: 40013,
    dport: 80,
    state: "TIME_WAIT",
    timeout: 120,
  }),
  ...(["NONE", "SYN_RECV", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "CLOSE", "SYN_SENT2"] as const)
    .map((state, i) =>
      spec(`ipv4 ${state}`, {
        src: "10.0.1.1",
        dst: "10.0.1.2",
        sport: 41000 + i,
        dport: 80,
        state,
        timeout: 60,
      })
    ),
  // IPv4 other protocols
  spec("ipv4 UDP unreplied", {
    proto: "udp",
    src: "10.0.0.1",
    dst: "10.0.0.53",
    sport: 53000,
    dport: 53,
    timeout: 30,
  }),
  spec("ipv4 UDP assured zone 5", {
    proto: "udp",
    src: "10.0.0.1",
    dst: "10.0.0.53",
    sport: 53001,
    dport: 53,
    zone: 5,
    status: "SEEN_REPLY,ASSURED",
    timeout: 180,
  }),
  raw({
    description: "ipv4 ICMP echo request",
    family: "ipv4",
    protocol: "icmp",
    args: "-I -p icmp -s 10.0.0.1 -d 10.0.0.2 --icmp-type 8 --icmp-code 0 --icmp-id 77 -t 30"
      .split(" "),
    timeout: 30,
    candidate: false,
  }),
  raw({
    description: "ipv4 GRE (its header carries timeout=, stream_timeout=)",
    family: "ipv4",
    protocol: "gre",
    args: "-I -p gre -s 10.0.0.1 -d 10.0.0.2 --srckey 8 --dstkey 80 -t 100".split(" "),
    timeout: 100,
    candidate: false,
  }),
  raw({
    description: "ipv4 SCTP ESTABLISHED",
    family: "ipv4",
    protocol: "sctp",
    args: [
      ..."-I -p sctp -s 10.0.0.1 -d 10.0.0.2 --sport 3868 --dport 3868".split(" "),
      ..."--state ESTABLISHED --orig-vtag 1 --reply-vtag 2 -t 100".split(" "),
    ],
    timeout: 100,
    candidate: false,
  }),
  raw({
    description: "ipv4 UDPLITE",
    family: "ipv4",
    protocol: "udplite",
    args: "-I -p udplite -s 10.0.0.1 -d 10.0.0.2 --sport 5000 --dport 5001 -t 100".split(" "),
    timeout: 100,
    candidate: false,
  }),
  // IPv6 candidates (the kernel prints every address in full, 39 characters)
  spec("ipv6 SYN_SENT/UNREPLIED zone 0", {
    src: "2001:db8::1",
    dst: "2001:db8::2",
    sport: 40000,
    dport: 80,
    ...SYN,
  }),
  spec("ipv6 SYN_SENT/UNREPLIED zone 5, same tuple as the zone-0 one", {
    src: "2001:db8::1",
    dst: "2001:db8::2",
    sport: 40000,
    dport: 80,
    zone: 5,
    ...SYN,
  }),
  spec("ipv6 SYN_SENT/UNREPLIED, two equal zero runs (first compressed), zone 5", {
    src: "2001:db8::1:0:0:1",
    dst: "fd00:0:0:1::5",
    sport: 65535,
    dport: 1,
    zone: 5,
    ...SYN,
  }),
  spec("ipv6 SYN_SENT/UNREPLIED, unspecified and loopback", {
    src: "::",
    dst: "::1",
    sport: 1,
    dport: 1,
    ...SYN,
  }),
  spec("ipv6 SYN_SENT/UNREPLIED, one zero group (not compressed), no zero group", {
    src: "2001:db8:0:1:1:1:1:1",
    dst: "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff",
    sport: 40001,
    dport: 443,
    mark: 7,
    ...SYN,
  }),
  spec("ipv6 SYN_SENT/UNREPLIED, link-local to a trailing-zeros address", {
    src: "fe80::1ff:fe23:4567:890a",
    dst: "2001:db8:1::",
    sport: 40002,
    dport: 22,
    ...SYN,
  }),
  // IPv6 non-candidates
  spec("ipv6 SYN_SENT that saw a reply", {
    src: "2001:db8::1",
    dst: "2001:db8::2",
    sport: 40010,
    dport: 80,
    status: "SEEN_REPLY",
    ...SYN,
  }),
  spec("ipv6 ESTABLISHED/ASSURED zone 5", {
    src: "2001:db8::1",
    dst: "2001:db8::2",
    sport: 40011,
    dport: 80,
    zone: 5,
    ...EST,
  }),
  spec("ipv6 TIME_WAIT", {
    src: "2001:db8::1",
    dst: "2001:db8::2",
    sport: 40013,
    dport: 80,
    state: "TIME_WAIT",
    timeout: 120,
  }),
  spec("ipv6 UDP unreplied", {
    proto: "udp",
    src: "2001:db8::1",
    dst: "2001:db8::53",
    sport: 53000,
    dport: 53,
    timeout: 30,
  }),
  raw({
    description: "ipv6 ICMPv6 echo request",
    family: "ipv6",
    protocol: "icmpv6",
    args: [
      ..."-I -p icmpv6 -s 2001:db8::1 -d 2001:db8::2".split(" "),
      ..."--icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 77 -t 30".split(" "),
    ],
    timeout: 30,
    candidate: false,
  }),
];

const OUT = new URL("../tests/fixtures/", import.meta.url);
const ACCT = "net.netfilter.nf_conntrack_acct";
const TIMESTAMP = "net.netfilter.nf_conntrack_timestamp";

interface Capture {
  procfs: string;
  extended: string;
}

/** Inserts every entry into a fresh namespace and reads the table back. */
function capture(acctTimestamp: boolean): Promise<Capture> {
  return withNetns(acctTimestamp ? "fixtures-acct" : "fixtures-plain", async (ns: Netns) => {
    const want = acctTimestamp ? "1" : "0";
    for (const key of [ACCT, TIMESTAMP]) {
      const got = await ns.sysctl(key, want);
      if (got !== want) throw new Error(`${key} reads ${got} after setting ${want}`);
    }
    for (const e of ENTRIES) await ns.conntrack(e.args);
    // Let a little time pass so timeouts and delta-time= are not the values of creation.
    await new Promise((r) => setTimeout(r, 2100));
    const procfs = await ns.list();
    let extended = "";
    for (const family of ["ipv4", "ipv6"]) {
      extended += (await ns.conntrack(["-L", "-o", "extended", "-f", family])).stdout;
    }
    for (const [what, text] of [["procfs", procfs], ["conntrack -L", extended]]) {
      const lines = text!.split("\n");
      if (lines.pop() !== "" || lines.length !== ENTRIES.length) {
        throw new Error(`${what} shows ${lines.length} lines, expected ${ENTRIES.length}`);
      }
      if (
        acctTimestamp && !lines.every((l) => l.includes(" packets=") && l.includes(" delta-time="))
      ) {
        throw new Error(`${what}: not every line has packets= and delta-time=`);
      }
      if (
        !acctTimestamp && lines.some((l) => l.includes("packets=") || l.includes("delta-time="))
      ) {
        throw new Error(`${what}: counters or timestamps although both are off`);
      }
    }
    return { procfs, extended };
  });
}

/** One connection made with real sockets, and what the kernel must show for it. */
export interface TrafficEntry {
  description: string;
  family: "ipv4" | "ipv6";
  /** `syn`: the SYN is dropped at INPUT (stays SYN_SENT [UNREPLIED]); `open`: data exchanged, left open; `closed`: data exchanged, then closed by both sides. */
  kind: "syn" | "open" | "closed";
  /** The client's socket: bound to `src`:`sport`, connecting to `dst`:`dport`. */
  connect: { src: string; sport: number; dst: string; dport: number };
  /** Bytes the client sends (the server echoes them) for `open` and `closed`. */
  payload?: number;
  /** What the kernel shows: `state`, both tuples (after NAT), zones, mark. */
  state: string;
  original: Direction;
  reply: Direction;
  /** `zone=`/`zone-orig=` (the candidate's zone), and `zone-reply=`, 0 when absent. */
  zone: number;
  replyZone: number;
  mark: number;
  unreplied: boolean;
  /** `dnat`: the destination was translated; `snat`: only the source; `none`. */
  nat: "dnat" | "snat" | "none";
  candidate: boolean;
}

const V4 = "10.77.0.1", V4_SNAT_FROM = "10.77.0.20", V4_SNAT_TO = "10.77.0.21";
const V4_SERVICE = "10.96.0.10";
const V6 = "fd77::1", V6_SERVICE = "fd96::10";
/** Listening port of the echo server; port 9 (and 19, 29, 39, 49) are dropped at INPUT. */
const ECHO = 8080;

/** Addresses on the namespace's `lo`, then the rules, each an argv run inside it. */
export const TRAFFIC_SETUP: string[][] = [
  ...[V4, V4_SNAT_FROM, V4_SNAT_TO, V4_SERVICE].map((a) => `ip addr add ${a}/32 dev lo`),
  ...[V6, V6_SERVICE].map((a) => `ip -6 addr add ${a}/128 dev lo nodad`),
  // SYNs to these ports are dropped after conntrack saw them: SYN_SENT [UNREPLIED] for real
  ...[9, 19, 29, 39, 49].flatMap((port) =>
    ["iptables", "ip6tables"].map((t) => `${t} -A INPUT -p tcp --dport ${port} -j DROP`)
  ),
  // a "service" address DNATed to a backend: port 80 to the black hole, 8080 to the echo server
  `iptables -t nat -A OUTPUT -p tcp -d ${V4_SERVICE} --dport 80 -j DNAT --to-destination ${V4}:9`,
  `iptables -t nat -A OUTPUT -p tcp -d ${V4_SERVICE} --dport ${ECHO} -j DNAT --to-destination ${V4}:${ECHO}`,
  `ip6tables -t nat -A OUTPUT -p tcp -d ${V6_SERVICE} --dport 80 -j DNAT --to-destination [${V6}]:9`,
  // the source of 10.77.0.20 is rewritten; its destination is not
  `iptables -t nat -A POSTROUTING -p tcp -s ${V4_SNAT_FROM} -j SNAT --to-source ${V4_SNAT_TO}`,
  // connection marks
  "iptables -t mangle -A OUTPUT -p tcp --dport 19 -j CONNMARK --set-mark 42",
  "ip6tables -t mangle -A OUTPUT -p tcp --dport 19 -j CONNMARK --set-mark 43",
  // zones: original direction only, reply direction only, both
  "iptables -t raw -A OUTPUT -p tcp --dport 29 -j CT --zone-orig 7",
  "iptables -t raw -A OUTPUT -p tcp --dport 39 -j CT --zone-reply 8",
  "iptables -t raw -A OUTPUT -p tcp --dport 49 -j CT --zone 5",
  "ip6tables -t raw -A OUTPUT -p tcp --dport 29 -j CT --zone-orig 9",
].map((c) => c.split(" "));

const dir = (src: string, sport: number, dst: string, dport: number): Direction => ({
  src,
  dst,
  sport,
  dport,
});

/** A SYN that stays unanswered: original as sent, reply from `back` (after NAT). */
function syn(
  description: string,
  family: "ipv4" | "ipv6",
  c: TrafficEntry["connect"],
  more: Partial<TrafficEntry> & { reply?: Direction } = {},
): TrafficEntry {
  return {
    description,
    family,
    kind: "syn",
    connect: c,
    state: "SYN_SENT",
    original: dir(c.src, c.sport, c.dst, c.dport),
    reply: dir(c.dst, c.dport, c.src, c.sport),
    zone: 0,
    replyZone: 0,
    mark: 0,
    unreplied: true,
    nat: "none",
    candidate: true,
    ...more,
  };
}

/** A connection that exchanged `payload` bytes each way. */
function talk(
  description: string,
  family: "ipv4" | "ipv6",
  kind: "open" | "closed",
  c: TrafficEntry["connect"],
  more: Partial<TrafficEntry> = {},
): TrafficEntry {
  return {
    ...syn(description, family, c),
    kind,
    payload: 1000,
    state: kind === "open" ? "ESTABLISHED" : "TIME_WAIT",
    unreplied: false,
    candidate: false,
    ...more,
  };
}

/** The connections of the traffic capture. Every client port is fixed, so every tuple is known. */
export const TRAFFIC: TrafficEntry[] = [
  syn("ipv4 SYN dropped, destination not translated", "ipv4", {
    src: V4,
    sport: 40100,
    dst: V4,
    dport: 9,
  }),
  syn("ipv4 SYN to a service address DNATed to a black-holed backend", "ipv4", {
    src: V4,
    sport: 40101,
    dst: V4_SERVICE,
    dport: 80,
  }, { reply: dir(V4, 9, V4, 40101), nat: "dnat" }),
  syn("ipv4 SYN whose source was SNATed, destination not translated", "ipv4", {
    src: V4_SNAT_FROM,
    sport: 40102,
    dst: V4,
    dport: 9,
  }, { reply: dir(V4, 9, V4_SNAT_TO, 40102), nat: "snat" }),
  syn("ipv4 SYN with connmark 42", "ipv4", { src: V4, sport: 40103, dst: V4, dport: 19 }, {
    mark: 42,
  }),
  syn("ipv4 SYN in original-direction zone 7 (CT --zone-orig)", "ipv4", {
    src: V4,
    sport: 40104,
    dst: V4,
    dport: 29,
  }, { zone: 7 }),
  syn("ipv4 SYN in reply-direction zone 8 only (CT --zone-reply)", "ipv4", {
    src: V4,
    sport: 40105,
    dst: V4,
    dport: 39,
  }, { replyZone: 8 }),
  syn("ipv4 SYN in zone 5, both directions (CT --zone)", "ipv4", {
    src: V4,
    sport: 40106,
    dst: V4,
    dport: 49,
  }, { zone: 5, replyZone: 5 }),
  syn("ipv6 SYN dropped, destination not translated", "ipv6", {
    src: V6,
    sport: 40110,
    dst: V6,
    dport: 9,
  }),
  syn("ipv6 SYN to a service address DNATed to a black-holed backend", "ipv6", {
    src: V6,
    sport: 40111,
    dst: V6_SERVICE,
    dport: 80,
  }, { reply: dir(V6, 9, V6, 40111), nat: "dnat" }),
  syn("ipv6 SYN with connmark 43", "ipv6", { src: V6, sport: 40112, dst: V6, dport: 19 }, {
    mark: 43,
  }),
  syn("ipv6 SYN in original-direction zone 9", "ipv6", {
    src: V6,
    sport: 40113,
    dst: V6,
    dport: 29,
  }, { zone: 9 }),
  talk("ipv4 connection with data, left open", "ipv4", "open", {
    src: V4,
    sport: 40120,
    dst: V4,
    dport: ECHO,
  }),
  talk("ipv4 connection with data through the DNATed service address, left open", "ipv4", "open", {
    src: V4,
    sport: 40121,
    dst: V4_SERVICE,
    dport: ECHO,
  }, { reply: dir(V4, ECHO, V4, 40121), nat: "dnat" }),
  talk("ipv4 connection with data from an SNATed source, left open", "ipv4", "open", {
    src: V4_SNAT_FROM,
    sport: 40122,
    dst: V4,
    dport: ECHO,
  }, { reply: dir(V4, ECHO, V4_SNAT_TO, 40122), nat: "snat" }),
  talk("ipv6 connection with data, left open", "ipv6", "open", {
    src: V6,
    sport: 40123,
    dst: V6,
    dport: ECHO,
  }),
  talk("ipv4 connection with data, closed by both sides", "ipv4", "closed", {
    src: V4,
    sport: 40124,
    dst: V4,
    dport: ECHO,
  }),
];

/**
 * Inside the traffic namespace (`--traffic-inside`): starts the echo server,
 * makes every connection of {@linkcode TRAFFIC}, prints `ready` once the
 * data is exchanged (and the closed ones are closed), then keeps the sockets
 * until stdin closes.
 */
async function trafficInside(): Promise<void> {
  const net = await import("node:net");
  const servers = [V4, V6].map((host) => {
    const server = net.createServer((sock) => sock.pipe(sock));
    server.listen(ECHO, host);
    return server;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.once("listening", r))));
  const sockets: unknown[] = [];
  // the SYNs first, the data connections 1.5 s later: delta-time= differs between them
  const order = [
    ...TRAFFIC.filter((t) => t.kind === "syn"),
    ...TRAFFIC.filter((t) => t.kind !== "syn"),
  ];
  let waited = false;
  const done = [];
  for (const t of order) {
    if (t.kind !== "syn" && !waited) {
      await new Promise((r) => setTimeout(r, 1500));
      waited = true;
    }
    done.push(connectOne(t));
  }
  function connectOne(t: TrafficEntry): Promise<void> {
    const sock = net.connect({
      host: t.connect.dst,
      port: t.connect.dport,
      localAddress: t.connect.src,
      localPort: t.connect.sport,
    });
    sockets.push(sock);
    sock.on("error", () => {});
    if (t.kind === "syn") return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let got = 0;
      sock.on("connect", () => sock.write(new Uint8Array(t.payload!).fill(120)));
      sock.on("data", (d: Uint8Array) => {
        got += d.length;
        if (got < t.payload!) return;
        if (t.kind === "closed") sock.end();
        resolve();
      });
      sock.on("error", reject);
    });
  }
  await Promise.all(done);
  await new Promise((r) => setTimeout(r, 200)); // the closing FINs and ACKs
  console.log("ready");
  for await (const _ of Deno.stdin.readable) {
    // hold the sockets until the capture is done
  }
  Deno.exit(0);
}

/** Sets up the traffic namespace, runs the connections and reads the table. */
function captureTraffic(): Promise<Capture> {
  return withNetns("fixtures-traffic", async (ns: Netns) => {
    for (const key of [ACCT, TIMESTAMP]) {
      if (await ns.sysctl(key, "1") !== "1") throw new Error(`${key} did not turn on`);
    }
    for (const cmd of TRAFFIC_SETUP) {
      const r = await ns.exec(cmd);
      if (r.code !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.trim()}`);
    }
    const child = ns.spawn(
      [Deno.execPath(), "run", "-A", new URL(import.meta.url).pathname, "--traffic-inside"],
      { stdin: "piped", stdout: "piped", stderr: "inherit" },
    );
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let said = "";
    while (!said.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`traffic helper ended early: ${said}`);
      said += value;
    }
    // Let SYNs be retransmitted (1 s) and delta-time grow past creation.
    await new Promise((r) => setTimeout(r, 2500));
    const procfs = await ns.list();
    let extended = "";
    for (const family of ["ipv4", "ipv6"]) {
      extended += (await ns.conntrack(["-L", "-o", "extended", "-f", family])).stdout;
    }
    await child.stdin.close();
    await child.status;
    reader.releaseLock();
    for (const t of TRAFFIC) {
      const o = t.original;
      const needle = ` sport=${o.sport} dport=${o.dport} `;
      for (const [what, text] of [["procfs", procfs], ["conntrack -L", extended]]) {
        const n = text!.split("\n").filter((l) => l.includes(needle)).length;
        if (n !== 1) throw new Error(`${what}: ${n} lines for ${t.description}`);
      }
    }
    return { procfs, extended };
  });
}

async function main(): Promise<void> {
  const skip = await canRunKernelTests();
  if (skip !== undefined) {
    console.error(`cannot capture fixtures: ${skip}`);
    Deno.exit(1);
  }
  const what = Deno.args.length > 0 ? Deno.args : ["table", "traffic"];
  await Deno.mkdir(OUT, { recursive: true });
  if (what.includes("traffic")) await writeTraffic();
  if (!what.includes("table")) return;
  const plain = await capture(false);
  const acct = await capture(true);
  const files: Record<string, { text: string; about: Record<string, unknown> }> = {
    "procfs_plain.txt": {
      text: plain.procfs,
      about: { command: "cat /proc/net/nf_conntrack", acct: false, timestamp: false },
    },
    "procfs_acct_timestamp.txt": {
      text: acct.procfs,
      about: { command: "cat /proc/net/nf_conntrack", acct: true, timestamp: true },
    },
    "conntrack_extended.txt": {
      text: plain.extended,
      about: {
        command: "conntrack -L -o extended -f ipv4; conntrack -L -o extended -f ipv6",
        acct: false,
        timestamp: false,
      },
    },
    "conntrack_extended_acct_timestamp.txt": {
      text: acct.extended,
      about: {
        command: "conntrack -L -o extended -f ipv4; conntrack -L -o extended -f ipv6",
        acct: true,
        timestamp: true,
      },
    },
  };
  for (const [name, f] of Object.entries(files)) {
    await Deno.writeTextFile(new URL(name, OUT), f.text);
  }
  const uname = await new Deno.Command("uname", { args: ["-r"], stdout: "piped" }).output();
  const version = await new Deno.Command("conntrack", { args: ["--version"], stdout: "piped" })
    .output();
  const expected = {
    about: "Written by scripts/capture_fixtures.ts from its own entry list, not by parsing " +
      "the captures. Each fixture file holds every entry exactly once (in hash order). " +
      "Addresses are canonical (IPv4 dotted quad, IPv6 RFC 5952). A candidate is a TCP " +
      "SYN_SENT entry without SEEN_REPLY; its zone is the original direction's.",
    kernel: new TextDecoder().decode(uname.stdout).trim(),
    conntrack: new TextDecoder().decode(version.stdout).trim(),
    files: Object.fromEntries(
      Object.entries(files).map(([name, f]) => [name, { ...f.about, lines: ENTRIES.length }]),
    ),
    entries: ENTRIES.map(({ args, ...e }) => ({ ...e, conntrack: args.join(" ") })),
    candidates: ENTRIES.filter((e) => e.candidate).map((e) => ({
      family: e.family,
      src: e.tcp!.original.src,
      dst: e.tcp!.original.dst,
      sport: e.tcp!.original.sport,
      dport: e.tcp!.original.dport,
      zone: e.tcp!.zone,
    })),
  };
  await Deno.writeTextFile(
    new URL("procfs_expected.json", OUT),
    JSON.stringify(expected, null, 2) + "\n",
  );
  console.log(
    `wrote ${Object.keys(files).length} captures of ${ENTRIES.length} entries ` +
      `(${expected.candidates.length} candidates) and procfs_expected.json to ${OUT.pathname}`,
  );
}

/** Captures {@linkcode TRAFFIC} and writes its two tables and `traffic_expected.json`. */
async function writeTraffic(): Promise<void> {
  const t = await captureTraffic();
  await Deno.writeTextFile(new URL("procfs_traffic.txt", OUT), t.procfs);
  await Deno.writeTextFile(new URL("conntrack_extended_traffic.txt", OUT), t.extended);
  const uname = await new Deno.Command("uname", { args: ["-r"], stdout: "piped" }).output();
  const expected = {
    about: "Written by scripts/capture_fixtures.ts from its own connection list and rules, " +
      "not by parsing the captures. Real sockets on the namespace's loopback, " +
      "nf_conntrack_acct=1 and nf_conntrack_timestamp=1. Each connection appears exactly " +
      "once in procfs_traffic.txt (cat /proc/net/nf_conntrack) and " +
      "conntrack_extended_traffic.txt (conntrack -L -o extended -f ipv4, then -f ipv6).",
    kernel: new TextDecoder().decode(uname.stdout).trim(),
    setup: TRAFFIC_SETUP.map((c) => c.join(" ")),
    connections: TRAFFIC,
  };
  await Deno.writeTextFile(
    new URL("traffic_expected.json", OUT),
    JSON.stringify(expected, null, 2) + "\n",
  );
  console.log(`wrote the traffic capture of ${TRAFFIC.length} connections to ${OUT.pathname}`);
}

if (import.meta.main) {
  if (Deno.args[0] === "--traffic-inside") await trafficInside();
  else await main();
}
