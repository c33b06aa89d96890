"""DHCPv4 answered from the policy: no DHCP server runs anywhere.

`wire` reads a client's frame and writes the answer's frame (bytes in, bytes out);
`lease` says what a VM is told (address, router, DNS, MTU, lease) and which answer a
request gets. Both are pure: the controller's packet-in handler
(`sdnctl.app.dhcp`) only glues them to the switch.
"""
