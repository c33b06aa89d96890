"""`sdnctl status` as people read it: the daemon's /status document as tables.

Times are local wall-clock times with their age; anything missing reads `-`.
`sdnctl status --json` prints the document itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

MAX_EVENTS = 15


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  ") -> str:
    """Left-aligned columns separated by two spaces; the header underlined."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def when(stamp: float | None, now: float | None = None) -> str:
    """`HH:MM:SS (3m ago)`, or `-`."""
    if not stamp:
        return "-"
    now = time.time() if now is None else now
    return f"{time.strftime('%H:%M:%S', time.localtime(stamp))} ({age(now - stamp)} ago)"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _switch_state(sw: Mapping[str, Any]) -> str:
    if sw.get("programmed"):
        return "programmed"
    return "connected" if sw.get("connected") else "DOWN"


def _ha_line(ha: Mapping[str, Any], now: float) -> str:
    """One of several replicas (sdnctl/ha/): who leads, and whether this one could."""
    me = ha.get("replica", "?")
    gen = ha.get("generation")
    if ha.get("leading"):
        since = when(ha.get("leading_since"), now)
        text = f"replica   {me}: LEADER (generation {gen}) since {since}"
    else:
        text = f"replica   {me}: follower of {ha.get('leader') or 'nobody'}" + (
            f" (generation {gen})" if gen else "")
    if ha.get("refusal"):
        text += f"; will not take over: {ha['refusal']}"
    if not ha.get("etcd_ok"):
        text += f"; etcd unreachable: {ha.get('last_error')}"
    return text


def _ovsdb_line(ovsdb: Mapping[str, Any], now: float) -> str:
    """The binding monitor's connection: binding changes go unseen while it is down."""
    again = f", {ovsdb['reconnects']} reconnects" if ovsdb.get("reconnects") else ""
    if ovsdb.get("connected"):
        return f"ovsdb     {ovsdb.get('remote')} connected since {when(ovsdb.get('since'), now)}" \
            + again
    return (f"ovsdb     {ovsdb.get('remote')} DISCONNECTED since {when(ovsdb.get('since'), now)}"
            f"{again}: {ovsdb.get('last_error') or '?'} (binding changes go unseen)")


def mirrors_table(mirrors: Sequence[Mapping[str, Any]]) -> str:
    """`sdnctl mirror list` and the status's mirrors section: one row per Mirror."""
    if not mirrors:
        return "  no mirror"
    return table(["MIRROR", "BRIDGE", "VM", "DIRECTION", "SELECTS", "TO", "PACKETS"], [
        [m.get("name"), m.get("bridge"), m.get("vm") or "-", m.get("direction"),
         ",".join(m.get("selects") or []) or "(port gone)",
         (f"{m.get('output')} (netns {m['netns']})" if m.get("netns")
          else m.get("output") or "(none)"),
         "-" if m.get("tx_packets") is None else m["tx_packets"]]
        for m in mirrors])


def render_status(status: Mapping[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    out: list[str] = []
    daemon = status.get("daemon") or {}
    if daemon:
        out.append(f"daemon    up {age(float(daemon.get('uptime_s', 0)))}, OpenFlow "
                   f"{daemon.get('listen', '?')}{' (TLS)' if daemon.get('tls') else ''}, "
                   f"API {daemon.get('api', '?')}"
                   f"{' (token)' if daemon.get('api_token') else ''}")
    ha = status.get("ha") or {}
    if ha.get("enabled"):
        out.append(_ha_line(ha, now))
    pol = status.get("policy") or {}
    out.append(f"policy    {pol.get('file')}  sha256 {str(pol.get('sha256'))[:12]}  "
               f"loaded {when(pol.get('loaded_at'), now)}")
    if pol.get("enforced_in_s") is not None:
        out.append(f"          last edit enforced on every switch "
                   f"{_ms(pol['enforced_in_s'])} after it was seen")
    refused = pol.get("last_refused")
    if refused:
        problems = refused.get("problems") or ["?"]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        out.append(f"          last refused edit {when(refused.get('time'), now)}: "
                   f"{problems[0]}{more}")
    else:
        out.append("          no edit refused")
    topo = status.get("topology") or {}
    if topo:
        out.append(f"topology  {topo.get('file')}  sha256 {str(topo.get('sha256'))[:12]}  "
                   f"loaded {when(topo.get('loaded_at'), now)}")
    ovsdb = status.get("ovsdb")
    if ovsdb:
        out.append(_ovsdb_line(ovsdb, now))
    ipfix = status.get("ipfix")
    if ipfix:
        out.append(f"ipfix     to {ipfix.get('collector')}, 1 packet in {ipfix.get('sampling')}, "
                   f"from {', '.join(ipfix.get('switches') or []) or 'no switch yet'}"
                   + (f" (error: {ipfix['last_error']})" if ipfix.get("last_error") else ""))
    log = status.get("connection_log")
    if log and (log.get("file") or any((log.get("records") or {}).values())):
        records = log.get("records") or {}
        out.append(f"conn log  {records.get('allow', 0)} allowed, {records.get('deny', 0)} "
                   f"denied recorded; lost {log.get('meter_drops', 0)} to the switches' "
                   f"meters, {log.get('writer_drops', 0)} to the writer"
                   + (f" ({log['file']})" if log.get("file") else ""))

    switches = status.get("switches") or {}
    rows = []
    for name, sw in sorted(switches.items()):
        installed = sw.get("flows_installed")
        flows = str(sw.get("flows", 0)) + ("" if installed in (None, sw.get("flows"))
                                           else f" (holds {installed})")
        rows.append([
            name, f"{int(sw.get('dpid', 0)):#x}", _switch_state(sw), flows,
            sw.get("groups", 0), sw.get("meters", 0), when(sw.get("last_update"), now),
            _ms(sw.get("last_update_s")), sw.get("flow_mods_sent", 0), sw.get("packet_ins", 0),
            ",".join(map(str, sw.get("ports_down") or [])) or "-",
        ])
    out += ["", f"switches ({sum(bool(s.get('connected')) for s in switches.values())} of "
            f"{len(switches)} connected, "
            f"{sum(bool(s.get('programmed')) for s in switches.values())} programmed)"]
    out.append(table(["SWITCH", "DPID", "STATE", "FLOWS", "GROUPS", "METERS", "LAST UPDATE",
                      "TOOK", "FLOW-MODS", "PACKET-INS", "PORTS DOWN"], rows))
    if status.get("strangers"):
        out.append(f"  not in the topology, left alone: dpid {', '.join(status['strangers'])}")

    vms = status.get("vms")
    if vms is None:  # an older daemon: bindings only
        vms = {vm: {"at": at} for vm, at in (status.get("bindings") or {}).items()}
    bound = sum(v.get("at") is not None for v in vms.values())
    out += ["", f"VMs ({bound} of {len(vms)} bound)"]
    out.append(table(["VM", "TENANT", "SEGMENT", "AT"], [
        [name, v.get("tenant", "-"), v.get("segment", "-"), v.get("at") or "(not bound)"]
        for name, v in sorted(vms.items())]))
    unknown = status.get("unknown_ports") or []
    out += ["", f"unknown ports ({len(unknown)})"]
    if unknown:
        out.append(table(["SWITCH:PORT", "INTERFACE", "VM-ID", "WHY REFUSED"], [
            [f"{p.get('switch')}:{p.get('port')}", p.get("interface"), p.get("vm"),
             p.get("reason")] for p in unknown]))
    unclaimed = status.get("unclaimed_ports") or []
    if unclaimed:
        out.append("ports bound to no VM (no vm-id): " + ", ".join(
            f"{p.get('switch')}:{p.get('port')} ({p.get('interface')})" for p in unclaimed))
    if status.get("down_ports"):
        out.append(f"link ports down: {', '.join(status['down_ports'])}")
    mirrors = status.get("mirrors") or []
    if mirrors:
        out += ["", f"mirrors ({len(mirrors)})", mirrors_table(mirrors)]

    counters = status.get("counters") or {}
    if counters:
        reloads = counters.get("policy_reloads") or {}
        out += ["", "counters"]
        out.append("  policy reloads: " + ", ".join(f"{k} {v}" for k, v in reloads.items()))
        drops = counters.get("dropped_packets") or {}
        text = "; ".join(f"{tenant}: " + ", ".join(f"{stage} {n}" for stage, n in by.items())
                         for tenant, by in drops.items())
        last = counters.get("flow_stats_last_poll")
        out.append(f"  dropped by policy (flow stats, {when(last, now)}): {text or 'none'}")
        pins = counters.get("packet_ins") or {}
        out.append(f"  packet-ins (dropped): {sum(pins.values())}"
                   + (f" ({', '.join(f'{k} {v}' for k, v in pins.items())})" if pins else ""))
        if counters.get("tls_handshakes_refused"):
            out.append(f"  TLS handshakes refused: {counters['tls_handshakes_refused']}")

    events = list(status.get("events") or [])
    shown = events[-MAX_EVENTS:]
    out += ["", f"recent events (last {len(shown)} of {len(events)})"]
    for e in shown:
        stamp = time.strftime("%H:%M:%S", time.localtime(float(e.get("time", 0))))
        out.append(f"  {stamp}  {str(e.get('kind', '')):<14} {e.get('message', '')}")
    return "\n".join(out) + "\n"
