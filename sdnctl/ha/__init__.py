"""Controller replicas: one leader at a time, held through a lease in etcd.

- `model`     the values and the decisions (who may lead, which OpenFlow role and
              generation id to ask a switch for, whether a generation is newer). Pure.
- `election`  the campaign: lease, keepalive, leadership key, published revision;
              one thread per replica, behind a small `Store` interface.
- `etcd`      that interface on etcd's v3 HTTP gateway (etcd3gw).
- `server`    a throwaway etcd for tests and lab experiments.

Without `sdnctl run --etcd`, none of this runs: a single replica leads on its own.
"""
