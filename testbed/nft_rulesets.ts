/**
 * Rule sets in the shapes real tools write, for the nf_tables reader's
 * kernel tests and fixtures: native nftables (kube-proxy nftables-mode
 * verdict maps, numgen, intervals, a concatenated interval map, an inet
 * table, a dormant table) and iptables-nft (kube-proxy iptables-mode
 * chains, comment/statistic/owner/addrtype matches, DNAT/REDIRECT/MARK
 * targets). Load them with `nft -f -` and `iptables-restore`.
 *
 * @module
 */

/** Native nftables: `nft -f -`. */
export const NFT_RULESET = `table ip kp {
  set sips { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 192.168.1.1-192.168.1.9, 172.16.0.5 }; }
  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; elements = { 10.96.0.10 . tcp . 80 : goto svc1 }; }
  map cc { type ipv4_addr . inet_service : verdict; flags interval; elements = { 10.1.0.0/16 . 80-90 : goto svc1 }; }
  chain ep1 {
    meta l4proto tcp dnat to 10.244.1.5:8080
  }
  chain ep2 {
    dnat to 10.244.1.6
    tcp dport 5 redirect to :99

    ip saddr & 255.255.0.0 == 10.1.0.0 accept
    tcp dport 100-200 drop
    ct state established accept
    jhash ip saddr mod 4 seed 0x1 offset 1 > 2 accept
    meta mark & 0xff00 == 0x100 accept
  }
  chain svc1 {
    numgen random mod 2 vmap { 0 : goto ep1, 1 : goto ep2 }
  }
  chain services {
    ip daddr . meta l4proto . th dport vmap @service-ips
    ip daddr . th dport vmap @cc
    ip daddr @sips counter return
    ip daddr != @sips tcp dport 22 accept
  }
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    jump services
  }
  chain out {
    type nat hook output priority -100; policy accept;
    jump services
  }
  chain raw {
    type filter hook prerouting priority raw; policy accept;
    meta mark set 0x10 ct mark set meta mark
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    meta l4proto tcp oifname "eth0" masquerade to :1000-2000
    meta l4proto tcp snat to 1.2.3.4-1.2.3.8:5-6
  }
}
`;

/** An inet table and a dormant ip6 table: `nft -f -`. */
export const NFT_INET_RULESET = `table inet fw {
  chain pre {
    type nat hook prerouting priority -100; policy accept;
    ip6 daddr fd00::1 tcp dport 80 dnat ip6 to [fd00::2]:8080
    ip daddr 10.0.0.1 tcp dport 80 dnat ip to 10.0.0.2
    limit rate 10/second accept
  }
}
table ip6 sleepy {
  flags dormant;
  chain pre {
    type nat hook prerouting priority -150; policy accept;
  }
}
`;

/** iptables-nft: `iptables-restore`. */
export const IPTABLES_RULESET = `*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAA - [0:0]
:KUBE-SEP-1 - [0:0]
:KUBE-SEP-2 - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-AAA
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-AAA ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-AAA -m comment --comment "default/web:http -> 10.244.1.5:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-1
-A KUBE-SVC-AAA -m comment --comment "default/web:http -> 10.244.1.6:8080" -j KUBE-SEP-2
-A KUBE-SEP-1 -s 10.244.1.5/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-1 -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-SEP-2 -p tcp -m tcp -j DNAT --to-destination 10.244.1.6:8080
-A OUTPUT -p tcp -m owner ! --uid-owner 1000 -d 1.2.3.4 --dport 80 -j REDIRECT --to-ports 3128
-A OUTPUT -m mark --mark 0x1/0x1 -j RETURN
-A PREROUTING -i eth0 -p tcp --dport 81:90 -j DNAT --to-destination 10.1.1.1-10.1.1.3:80-81
COMMIT
`;
