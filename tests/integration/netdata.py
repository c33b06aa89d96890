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
