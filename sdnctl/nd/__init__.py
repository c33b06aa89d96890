"""IPv6 neighbour discovery answered from the policy: no router daemon runs anywhere.

`wire` reads a VM's solicitation and writes the advertisement's frame (bytes in,
bytes out); `answer` says which advertisement a solicitation gets. Both are pure:
the controller's packet-in handler (`sdnctl.live.dhcp`, the one controller path)
only glues them to the switch, and the simulator asks `answer` what the
controller would say.
"""
