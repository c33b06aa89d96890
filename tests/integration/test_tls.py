"""OpenFlow over TLS on real Open vSwitch, following docs/operations.md's recipe:
a CA signs the controller's and the switch's certificates (openssl), the switch is
given its key, certificate and the CA with `ovs-vsctl set-ssl` and dials
`ssl:127.0.0.1:PORT`. A switch whose certificate another CA signed is refused
during the handshake and gets no flow; with the right one it is programmed.

`set-ssl` is one setting for the whole ovs-vswitchd: the test restores what was
there before (plain-TCP controllers of other bridges never read it).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from daemon_cmd import start

from sdnctl.client.api import get_status, wait_programmed

pytestmark = pytest.mark.ovs

POLICY = """\
version: 1
tenants:
  t1:
    segments:
      web: {vlan: 10, subnet: 10.9.10.0/24, gateway: 10.9.10.1}
vms:
  w1: {tenant: t1, segment: web, mac: "02:00:00:09:10:11", ip: 10.9.10.11, host: hv1}
  w2: {tenant: t1, segment: web, mac: "02:00:00:09:10:12", ip: 10.9.10.12, host: hv1}
"""


def make_pki(lab, where: Path) -> dict[str, Path]:
    """Two CAs; the controller and a switch signed by the first, a rogue switch by the
    second. The commands are the ones docs/operations.md gives."""
    where.mkdir()

    def ssl(*args: str) -> None:
        lab.sh(["openssl", *args], timeout=60)

    def ca(name: str) -> None:
        ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(where / f"{name}.key"), "-out", str(where / f"{name}.pem"),
            "-subj", f"/CN=sdnctl test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def leaf(name: str, signer: str) -> None:
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(where / f"{name}.key"),
            "-out", str(where / f"{name}.csr"), "-subj", f"/CN={name}")
        ssl("x509", "-req", "-in", str(where / f"{name}.csr"), "-days", "2",
            "-CA", str(where / f"{signer}.pem"), "-CAkey", str(where / f"{signer}.key"),
            "-CAcreateserial", "-out", str(where / f"{name}.pem"))

    ca("ca")
    ca("other-ca")
    leaf("controller", "ca")
    leaf("switch", "ca")
    leaf("rogue", "other-ca")
    return {p.stem: p for p in where.glob("*.pem")} | {
        p.stem + "-key": p for p in where.glob("*.key")}


def keep_ssl_settings(lab) -> None:
    """Register the restore of ovs-vswitchd's current SSL settings."""
    before = lab.sh(["ovs-vsctl", "get-ssl"])
    fields = dict(re.findall(r"^(Private key|Certificate|CA Certificate): (.*)$", before, re.M))

    def restore() -> None:
        if fields.get("Private key"):
            lab.sh(["ovs-vsctl", "set-ssl", fields["Private key"], fields["Certificate"],
                    fields["CA Certificate"]])
        else:
            lab.sh(["ovs-vsctl", "del-ssl"])

    lab.cleanup.add("ovs ssl settings", restore)


@pytest.mark.needs("openssl")
def test_a_switch_connects_over_tls_only_with_a_certificate_from_the_ca(lab) -> None:
    pki = make_pki(lab, lab.tmp / "pki")
    dpid, of_port = lab.random_dpid(), lab.free_port()
    topo = lab.write("topology.yaml", f"""\
        version: 1
        switches:
          hv1: {{dpid: {dpid}, role: hypervisor}}
        links: []
        """)
    policy = lab.write("policy.yaml", POLICY)
    bridge = lab.bridge(dpid)
    lab.port(bridge, 100, vm_id="w1")
    lab.port(bridge, 101, vm_id="w2")
    keep_ssl_settings(lab)
    daemon = start(lab, policy, topo, "--listen", f"ssl:127.0.0.1:{of_port}",
                   "--ctl-privkey", str(pki["controller-key"]), "--ctl-cert",
                   str(pki["controller"]), "--ca-cert", str(pki["ca"]))
    lab.wait_for(lambda: _status(daemon.api), 20, "the daemon answers")

    # 1. The switch's certificate comes from another CA: refused in the handshake.
    lab.sh(["ovs-vsctl", "set-ssl", str(pki["rogue-key"]), str(pki["rogue"]), str(pki["ca"])])
    lab.sh(["ovs-vsctl", "set-controller", bridge, f"ssl:127.0.0.1:{of_port}",
            "--", "set", "controller", bridge, "max_backoff=1000"])
    refused = lab.wait_for(
        lambda: (s := _status(daemon.api)) and s["counters"]["tls_handshakes_refused"] >= 2
        and s, 20, "two handshakes refused")
    assert not refused["switches"]["hv1"]["connected"]
    assert lab.flow_count(bridge) == 0
    assert "handshake refused" in daemon.log_text()
    assert "Traceback" not in daemon.log_text()  # one counted line, not a traceback per try

    # 2. Its own certificate: connected over TLS and programmed.
    lab.sh(["ovs-vsctl", "set-ssl", str(pki["switch-key"]), str(pki["switch"]), str(pki["ca"])])
    status = wait_programmed(daemon.api, ["hv1"], timeout=30)
    hv1 = status["switches"]["hv1"]
    assert hv1["connected"] and hv1["programmed"] and status["daemon"]["tls"]
    assert hv1["flows"] == lab.flow_count(bridge) > 0
    assert status["bindings"] == {"w1": "hv1:100", "w2": "hv1:101"}
    target = lab.sh(["ovs-vsctl", "get-controller", bridge]).strip()
    assert target == f"ssl:127.0.0.1:{of_port}"
    assert _controller_connected(lab, target)
    assert daemon.stop() == 0


def _status(api: str) -> dict | None:
    try:
        return get_status(api, timeout=1.0)
    except Exception:
        return None


def _controller_connected(lab, target: str, timeout: float = 10.0) -> bool:
    """OVSDB's own view of the controller connection (it lags by seconds, hence the wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = lab.sh(["ovs-vsctl", "--columns=is_connected", "find", "controller",
                      f'target="{target}"'])
        if "true" in out:
            return True
        time.sleep(0.2)
    return False
