"""What a switch holds, from its stats replies, as data for `verify` and `/metrics`.

`dump_to_json` turns flow stats, group and meter descriptions into the IR's JSON
(`sdnctl.flows.flowset_to_json`'s shape, which `sdnctl.flowjson` reads back), so
`sdnctl verify` can diff it against intent and simulate it. Flows are parsed with
`sdnctl.southbound.ofp`; a flow the daemon would call foreign only because of its
cookie (0: someone added it by hand) or an undeclared goto is still parsed, since
it is what the switch does. What cannot be expressed in the IR at all (an unknown
table, field or action) is listed under `unparsed`, described, and counted as a
difference by verify. Every flow carries its packet and byte counters.

`drop_samples` picks the drop flows (no instruction) out of flow stats, with the
tenant that owns each, for the dropped-by-policy counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ofproto_v1_3_parser as parser

from sdnctl.flowjson import lenient_flow
from sdnctl.flows import FlowSet, flow_to_json, flowset_to_json
from sdnctl.southbound import ofp as sb
from sdnctl.southbound.ofp.controller2 import NXActionMeteredController


@dataclass(frozen=True, slots=True)
class DropSample:
    """One drop flow's counters in one poll. `key` identifies the flow on its switch."""

    key: object
    tenant: str  # "" for flows no tenant owns (base drops shared by all)
    stage: str
    packets: int
    bytes: int


def _describe_match(match: Any) -> dict[str, object]:
    try:
        return {str(k): v if isinstance(v, int | str) else str(v) for k, v in match.items()}
    except Exception:  # a match os-ken parsed but cannot list: keep its text
        return {"raw": str(match)}


def dump_to_json(
    switch: str,
    flow_stats: Iterable[Any],
    group_descs: Iterable[Any],
    meter_configs: Iterable[Any],
    desired: FlowSet | None,
) -> dict[str, object]:
    """Stats bodies -> {"switch", "flows", "groups", "meters", "unparsed"}; owners come
    from the desired FlowSet's cookies (a cookie it does not know reads `cookie:0x...`)."""
    flow_owners, group_owners, meter_owners = sb.owners_of(desired or FlowSet.of(switch, ()))
    flows: list[dict[str, object]] = []
    unparsed: list[dict[str, object]] = []
    for st in flow_stats:
        cookie = int(st.cookie)
        try:
            flow = lenient_flow(
                sb._stage(st.table_id), int(st.priority), sb.match_from_ofp(st.match),
                sb.normalize_actions(sb.actions_from_instructions(st.instructions)),
                flow_owners.get(cookie, f"cookie:{cookie:#x}"), cookie,
            )
        except (sb.Unrepresentable, ValueError, KeyError) as exc:
            unparsed.append({
                "table": int(st.table_id), "priority": int(st.priority), "cookie": cookie,
                "match": _describe_match(st.match), "reason": str(exc),
                "n_packets": int(st.packet_count),
            })
            continue
        entry = flow_to_json(flow)
        entry["cookie"] = cookie  # as the switch has it (a lenient flow keeps 0)
        entry["n_packets"] = int(st.packet_count)
        entry["n_bytes"] = int(st.byte_count)
        flows.append(entry)
    groups = FlowSet.of(switch, (), tuple(sb.parse_group_desc(group_descs, group_owners)),
                     tuple(sb.parse_meter_config(meter_configs, meter_owners)))
    out = flowset_to_json(groups)
    out["flows"] = flows
    out["unparsed"] = unparsed
    return out


def drops(instructions: Iterable[Any]) -> bool:
    """Whether a flow drops what it matches: no instruction, or only a metered copy to
    the connection log (sdnctl.compile.connlog: a logged denial is still a denial)."""
    for inst in instructions:
        if not (isinstance(inst, parser.OFPInstructionActions)
                and all(isinstance(a, NXActionMeteredController) for a in inst.actions)):
            return False
    return True


def drop_samples(
    flow_stats: Iterable[Any], owners: Mapping[int, str], tenant_of: Callable[[str], str],
) -> list[DropSample]:
    """The drop flows among `flow_stats`, each with its owner's tenant and its stage."""
    samples = []
    for st in flow_stats:
        if not drops(st.instructions):
            continue
        owner = owners.get(int(st.cookie), "")
        try:
            stage = sb._stage(st.table_id)
        except sb.Unrepresentable:
            stage = f"table{st.table_id}"
        key = (int(st.table_id), int(st.priority), int(st.cookie), str(st.match))
        samples.append(DropSample(key, tenant_of(owner) if owner else "", stage,
                                  int(st.packet_count), int(st.byte_count)))
    return samples
