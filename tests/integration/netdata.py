"""The small one-hypervisor policy several daemon tests share (tenant t1: web, db)."""

POLICY = """\
version: 1
tenants:
  t1:
    default: deny
    segments:
      web: {vlan: 10, subnet: 10.9.10.0/24, gateway: 10.9.10.1}
      db:  {vlan: 20, subnet: 10.9.20.0/24, gateway: 10.9.20.1}
    groups:
      web: {labels: {tier: web}}
      db:  {labels: {tier: db}}
    rules:
      - {from: any, to: web, allow: [tcp/80, icmp]}
      - {from: web, to: db, allow: [tcp/5432]}
vms:
  w1: {tenant: t1, segment: web, mac: "02:00:00:09:10:11", ip: 10.9.10.11,
       labels: {tier: web}, host: hv1}
  w2: {tenant: t1, segment: web, mac: "02:00:00:09:10:12", ip: 10.9.10.12,
       labels: {tier: web}, host: hv1}
  d1: {tenant: t1, segment: db, mac: "02:00:00:09:20:11", ip: 10.9.20.11,
       labels: {tier: db}, host: hv1}
"""


# A dual-stack policy over topologies/overlay.topology.yaml: IPv6 on VLAN, overlay
# and both-kinds segments, routed (gateway6) and not, a rule for one family, and a
# segment routed in IPv4 only. Held to OVS by tests/integration/test_sim_ovs.py.
DUAL_STACK_POLICY = """\
version: 1
tenants:
  acme:
    segments:
      web: {vni: 5010, subnet: 10.1.10.0/24, gateway: 10.1.10.1,
            subnet6: "2001:db8:10::/64", gateway6: "2001:db8:10::1"}
      app: {vlan: 20, vni: 5020, subnet: 10.1.20.0/24, gateway: 10.1.20.1,
            subnet6: "2001:db8:20::/64", gateway6: "2001:db8:20::1"}
      db:  {vlan: 30, subnet: 10.1.30.0/24, gateway: 10.1.30.1,
            subnet6: "2001:db8:30::/64", gateway6: "2001:db8:30::1"}
      ops: {vlan: 31, subnet: 10.1.31.0/24, gateway: 10.1.31.1, subnet6: "2001:db8:31::/64"}
    groups:
      web: {labels: {tier: web}}
      app: {labels: {tier: app}}
      db:  {labels: {tier: db}}
    rules:
      - {from: any, to: web, allow: [tcp/80, icmp]}
      - {from: web, to: app, allow: [tcp/8080]}
      - {from: app, to: db, allow: [tcp/5432], family: ipv6}
      - {from: app, to: db, allow: [udp/53], family: ipv4}
  gamma:
    default: allow
    segments:
      g: {vlan: 40, vni: 7040, subnet: 10.4.0.0/24, subnet6: "2001:db8:40::/64"}
vms:
  web1: {tenant: acme, segment: web, mac: "02:00:00:00:10:11", ip: 10.1.10.11,
         labels: {tier: web}, host: hv1}
  web2: {tenant: acme, segment: web, mac: "02:00:00:00:10:12", ip: 10.1.10.12,
         ip6: "2001:db8:10::12", labels: {tier: web}, host: hv2}
  app1: {tenant: acme, segment: app, mac: "02:00:00:00:20:11", ip: 10.1.20.11,
         labels: {tier: app}, host: hv2}
  app2: {tenant: acme, segment: app, mac: "02:00:00:00:20:12", ip: 10.1.20.12,
         labels: {tier: app}, host: hv1}
  db1:  {tenant: acme, segment: db,  mac: "02:00:00:00:30:11", ip: 10.1.30.11,
         labels: {tier: db}, host: hv2}
  db2:  {tenant: acme, segment: db,  mac: "02:00:00:00:30:12", ip: 10.1.30.12,
         labels: {tier: db}, host: hv1}
  ops1: {tenant: acme, segment: ops, mac: "02:00:00:00:31:11", ip: 10.1.31.11, host: hv2}
  g1:   {tenant: gamma, segment: g, mac: "02:00:00:00:40:11", ip: 10.4.0.11, host: hv1}
  g2:   {tenant: gamma, segment: g, mac: "02:00:00:00:40:12", ip: 10.4.0.12, host: hv2}
  g3:   {tenant: gamma, segment: g, mac: "02:00:00:00:40:13", ip: 10.4.0.13, host: hv3}
"""
