import assert from "node:assert/strict";
import {
  iptablesScript,
  nftEndpointChain,
  nftScript,
  sepChain,
  svcChain,
} from "../../testbed/nat_shapes.ts";

const ep = (addr: string, port = 8080) => ({ addr, port });
const web = { name: "web", vip: "198.19.0.10", port: 80, endpoints: [ep("198.18.2.2")] };
const three = { ...web, endpoints: [ep("198.18.2.2"), ep("198.18.2.3"), ep("198.18.2.4")] };
const web6 = { name: "web", vip: "2001:db8:cafe::10", port: 80, endpoints: [ep("2001:db8:2::2")] };

Deno.test("iptablesScript plain: deletes the previous rules and appends the next in one COMMIT", () => {
  const moved = { ...web, endpoints: [ep("198.18.2.9")] };
  const lines = iptablesScript("plain", "ipv4", [web], [moved], false, "198.18.1.0/24")
    .split("\n");
  assert.deepEqual(lines, [
    "*nat",
    "-D PREROUTING -d 198.19.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.18.2.9:8080",
    "-A PREROUTING -d 198.19.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.18.2.2:8080",
    "COMMIT",
    "",
  ]);
  assert.throws(() => iptablesScript("plain", "ipv4", [three], [], true, "198.18.1.0/24"));
});

Deno.test("iptablesScript kube-iptables: statistic 1/n down to the last endpoint, masquerade mark, stale chains removed, hooks only the first time", () => {
  const first = iptablesScript("kube-iptables", "ipv4", [three], [], true, "198.18.1.0/24");
  const svc = svcChain(three);
  const jumps = first.split("\n").filter((l) => l.startsWith(`-A ${svc} `));
  assert.equal(jumps.length, 4);
  assert.match(jumps[0]!, /! -s 198\.18\.1\.0\/24 .* -j KUBE-MARK-MASQ$/);
  assert.match(jumps[1]!, /--probability 0\.3333333333 -j KUBE-SEP-/);
  assert.match(jumps[2]!, /--probability 0\.5000000000 -j KUBE-SEP-/);
  assert.doesNotMatch(jumps[3]!, /statistic/);
  assert.match(first, /-I PREROUTING 1 .*-j KUBE-SERVICES/);
  assert.match(first, /-A KUBE-SEP-\S+ .*-j DNAT --to-destination 198\.18\.2\.4:8080/);
  const next = iptablesScript("kube-iptables", "ipv4", [web], [three], false, "198.18.1.0/24");
  assert.doesNotMatch(next, /-I PREROUTING/);
  const gone = [sepChain(three, ep("198.18.2.3")), sepChain(three, ep("198.18.2.4"))];
  for (const c of gone) assert.ok(next.includes(`:${c} - [0:0]\n`) && next.includes(`-X ${c}\n`));
  assert.ok(!next.includes(`-X ${sepChain(web, ep("198.18.2.2"))}`), "a live chain stays");
  assert.ok(next.endsWith("COMMIT\n"));
});

Deno.test("nftScript: service-ips vmap element, numgen over the endpoints, stale chains and elements deleted", () => {
  const first = nftScript("ipv4", [three], [], true, "198.18.1.0/24");
  assert.match(
    first,
    /add rule ip kube-proxy services ip daddr \. meta l4proto \. th dport vmap @service-ips/,
  );
  assert.match(
    first,
    /numgen random mod 3 vmap \{ 0 : goto endpoint-\S+ , 1 : goto \S+ , 2 : goto \S+ \}/,
  );
  assert.match(first, /dnat to 198\.18\.2\.3:8080/);
  const next = nftScript("ipv4", [], [three], false, "198.18.1.0/24");
  assert.doesNotMatch(next, /add table/);
  assert.match(next, /delete element ip kube-proxy service-ips \{ 198\.19\.0\.10 \. tcp \. 80 \}/);
  assert.match(
    next,
    new RegExp(`delete chain ip kube-proxy ${nftEndpointChain(three, ep("198.18.2.4"))}`),
  );
});

Deno.test("nftScript IPv6: table ip6, ip6 matches, bracketed dnat, no colon in chain names", () => {
  const s = nftScript("ipv6", [web6], [], true, "2001:db8:1::/64");
  assert.match(s, /add table ip6 kube-proxy/);
  assert.match(s, /ip6 saddr != 2001:db8:1::\/64 jump mark-for-masquerade/);
  assert.match(s, /dnat to \[2001:db8:2::2\]:8080/);
  assert.equal(nftEndpointChain(web6, web6.endpoints[0]!).includes(":"), false);
});
