"""The peers sdnctl is compared with: Faucet (faucet.yaml generator, process) and OVN."""
