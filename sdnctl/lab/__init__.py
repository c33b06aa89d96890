"""The Mininet lab (`sdnctl lab run`): real OVS, real traffic, checked against the policy.

plan        names and ports of everything the lab builds (pure)
names       name prefixes, free ports and datapath ids that clash with nobody's
session     LabSession: everything a lab makes, undone in reverse order, whatever happens
build       the Mininet network on userspace OVS, VM bindings in OVSDB, teardown
controller  the daemon's command line; the wait until it has programmed the lab
agent       the stdlib-only probe agent that runs inside each host (icmp: its wire helpers)
probe       runs the agents: every ordered VM pair x every probe service
report      verdicts against `reach()`, the matrix table, the JSON report
run         run_lab(): the whole thing, in one LabSession

Only `names`, `session`, `build`, `probe` and `run` touch the machine; nothing here
imports mininet at package import time, so `sdnctl.lab.plan` and `sdnctl.lab.report`
stay cheap.
"""
