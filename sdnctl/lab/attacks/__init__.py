"""The hostile-VM suite: a VM attacks the data plane and the controller on real OVS.

scene      who is who: addresses, gateways, fabric labels (pure, JSON for the agent)
catalogue  the attacks by name: what each tries (data only)
frames     scapy builders of each attack's frames (runs inside the attacker's VM)
flood      frame pools for the packet-in storm and the packet-path fuzz
hostile    the attacker agent inside the VM: builds and sends on command
capture    tcpdump inside the victims' namespaces
judge      which captured frames leaked (the marker, or not explained by the policy)
checks     allowed traffic, canaries and ARP caches
measure    switch counters, packet-ins (snoop), status API latency, daemon memory
session    build the lab, start the daemon and agents, tear everything down
suite      run attacks, collect results, format the table

`python -m sdnctl.lab.attacks` runs the whole suite (root, OVS running).
The lab's topology and policy are in `data/`; docs/threat-model.md says what it proves.
"""
