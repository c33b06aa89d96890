"""The flow IR to and from os-ken OpenFlow 1.3 messages; the only place that knows both.

Forward: `flow_mod`, `group_mod`, `meter_mod`, `barrier` and `plan_update`, which
turns a `FlowSetDiff` into the ordered message list a switch should receive.
Backward: `parse_flow_stats`, `parse_group_desc`, `parse_meter_config` turn what
a switch reports into IR, so the daemon can diff what a switch holds against what
it should hold, and `verify` can simulate dumped flows.

The IR allows a few spellings that mean the same OpenFlow entry (an IPv4 prefix as
`a/len` or `(a, mask)`, a full mask, a meter listed after the actions it precedes).
`normalize_flow` picks the one the switch reports back, so that a compiled flow and
its dump compare equal; compare only normalized flows.

Messages are built for any object with `.ofproto` and `.ofproto_parser` (an os-ken
Datapath, or `ofproto_protocol.ProtocolDesc` in tests).
"""

from __future__ import annotations

from sdnctl.southbound.ofp.actions import (  # noqa: F401
    _ct_from_ofp,
    _normalize_action,
    _stage,
    action_from_ofp,
    action_to_ofp,
    actions_from_instructions,
    instructions_for,
    normalize_actions,
    normalize_flow,
    normalize_flowset,
    normalize_group,
)
from sdnctl.southbound.ofp.dump import (  # noqa: F401
    ForeignFlow,
    flow_from_stats,
    group_from_desc,
    meter_from_config,
    owners_of,
    parse_flow_stats,
    parse_group_desc,
    parse_meter_config,
)
from sdnctl.southbound.ofp.fields import (  # noqa: F401
    _ALL_COOKIE_BITS,
    _CT_ZONE_BITS,
    _GROUP_TYPE_NAMES,
    _IP_FIELDS,
    _MAC_FIELDS,
    BUNDLE_FLAGS,
    CT_STATE_BITS,
    FIELD_BITS,
    GROUP_TYPES,
    Datapath,
    OfpMsg,
    Unrepresentable,
    _full_mask,
    _mac_int,
    _mac_str,
    _normalize_value,
    _vlan_from_ofp,
    _vlan_to_ofp,
    ct_state_from_ofp,
    ct_state_to_ofp,
    match_from_ofp,
    match_to_ofp,
    normalize_match,
)
from sdnctl.southbound.ofp.messages import (  # noqa: F401
    barrier,
    bucket_to_ofp,
    flow_mod,
    group_mod,
    meter_band_drops,
    meter_mod,
    meter_stats_request,
    packet_out,
    state_requests,
)
from sdnctl.southbound.ofp.update import (  # noqa: F401
    Outgoing,
    bundle_ctrl,
    foreign_delete,
    foreign_to_delete,
    plan_update,
    send_outgoing,
)
