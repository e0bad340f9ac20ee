/**
 * Captures real ctnetlink replies as binary fixtures for the codec tests.
 *
 *     deno run -A scripts/capture_netlink_fixtures.ts [outdir]
 *
 * Needs root. Makes a network namespace, fills it with `conntrack -I`
 * (IPv4, IPv6, zone 5, SYN_SENT/UNREPLIED, ESTABLISHED, TIME_WAIT, UDP),
 * re-runs itself inside the namespace to send requests and save every
 * datagram the kernel answers with (`<name>.bin`, datagrams concatenated),
 * writes `manifest.json` (the entries inserted, the kernel version and
 * `conntrack -L -o id` output as an independent record of the ids), and
 * removes the namespace. Default outdir: tests/fixtures/netlink.
 *
 * Then, in a second namespace, the real-traffic setup of
 * scripts/capture_fixtures.ts (iptables DNAT/SNAT, CONNMARK, CT zones, real
 * sockets on loopback, counters and timestamps on) is dumped too:
 * `dump_traffic.bin` (everything) and `dump_traffic_filtered_ipv4.bin` /
 * `…_ipv6.bin` (the kernel's TCP + unreplied filter); manifest.json gains a
 * `traffic` section with the rules, the expected connections and
 * `conntrack -L -o extended,id`.
 *
 *     deno task fixtures:netlink [outdir] [--traffic-only]
 *
 * `--traffic-only` captures only the traffic part and keeps the rest of
 * manifest.json as it is.
 *
 * @module
 */
import { MessageBuilder } from "../lib/netlink/builder.ts";
import { decodeConntrack, entryTuple } from "../lib/netlink/conntrack_entry.ts";
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  appendDeleteRequest,
  appendDumpRequest,
  appendGetRequest,
  CTA_STATUS_MASK,
  ctMsgType,
  IPCTNL_MSG_CT_GET,
  IPPROTO_TCP,
  IPS_SEEN_REPLY,
} from "../lib/netlink/ctnetlink.ts";
import {
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  parseMessages,
} from "../lib/netlink/message.ts";
import { NetlinkSocket } from "../lib/netlink/socket.ts";
import { type ParsedTuple, parseTuple, type Tuple } from "../lib/model/tuple.ts";
import { TRAFFIC, TRAFFIC_SETUP } from "./capture_fixtures.ts";
import { withNetns } from "../testbed/netns.ts";
import { NETLINK_FIXTURE_ENTRIES } from "../testbed/fixtures.ts";

const V4_SYN: Tuple = {
  family: "ipv4",
  src: "10.10.0.1",
  dst: "10.10.0.2",
  sport: 40001,
  dport: 80,
  zone: 0,
};

async function run(cmd: string[]): Promise<string> {
  const out = await new Deno.Command(cmd[0]!, { args: cmd.slice(1) }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (out.code !== 0) {
    throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/** Sends one request and returns every datagram up to DONE/ERROR, concatenated. */
async function exchange(
  sock: NetlinkSocket,
  request: Uint8Array,
  dump: boolean,
): Promise<Uint8Array> {
  await sock.send(request);
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await sock.recv(buf, 2000);
    if (n === null) throw new Error("no answer from the kernel");
    const bytes = buf.slice(0, n);
    parts.push(bytes);
    const msgs = parseMessages(bytes).messages;
    const end = msgs.some((m) => m.type === NLMSG_DONE || m.type === NLMSG_ERROR);
    if (end || !dump) break;
  }
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

async function inside(outdir: string): Promise<void> {
  const sock = NetlinkSocket.open();
  let seq = 100;
  const save = async (name: string, bytes: Uint8Array) => {
    await Deno.writeFile(`${outdir}/${name}.bin`, bytes);
    console.log(`${name}.bin: ${bytes.length} bytes`);
  };
  const req = (fill: (b: MessageBuilder, seq: number) => void) => {
    const b = new MessageBuilder();
    fill(b, ++seq);
    return b.bytes();
  };
  try {
    const all = await exchange(sock, req((b, s) => appendDumpRequest(b, s, AF_UNSPEC)), true);
    await save("dump_all", all);
    const unreplied = { value: 0, mask: IPS_SEEN_REPLY };
    for (const [fam, name] of [[AF_INET, "ipv4"], [AF_INET6, "ipv6"]] as const) {
      const r = req((b, s) =>
        appendDumpRequest(b, s, fam, { protoNum: IPPROTO_TCP, status: unreplied })
      );
      await save(`dump_filtered_${name}`, await exchange(sock, r, true));
    }
    await save(
      "dump_status",
      await exchange(
        sock,
        req((b, s) => appendDumpRequest(b, s, AF_UNSPEC, { status: unreplied })),
        true,
      ),
    );
    // CTA_STATUS_MASK without CTA_STATUS: the kernel rejects the dump (EINVAL).
    await save(
      "dump_einval",
      await exchange(
        sock,
        req((b, s) => {
          b.beginMessage(ctMsgType(IPCTNL_MSG_CT_GET), NLM_F_REQUEST | NLM_F_DUMP, s, AF_INET);
          b.be32(CTA_STATUS_MASK, IPS_SEEN_REPLY);
          b.endMessage();
        }),
        true,
      ),
    );
    const get = await exchange(sock, req((b, s) => appendGetRequest(b, s, parsed(V4_SYN))), false);
    await save("get_reply_ipv4", get);
    await save(
      "get_enoent",
      await exchange(
        sock,
        req((b, s) => appendGetRequest(b, s, parsed({ ...V4_SYN, sport: 40999 }))),
        false,
      ),
    );
    const id = decodeConntrack(parseMessages(get).messages[0]!.payload).id!;
    await save(
      "delete_wrong_id",
      await exchange(
        sock,
        req((b, s) =>
          appendDeleteRequest(b, s, parsed({ ...V4_SYN, sport: 40003, zone: 5 }), (id + 1) >>> 0)
        ),
        false,
      ),
    );
    await save(
      "delete_ack",
      await exchange(sock, req((b, s) => appendDeleteRequest(b, s, parsed(V4_SYN), id)), false),
    );
    console.log(
      `deleted ${
        JSON.stringify(entryTuple(decodeConntrack(parseMessages(get).messages[0]!.payload)))
      }`,
    );
  } finally {
    sock.close();
  }
}

/** Inside the traffic namespace: the dumps of its table. */
async function insideTraffic(outdir: string): Promise<void> {
  const sock = NetlinkSocket.open();
  let seq = 500;
  const req = (fill: (b: MessageBuilder, seq: number) => void) => {
    const b = new MessageBuilder();
    fill(b, ++seq);
    return b.bytes();
  };
  const save = async (name: string, bytes: Uint8Array) => {
    await Deno.writeFile(`${outdir}/${name}.bin`, bytes);
    console.log(`${name}.bin: ${bytes.length} bytes`);
  };
  try {
    await save(
      "dump_traffic",
      await exchange(sock, req((b, s) => appendDumpRequest(b, s, AF_UNSPEC)), true),
    );
    const unreplied = { value: 0, mask: IPS_SEEN_REPLY };
    for (const [fam, name] of [[AF_INET, "ipv4"], [AF_INET6, "ipv6"]] as const) {
      const r = req((b, s) =>
        appendDumpRequest(b, s, fam, { protoNum: IPPROTO_TCP, status: unreplied })
      );
      await save(`dump_traffic_filtered_${name}`, await exchange(sock, r, true));
    }
  } finally {
    sock.close();
  }
}

/** The real-traffic capture; returns the manifest's `traffic` section and file notes. */
function captureTraffic(outdir: string) {
  return withNetns("nl-fixtures-traffic", async (ns) => {
    for (const key of ["net.netfilter.nf_conntrack_acct", "net.netfilter.nf_conntrack_timestamp"]) {
      if (await ns.sysctl(key, "1") !== "1") throw new Error(`${key} did not turn on`);
    }
    for (const cmd of TRAFFIC_SETUP) {
      const r = await ns.exec(cmd);
      if (r.code !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.trim()}`);
    }
    const helper = new URL("./capture_fixtures.ts", import.meta.url).pathname;
    const child = ns.spawn([Deno.execPath(), "run", "-A", helper, "--traffic-inside"], {
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    });
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let said = "";
    while (!said.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`traffic helper ended early: ${said}`);
      said += value;
    }
    await new Promise((r) => setTimeout(r, 2500));
    const dumped = await ns.exec([
      Deno.execPath(),
      "run",
      "-A",
      import.meta.filename!,
      "--inside-traffic",
      outdir,
    ]);
    if (dumped.code !== 0) throw new Error(`traffic dump: ${dumped.stderr}`);
    console.log(dumped.stdout.trimEnd());
    const listing = await ns.conntrack(["-L", "-o", "extended,id"]);
    await child.stdin.close();
    await child.status;
    reader.releaseLock();
    return {
      traffic: {
        about: "Real sockets on the namespace's loopback (scripts/capture_fixtures.ts " +
          "--traffic-inside), nf_conntrack_acct=1, nf_conntrack_timestamp=1; the " +
          "connections and their expected tuples, zones and marks come from its list.",
        setup: TRAFFIC_SETUP.map((c) => c.join(" ")),
        connections: TRAFFIC,
        conntrackListing: listing.stdout.trimEnd().split("\n"),
      },
      files: {
        dump_traffic:
          `AF_UNSPEC dump of the traffic namespace: all ${TRAFFIC.length} entries, then NLMSG_DONE`,
        dump_traffic_filtered_ipv4:
          "AF_INET dump of it, CTA_FILTER proto TCP + CTA_STATUS 0/SEEN_REPLY",
        dump_traffic_filtered_ipv6: "AF_INET6 dump of it, same filter",
      },
    };
  });
}

async function outside(outdir: string): Promise<void> {
  await Deno.mkdir(outdir, { recursive: true });
  const ns = `cc-nl-${crypto.randomUUID().slice(0, 8)}`;
  await run(["ip", "netns", "add", ns]);
  try {
    const exec = ["ip", "netns", "exec", ns];
    for (const e of NETLINK_FIXTURE_ENTRIES) {
      await run([...exec, "conntrack", "-I", ...e.args.split(" ")]);
    }
    const listing = await run([...exec, "conntrack", "-L", "-o", "id"]);
    await run([...exec, Deno.execPath(), "run", "-A", import.meta.filename!, "--inside", outdir])
      .then((s) => console.log(s.trimEnd()));
    const manifest = {
      captured: new Date().toISOString(),
      kernel: (await Deno.readTextFile("/proc/sys/kernel/osrelease")).trim(),
      entries: NETLINK_FIXTURE_ENTRIES,
      conntrackListing: listing.trimEnd().split("\n"),
      files: {
        dump_all: "AF_UNSPEC dump, no filter: all 7 entries, then NLMSG_DONE",
        dump_filtered_ipv4: "AF_INET dump, CTA_FILTER proto TCP + CTA_STATUS 0/SEEN_REPLY",
        dump_filtered_ipv6: "AF_INET6 dump, same filter",
        dump_status: "AF_UNSPEC dump, CTA_STATUS 0 under CTA_STATUS_MASK SEEN_REPLY",
        dump_einval: "AF_INET dump with CTA_STATUS_MASK but no CTA_STATUS: NLMSG_ERROR EINVAL",
        get_reply_ipv4: "GET of v4_syn_sent: one IPCTNL_MSG_CT_NEW",
        get_enoent: "GET of a missing tuple (sport 40999): NLMSG_ERROR ENOENT",
        delete_wrong_id: "DELETE of v4_syn_sent_zone5 with a wrong CTA_ID: NLMSG_ERROR ENOENT",
        delete_ack: "DELETE of v4_syn_sent with its CTA_ID: NLMSG_ERROR 0 (ack)",
      },
    };
    const t = await captureTraffic(outdir);
    const full = { ...manifest, traffic: t.traffic, files: { ...manifest.files, ...t.files } };
    await Deno.writeTextFile(`${outdir}/manifest.json`, JSON.stringify(full, null, 2) + "\n");
  } finally {
    await run(["ip", "netns", "del", ns]);
  }
}

/** `--traffic-only`: the traffic capture, merged into the existing manifest.json. */
async function trafficOnly(outdir: string): Promise<void> {
  const path = `${outdir}/manifest.json`;
  const manifest = JSON.parse(await Deno.readTextFile(path));
  const t = await captureTraffic(outdir);
  manifest.traffic = t.traffic;
  manifest.files = { ...manifest.files, ...t.files };
  await Deno.writeTextFile(path, JSON.stringify(manifest, null, 2) + "\n");
}

if (import.meta.main) {
  if (Deno.args[0] === "--inside") await inside(Deno.args[1]!);
  else if (Deno.args[0] === "--inside-traffic") await insideTraffic(Deno.args[1]!);
  else {
    const dir = Deno.args.find((a) => !a.startsWith("--")) ?? "tests/fixtures/netlink";
    if (Deno.args.includes("--traffic-only")) await trafficOnly(dir);
    else await outside(dir);
  }
}

/** The tuple, checked by the agent's own parser. */
function parsed(t: Tuple): ParsedTuple {
  const r = parseTuple(t);
  if (!r.ok) throw new Error(r.problem);
  return r.tuple;
}
