/**
 * Test helper: creates conntrack entries with `IPCTNL_MSG_CT_NEW` over a real
 * netlink socket, many per `sendto`, so a namespace can hold 100k entries in
 * a second. Run it only inside a network namespace made for the test.
 *
 * @module
 */
import type { Tuple } from "../../lib/entry.ts";
import {
  appendTuple,
  CTA_PROTOINFO,
  CTA_PROTOINFO_TCP,
  CTA_PROTOINFO_TCP_STATE,
  CTA_STATUS,
  CTA_TIMEOUT,
  CTA_TUPLE_ORIG,
  CTA_TUPLE_REPLY,
  CTA_ZONE,
  ctMsgType,
  decodeError,
  familyNumber,
  IPCTNL_MSG_CT_NEW,
  IPPROTO_TCP,
  IPS_CONFIRMED,
  MessageBuilder,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  NLMSG_ERROR,
  parseMessages,
} from "../../lib/netlink/codec.ts";
import { describeErrno } from "../../lib/netlink/errno.ts";
import { NetlinkSocket } from "../../lib/netlink/socket.ts";

/** One entry to create. */
export interface EntrySpec extends Tuple {
  /** Layer-4 protocol; default TCP. */
  proto?: number;
  /** TCP state (`TCP_CONNTRACK_*`), TCP only. */
  tcpState?: number;
  /** `IPS_*` bits (`IPS_CONFIRMED` is added). */
  status: number;
  /** Seconds. */
  timeout: number;
}

/** Appends one `IPCTNL_MSG_CT_NEW` (create, exclusive, acked). */
export function appendNewRequest(b: MessageBuilder, seq: number, e: EntrySpec): void {
  const proto = e.proto ?? IPPROTO_TCP;
  b.beginMessage(
    ctMsgType(IPCTNL_MSG_CT_NEW),
    NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
    seq,
    familyNumber(e.family),
  );
  appendTuple(b, CTA_TUPLE_ORIG, e, proto);
  appendTuple(
    b,
    CTA_TUPLE_REPLY,
    { family: e.family, src: e.dst, dst: e.src, sport: e.dport, dport: e.sport },
    proto,
  );
  // The kernel marks a created entry IPS_CONFIRMED before applying CTA_STATUS
  // and refuses (EBUSY) a status that would clear it.
  b.be32(CTA_STATUS, e.status | IPS_CONFIRMED);
  b.be32(CTA_TIMEOUT, e.timeout);
  if (proto === IPPROTO_TCP && e.tcpState !== undefined) {
    b.beginNest(CTA_PROTOINFO);
    b.beginNest(CTA_PROTOINFO_TCP);
    b.u8(CTA_PROTOINFO_TCP_STATE, e.tcpState);
    b.endNest();
    b.endNest();
  }
  if (e.zone) b.be16(CTA_ZONE, e.zone);
  b.endMessage();
}

/**
 * Creates the entries in the current network namespace, 256 per send.
 * Throws with the first kernel error.
 */
export async function fillTable(entries: Iterable<EntrySpec>): Promise<number> {
  const sock = NetlinkSocket.open();
  const buf = new Uint8Array(64 * 1024);
  let seq = 1;
  let created = 0;
  const b = new MessageBuilder(256 * 200);
  let inBatch = 0;
  const flush = async () => {
    if (inBatch === 0) return;
    await sock.send(b.bytes());
    let acks = 0;
    while (acks < inBatch) {
      const n = sock.tryRecv(buf) ?? await sock.recv(buf, 2000);
      if (n === null) throw new Error("no ack from the kernel");
      for (const m of parseMessages(buf.subarray(0, n)).messages) {
        if (m.type !== NLMSG_ERROR) continue;
        const err = decodeError(m);
        if (err.errno) throw new Error(`ct new: ${describeErrno(err.errno)} ${err.message ?? ""}`);
        acks++;
      }
    }
    created += inBatch;
    b.reset();
    inBatch = 0;
  };
  try {
    for (const e of entries) {
      appendNewRequest(b, seq++, e);
      if (++inBatch === 256) await flush();
    }
    await flush();
  } finally {
    sock.close();
  }
  return created;
}

if (import.meta.main) {
  const specs = JSON.parse(Deno.args[0] ?? "[]") as EntrySpec[];
  console.log(await fillTable(specs));
}
