/**
 * Run inside a test's network namespace: opens a listener and a connection
 * on loopback (IPv4 and IPv6), asks {@linkcode SockDiagTable} about the
 * connection's 4-tuple, its reverse, the listener's port as a client port,
 * and a tuple nobody has, and prints the answers as JSON.
 *
 * @module
 */
import { SockDiagTable } from "../../lib/nat/sock_diag.ts";

const out: Record<string, boolean> = {};
const table = SockDiagTable.open();
for (
  const [family, host, bytes] of [
    ["ipv4", "127.0.0.1", new Uint8Array([127, 0, 0, 1])],
    ["ipv6", "::1", new Uint8Array([...new Array(15).fill(0), 1])],
  ] as const
) {
  const listener = Deno.listen({ hostname: host, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepted = listener.accept();
  const conn = await Deno.connect({ hostname: host, port });
  const server = await accepted;
  const local = (conn.localAddr as Deno.NetAddr).port;
  const ask = (sport: number, dport: number) =>
    table.hasSocket({ family, src: bytes, dst: bytes, sport, dport });
  out[`${family} client`] = await ask(local, port);
  out[`${family} server side`] = await ask(port, local);
  out[`${family} listener port as client`] = await ask(port, 9);
  out[`${family} nobody`] = await ask(local === 65000 ? 65001 : 65000, 9);
  conn.close();
  server.close();
  listener.close();
}
table.close();
console.log(JSON.stringify(out));
