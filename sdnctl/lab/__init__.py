"""The Mininet lab (`sdnctl lab run`): real OVS, real traffic, checked against the policy.

plan    names and ports of everything the lab builds (pure)
build   the Mininet network on userspace OVS, VM bindings in OVSDB, teardown
agent   the stdlib-only probe agent that runs inside each host
probe   runs the agents: every ordered VM pair x every probe service
report  verdicts against `reach()`, the matrix table, the JSON report
run     run_lab(): the whole thing, with the controller daemon, torn down in `finally`

Only `build`, `probe` and `run` touch the machine; nothing here imports mininet at
package import time, so `sdnctl.lab.plan` and `sdnctl.lab.report` stay cheap.
"""
