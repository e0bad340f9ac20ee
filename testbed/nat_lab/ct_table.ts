/**
 * The conntrack table of one namespace over ctnetlink, with the agent's own
 * netlink code: the entries created since the last look (the
 * `NFNLGRP_CONNTRACK_NEW` events), a full dump, both decoded into
 * `ConntrackEntry`s (original tuple, reply source = where the destination was
 * translated to, status bits), and a flush of every entry. The sockets are
 * opened inside the namespace (`insideNetns` of `../ctnetlink.ts`) and stay
 * there; one process, no `conntrack` command per probe.
 *
 * Why events and not only a dump: a SYN DNATed to a local address with no
 * listener is answered by a RST, and conntrack deletes an entry whose only
 * reply is a RST at once ("we can delete the conntrack immediately" in
 * `nf_conntrack_proto_tcp.c`), before any dump could see it. Its NEW event
 * was sent when the entry was confirmed, with the same tuples and status.
 *
 * @module
 */
import { formatAddress } from "../../lib/model/addr.ts";
import { MessageBuilder } from "../../lib/netlink/builder.ts";
import type { ConntrackEntry } from "../../lib/netlink/conntrack_entry.ts";
import { decodeConntrack } from "../../lib/netlink/conntrack_entry.ts";
import {
  AF_UNSPEC,
  appendDumpRequest,
  ctMsgType,
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_NEW,
  NFNLGRP_CONNTRACK_NEW,
} from "../../lib/netlink/ctnetlink.ts";
import { DumpRetryError, runDump } from "../../lib/netlink/dump.ts";
import { ErrnoError } from "../../lib/os/errno.ts";
import {
  decodeError,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_REQUEST,
  NLMSG_ERROR,
  parseMessages,
} from "../../lib/netlink/message.ts";
import { NetlinkSocket } from "../../lib/netlink/socket.ts";
import { insideNetns } from "../ctnetlink.ts";

const CT_NEW = ctMsgType(IPCTNL_MSG_CT_NEW);

/** A new entry as its event told it (addresses in canonical text, -1: absent). */
export interface CreatedEntry {
  family: "ipv4" | "ipv6";
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** The reply tuple's source: where the destination was translated to. */
  replySrc: string;
  replySport: number;
  /** `IPS_*` bits. */
  status: number;
}

/** A ctnetlink socket in one namespace: dump and flush its table. */
export class CtTable {
  #sock: NetlinkSocket;
  #seq = 1;
  #events: NetlinkSocket;
  #buf = new Uint8Array(256 * 1024);

  constructor(netns: string) {
    this.#sock = insideNetns(netns, () => NetlinkSocket.open());
    this.#events = insideNetns(
      netns,
      () => NetlinkSocket.open({ groups: [NFNLGRP_CONNTRACK_NEW], recvBufferBytes: 4 << 20 }),
    );
  }

  /**
   * The entries created (confirmed) since the last call, from their NEW
   * events; never waits. Throws when events were lost (`ENOBUFS`).
   */
  created(): CreatedEntry[] {
    const out: CreatedEntry[] = [];
    for (;;) {
      const n = this.#events.tryRecv(this.#buf);
      if (n === null) return out;
      for (const m of parseMessages(this.#buf.subarray(0, n)).messages) {
        if (m.type !== CT_NEW || (m.flags & NLM_F_CREATE) === 0) continue;
        const e = decodeConntrack(m.payload);
        // The decoded addresses are views into the receive buffer: copy them out now.
        out.push({
          family: e.family,
          src: formatAddress(e.srcAddr),
          dst: formatAddress(e.dstAddr),
          sport: e.sport ?? -1,
          dport: e.dport ?? -1,
          replySrc: e.replySrcAddr === undefined ? "" : formatAddress(e.replySrcAddr),
          replySport: e.replySport ?? -1,
          status: e.status,
        });
      }
    }
  }

  /**
   * Every entry of the table (IPv4 and IPv6), retried when a dump is
   * interrupted. The entries' addresses are copies (safe to keep).
   */
  async dump(): Promise<ConntrackEntry[]> {
    for (let attempt = 0;; attempt++) {
      const seq = this.#seq++;
      const b = new MessageBuilder();
      appendDumpRequest(b, seq, AF_UNSPEC);
      const out: ConntrackEntry[] = [];
      try {
        await runDump(this.#sock, seq, b.bytes(), {
          clock: () => performance.now(),
          deadline: performance.now() + 5000,
          pollIntervalMs: 200,
          buffer: this.#buf,
          onMessage: (m) => out.push(decodeConntrack(m.payload.slice())),
          onFramingError: (reason) => {
            throw new Error(`conntrack dump: ${reason}`);
          },
        });
        return out;
      } catch (e) {
        if (!(e instanceof DumpRetryError) || attempt >= 5) throw e;
      }
    }
  }

  /** Deletes every entry (`IPCTNL_MSG_CT_DELETE` without a tuple, as `conntrack -F`). */
  async flush(): Promise<void> {
    const seq = this.#seq++;
    const b = new MessageBuilder();
    b.beginMessage(ctMsgType(IPCTNL_MSG_CT_DELETE), NLM_F_REQUEST | NLM_F_ACK, seq, AF_UNSPEC);
    b.endMessage();
    await this.#sock.send(b.bytes());
    const deadline = performance.now() + 5000;
    while (performance.now() < deadline) {
      const n = this.#sock.tryRecv(this.#buf) ??
        await this.#sock.recv(this.#buf, deadline - performance.now());
      if (n === null) continue;
      for (const m of parseMessages(this.#buf.subarray(0, n)).messages) {
        if (m.type !== NLMSG_ERROR || m.seq !== seq) continue;
        const { errno } = decodeError(m);
        if (errno !== 0) throw new ErrnoError(errno, "conntrack flush");
        return;
      }
    }
    throw new Error("conntrack flush: no answer within 5 s");
  }

  /** Closes both sockets. */
  close(): void {
    this.#sock.close();
    this.#events.close();
  }
}
