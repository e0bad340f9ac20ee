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
 * Needs root, `ip` and `conntrack`; touches nothing outside its namespaces.
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
} from "../tests/support/netns.ts";
import type { Direction } from "../lib/parse.ts";

/** What the kernel should show for a TCP entry (addresses in canonical spelling). */
export interface ExpectedTcp {
  state: string;
  original: Direction;
  reply: Direction;
  /** Zone of the original direction (`zone=` or `zone-orig=`), 0 if none. */
  zone: number;
  unreplied: boolean;
  /** `ASSURED` or absent. */
  flag?: string;
  mark: number;
}

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
      const lines = text.split("\n");
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

async function main(): Promise<void> {
  const skip = await canRunKernelTests();
  if (skip !== undefined) {
    console.error(`cannot capture fixtures: ${skip}`);
    Deno.exit(1);
  }
  const plain = await capture(false);
  const acct = await capture(true);
  await Deno.mkdir(OUT, { recursive: true });
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

if (import.meta.main) await main();
