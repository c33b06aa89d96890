"use strict";
// The sdnctl dashboard: reads /network, /matrix, /edits, /connections, /mirrors every
// REFRESH_MS and /explain on a click; the mirror form and buttons POST /mirrors/start|stop.
// Plain DOM, no libraries; data is only ever inserted as text, never as HTML.
// URL fragment options: #token=T (moved to sessionStorage, then dropped from the URL),
// service=tcp/80|all, explain=FROM,TO,SERVICE (open that explanation on load).
// When a refresh fails the page keeps the last data but says it is stale: switch
// states become "unknown", nothing stays green, a banner says since when.

const REFRESH_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "sdnctl-token";
const PALETTE = ["#8dd3c7", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69",
                 "#fccde5", "#d9d9d9", "#bc80bd", "#ccebc5", "#ffed6f"];

const ui = {
  network: null, matrix: null, edits: null,
  service: null,        // the service shown, or "all"
  selected: null,       // {from, to, service} being explained
  refreshes: 0,
  timer: null,
  lastOk: null,         // Unix time of the last refresh that succeeded
  failedSince: null,    // Unix time of the first failed refresh since then
};

// ---- small helpers ------------------------------------------------------------------

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  append(e, kids);
  return e;
}

function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  setAttrs(e, attrs);
  append(e, kids);
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.setAttribute("class", v);
    else if (k === "text") e.textContent = String(v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(e, kids) {
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
}

function replace(id, ...kids) {
  const box = document.getElementById(id);
  box.replaceChildren();
  append(box, kids);
  return box;
}

// HH:MM:SS, 24-hour local time, as `sdnctl status` prints it (not the browser's locale).
function clock(t) {
  if (!t) return "-";
  const d = new Date(t * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()]
    .map(n => String(n).padStart(2, "0")).join(":");
}

function now() {
  return Date.now() / 1000;
}

function colourOf(name, names) {
  const i = names.indexOf(name);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

function fragment() {
  return new URLSearchParams(location.hash.slice(1));
}

function setFragment(params) {
  params.delete("token");
  const text = params.toString();
  history.replaceState(null, "", location.pathname + location.search + (text ? "#" + text : ""));
}

// ---- the token and fetching -----------------------------------------------------------

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

class NeedToken extends Error {}

async function get(path) {
  const headers = {Accept: "application/json"};
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const resp = await fetch(path, {headers, cache: "no-store"});
  if (resp.status === 401) throw new NeedToken("the API needs a token");
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) throw new Error(`${path}: ${(body && body.error) || resp.statusText}`);
  return body;
}

// A command (the mirror buttons): POST a JSON object, with the token like every read.
async function post(path, doc) {
  const headers = {Accept: "application/json", "Content-Type": "application/json"};
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const resp = await fetch(path, {method: "POST", headers, body: JSON.stringify(doc),
                                  cache: "no-store"});
  if (resp.status === 401) throw new NeedToken("the API needs a token");
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) throw new Error((body && body.error) || resp.statusText);
  return body;
}

function showLogin(message) {
  document.getElementById("login").hidden = false;
  document.body.dataset.needsToken = "1";
  replace("error", message);
}

// ---- topology -----------------------------------------------------------------------------

function drawTopology(net) {
  const byLayer = new Map();
  for (const sw of net.switches) {
    if (!byLayer.has(sw.layer)) byLayer.set(sw.layer, []);
    byLayer.get(sw.layer).push(sw);
  }
  const layers = [...byLayer.keys()].sort((a, b) => b - a);  // fabric on top, hypervisors last
  const vmsOf = new Map(net.switches.map(s => [s.name, []]));
  const unbound = [];
  for (const vm of net.vms) (vm.switch && vmsOf.has(vm.switch) ? vmsOf.get(vm.switch) : unbound)
    .push(vm);
  const PER_ROW = 3, VW = 64, VH = 30, SW = 130, SH = 34, GAP = 30, ROW = 90;
  const slot = Math.max(SW, PER_ROW * (VW + 6)) + GAP;
  const widest = Math.max(1, ...layers.map(l => byLayer.get(l).length));
  const width = Math.max(widest * slot, unbound.length * (VW + 6) + 120) + GAP;
  const tenants = net.tenants;
  const pos = new Map();
  layers.forEach((layer, row) => {
    const sws = byLayer.get(layer);
    const offset = (width - sws.length * slot) / 2;
    sws.forEach((sw, i) => pos.set(sw.name, {x: offset + i * slot + slot / 2, y: 30 + row * ROW}));
  });
  const vmRows = Math.max(0, ...net.switches.map(s => Math.ceil(vmsOf.get(s.name).length / PER_ROW)));
  const bottom = 30 + (layers.length - 1) * ROW + SH / 2 + 20;
  let height = bottom + vmRows * (VH + 8) + 10;
  if (unbound.length) height += VH + 40;
  const root = svg("svg", {viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
                           "aria-label": "topology"});
  for (const link of net.links) {
    const a = pos.get(link.a.split(":")[0]), b = pos.get(link.b.split(":")[0]);
    if (!a || !b) continue;
    root.append(svg("line", {class: "link" + (link.down ? " down" : ""), x1: a.x, y1: a.y,
                             x2: b.x, y2: b.y, "data-link": `${link.a}-${link.b}`},
                    svg("title", {text: `${link.a} - ${link.b}${link.down ? " (down)" : ""}`})));
  }
  const vmBox = (vm, x, y) => svg("g", {class: "vm" + (vm.at ? "" : " unbound"),
                                         "data-vm": vm.name},
    svg("rect", {x: x - VW / 2, y, width: VW, height: VH, rx: 4,
                 fill: vm.at ? colourOf(vm.tenant, tenants) : "#fff"}),
    svg("text", {x, y: y + 12, "text-anchor": "middle", text: vm.name}),
    svg("text", {x, y: y + 25, "text-anchor": "middle", text: vm.ip}),
    svg("title", {text: `${vm.name}: ${vm.tenant}/${vm.segment} ${vm.ip} ` +
                        (vm.at ? `at ${vm.at}` : "unbound")}));
  for (const sw of net.switches) {
    const p = pos.get(sw.name);
    const state = sw.programmed ? "programmed" : sw.connected ? "connected" : "down";
    root.append(svg("g", {class: `switch ${state}`, "data-switch": sw.name, "data-state": state},
      svg("rect", {x: p.x - SW / 2, y: p.y - SH / 2, width: SW, height: SH, rx: 6}),
      svg("text", {x: p.x, y: p.y - 2, "text-anchor": "middle", "font-weight": "bold",
                   text: sw.name}),
      svg("text", {x: p.x, y: p.y + 12, "text-anchor": "middle",
                   text: `${sw.role} · ${sw.flows ?? 0} flows`}),
      svg("title", {text: `${sw.name} (dpid ${sw.dpid}): ${state}`})));
    vmsOf.get(sw.name).forEach((vm, i) => {
      const col = i % PER_ROW, row = Math.floor(i / PER_ROW);
      const n = Math.min(PER_ROW, vmsOf.get(sw.name).length);
      const x = p.x + (col - (n - 1) / 2) * (VW + 6);
      const y = bottom + row * (VH + 8);
      root.append(svg("line", {class: "attach", x1: p.x, y1: p.y + SH / 2, x2: x, y2: y}));
      root.append(vmBox(vm, x, y));
    });
  }
  if (unbound.length) {
    const y = height - VH - 10;
    root.append(svg("text", {x: 10, y: y - 8, text: "unbound:"}));
    unbound.forEach((vm, i) => root.append(vmBox(vm, 60 + VW / 2 + i * (VW + 6), y)));
  }
  replace("topology", root);
  tenantLegend(net);
}

function swatch(fill, dashed) {
  return svg("svg", {class: "swatch", width: 14, height: 14, "aria-hidden": "true"},
    svg("rect", {x: .5, y: .5, width: 13, height: 13, rx: 3, fill,
                 class: dashed ? "unbound" : null}));
}

function tenantLegend(net) {
  const items = net.tenants.map(t => el("span", {class: "tenant", "data-tenant": t,
                                                 "data-colour": colourOf(t, net.tenants)},
    swatch(colourOf(t, net.tenants)), t));
  items.push(el("span", {class: "tenant", "data-tenant": ""}, swatch("#fff", true), "unbound"));
  replace("tenant-legend", el("span", {class: "muted", text: "tenants:"}), items);
}

function switchTable(net) {
  const head = el("tr", {}, ["switch", "role", "dpid", "state", "flows (intent / installed)",
                             "in sync", "simulated from", "VMs"].map(h => el("th", {text: h})));
  const rows = net.switches.map(sw => el("tr", {"data-switch": sw.name},
    el("td", {text: sw.name}), el("td", {text: sw.role}), el("td", {text: sw.dpid}),
    el("td", {class: "state " + (sw.programmed ? "good" : "bad"), "data-state": sw.programmed
                ? "programmed" : sw.connected ? "connected" : "not connected",
              text: sw.programmed ? "programmed" : sw.connected ? "connected" : "not connected"}),
    el("td", {text: `${sw.flows ?? 0} / ${sw.flows_installed ?? "-"}`}),
    el("td", {class: sw.in_sync === null ? "muted" : sw.in_sync ? "good" : "bad",
              text: sw.in_sync === null ? "unknown" : sw.in_sync ? "yes" : "no"}),
    el("td", {text: sw.live_from || "-"}),
    el("td", {text: sw.vms.join(", ")})));
  replace("switches", el("thead", {}, head), el("tbody", {}, rows));
}

function vmTable(net) {
  const head = el("tr", {}, ["VM", "tenant", "segment", "IP", "floating IP", "MAC",
                             "planned host", "bound at", "controller answers"]
    .map(h => el("th", {text: h})));
  const rows = net.vms.map(vm => el("tr", {"data-vm": vm.name, "data-at": vm.at || "",
                                           class: vm.at ? "" : "unbound"},
    el("td", {text: vm.name}), el("td", {text: vm.tenant}),
    el("td", {text: `${vm.segment} (${segmentTag(vm)})`}), el("td", {text: vm.ip}),
    el("td", {class: "floating", text: vm.floating_ip || "-"}),
    el("td", {text: vm.mac}), el("td", {text: vm.host || "-"}),
    el("td", {text: vm.at || "unbound"}),
    el("td", {class: "answers", text: answersText(vm.answers)})));
  replace("vms", el("thead", {}, head), el("tbody", {}, rows));
}

// Tenants going out (pool, floating IPs, exit uplink) and the uplinks themselves.
function northSouth(net) {
  const ns = net.north_south || {tenants: [], uplinks: []};
  const head = el("tr", {}, ["tenant", "SNAT", "floating IPs", "goes out by"]
    .map(h => el("th", {text: h})));
  const rows = ns.tenants.map(t => el("tr", {"data-tenant": t.tenant},
    el("td", {text: t.tenant}), el("td", {text: t.snat || "-"}),
    el("td", {text: Object.entries(t.floating).map(([vm, ip]) => `${vm} ${ip}`).join(", ")
                    || "-"}),
    el("td", {class: t.exit ? "good" : "bad", text: t.exit || "no live uplink"})));
  replace("north-south", el("thead", {}, head), el("tbody", {}, rows));
  const uhead = el("tr", {}, ["uplink", "address", "next hop", "next hop MAC", "state"]
    .map(h => el("th", {text: h})));
  const urows = ns.uplinks.map(u => el("tr", {"data-uplink": u.uplink},
    el("td", {text: u.uplink}), el("td", {text: u.ip}), el("td", {text: u.next_hop}),
    el("td", {text: u.next_hop_mac || "not learned yet"}),
    el("td", {class: u.down ? "bad" : "good", text: u.down ? "down" : "up"})));
  replace("uplinks", el("thead", {}, uhead), el("tbody", {}, urows));
  if (!ns.uplinks.length) {
    replace("north-south", el("caption", {class: "muted",
      text: "No gateway in the topology: nothing goes out or comes in."}));
  }
}

// What the controller answered a VM (DHCP, the router's "time exceeded") and what its
// meter dropped before the controller: only the non-zero counts, "-" for none.
function answersText(a) {
  if (!a) return "-";
  const shown = [["offer", "offers"], ["ack", "acks"], ["nak", "naks"],
                 ["time-exceeded", "time exceeded"], ["ignored", "ignored"],
                 ["malformed", "malformed"], ["meter_drops", "dropped by its meter"]]
    .filter(([key]) => a[key]).map(([key, label]) => `${a[key]} ${label}`);
  return shown.length ? shown.join(", ") : "-";
}

// ---- the matrix ---------------------------------------------------------------------------

function serviceChoices(m) {
  const select = document.getElementById("service");
  const wanted = ["all", ...m.services];
  if (!ui.service || !wanted.includes(ui.service)) {
    ui.service = wanted.includes(fragment().get("service")) ? fragment().get("service")
      : m.services.includes("icmp") ? "icmp" : m.services[0] || "all";
  }
  const have = [...select.options].map(o => o.value);
  if (have.join() !== wanted.join()) {
    select.replaceChildren(...wanted.map(s => el("option", {value: s,
      text: s === "all" ? "all services" : s})));
  }
  select.value = ui.service;
}

function matrixTable(m, service) {
  const edge = (i) => i > 0 && m.tenants[m.vms[i]] !== m.tenants[m.vms[i - 1]];
  const head = el("tr", {}, el("th", {text: "from \\ to"}),
    m.vms.map((v, j) => el("th", {class: edge(j) ? "tenant-edge" : null, scope: "col",
                                  title: `${v} (${m.tenants[v]})`, text: v})));
  const rows = m.cells[service].map((row, i) => el("tr", {},
    el("th", {scope: "row", title: `${m.vms[i]} (${m.tenants[m.vms[i]]})`, text: m.vms[i]}),
    row.map((cell, j) => {
      const from = m.vms[i], to = m.vms[j];
      if (!cell) return el("td", {class: "self" + (edge(j) ? " tenant-edge" : "")});
      const sel = ui.selected && ui.selected.from === from && ui.selected.to === to
        && ui.selected.service === service;
      const title = `${from} -> ${to} ${service}: ${cell.state}` + (cell.why ? ` (${cell.why})`
        : "") + ` [switches: ${cell.live ? "pass" : "drop"}, intent: ${cell.intent ? "pass"
        : "drop"}, policy: ${cell.promised ? "allow" : "deny"}]`;
      return el("td", {class: `cell ${cell.state}` + (sel ? " selected" : "")
                               + (edge(j) ? " tenant-edge" : ""),
                       "data-from": from, "data-to": to, "data-service": service,
                       "data-state": cell.state, title,
                       text: cell.state === "allowed" ? "\u2713" : cell.state === "mismatch"
                         ? "!" : "",
                       onclick: () => explain(from, to, service)});
    })));
  return el("table", {class: "matrix", "data-service": service},
    el("caption", {text: service}), el("thead", {}, head), el("tbody", {}, rows));
}

function drawMatrix(m) {
  serviceChoices(m);
  const services = ui.service === "all" ? m.services : [ui.service];
  const info = [`${m.vms.length} bound VMs`, `${m.mismatches} mismatching cells`,
                `computed in ${m.seconds.toFixed(2)} s`];
  if (m.unbound.length) info.push(`not bound (not probed): ${m.unbound.join(", ")}`);
  if (m.left_out.length) info.push(`left out (over the limit): ${m.left_out.length}`);
  replace("matrix-info", info.join(" · "));
  if (!m.vms.length) return replace("matrix", el("p", {class: "muted",
    text: "No bound VM yet."}));
  replace("matrix", services.map(s => matrixTable(m, s)));
}

// ---- explain --------------------------------------------------------------------------------

async function explain(from, to, service) {
  ui.selected = {from, to, service};
  const params = fragment();
  params.set("explain", `${from},${to},${service}`);
  setFragment(params);
  document.querySelectorAll("td.cell.selected").forEach(td => td.classList.remove("selected"));
  document.querySelectorAll(`td.cell[data-service="${CSS.escape(service)}"]`).forEach(td => {
    if (td.dataset.from === from && td.dataset.to === to) td.classList.add("selected");
  });
  await showExplain();
}

async function showExplain() {
  const s = ui.selected;
  if (!s) return;
  const source = document.getElementById("explain-source").value;
  const q = new URLSearchParams({from: s.from, to: s.to, service: s.service, source});
  let ex;
  try {
    ex = await get("/explain?" + q.toString());
  } catch (err) {
    replace("explain", el("p", {class: "bad", text: String(err.message || err)}));
    return;
  }
  if (!ui.selected || ui.selected.from !== s.from || ui.selected.to !== s.to
      || ui.selected.service !== s.service) return;  // another click came first
  const head = el("tr", {}, ["phase", "switch", "table", "prio", "owner", "match", "actions"]
    .map(h => el("th", {text: h})));
  const rows = ex.steps.map(st => el("tr", {"data-table": st.table},
    el("td", {text: st.phase}), el("td", {text: st.switch}), el("td", {text: st.table}),
    el("td", {text: st.priority ?? ""}), el("td", {text: st.owner ?? ""}),
    el("td", {text: st.flow === null ? "no flow matched" : (st.match || "*")}),
    el("td", {text: st.actions ?? "drop"})));
  const box = replace("explain",
    el("p", {}, el("span", {class: `verdict ${ex.verdict}`, "data-verdict": ex.verdict,
                            text: `${ex.from} \u2192 ${ex.to} ${ex.service}: ${ex.verdict}`}),
      ` (${ex.reason}); the policy ${ex.promised === "allowed" ? "allows" : "denies"} it`,
      ex.mismatch ? el("strong", {class: "bad", text: " \u2014 MISMATCH"}) : null,
      el("span", {class: "muted", text: ` · simulated over ${ex.source === "live"
        ? "what the switches hold" : "intent"}`})),
    el("table", {class: "grid", id: "explain-steps"}, el("thead", {}, head),
       el("tbody", {}, rows)),
    el("details", {}, el("summary", {text: "as `sdnctl explain` prints it"}),
       el("pre", {text: ex.text})));
  box.dataset.explained = `${ex.from},${ex.to},${ex.service}`;
  box.dataset.verdict = ex.verdict;
  document.body.dataset.explained = box.dataset.explained;
}

// ---- edits -------------------------------------------------------------------------------------

function tripleList(kind, sign, triples, total) {
  const items = triples.map(([s, d, svc]) => el("li", {class: kind,
    "data-triple": `${s},${d},${svc}`, text: `${sign} ${s} \u2192 ${d} ${svc}`}));
  if (total > triples.length) items.push(el("li", {text: `... and ${total - triples.length} more`}));
  return items;
}

function drawEdits(doc) {
  const pol = doc.policy;
  replace("policy", `policy ${pol.sha256.slice(0, 12)} (${pol.file}), loaded ${clock(pol.loaded_at)}`);
  if (!doc.edits.length) {
    return replace("edits", el("li", {class: "muted", text: "No reload since the daemon started."}));
  }
  replace("edits", doc.edits.map(e => {
    const li = el("li", {class: `edit ${e.kind}`, "data-kind": e.kind},
      el("span", {class: "when", text: clock(e.time)}),
      el("span", {class: e.kind === "enforced" ? "" : "refused", text: e.what}));
    if (e.kind !== "enforced") return li;
    li.dataset.to = e.to_sha;
    li.append(el("div", {}, `policy ${e.from_sha.slice(0, 12)} \u2192 ${e.to_sha.slice(0, 12)}: `,
      `${e.switches.length} switches, ${e.flow_mods} flow-mods`,
      Object.keys(e.per_switch).length ? el("span", {class: "muted",
        text: " (" + Object.entries(e.per_switch).map(([n, s]) => `${n}: ${s}`).join("; ") + ")"})
        : null));
    const r = e.reachability;
    if (r.skipped || r.error) {
      li.append(el("div", {class: "muted", text: r.skipped || r.error}));
      return li;
    }
    li.dataset.added = r.n_added;
    li.dataset.removed = r.n_removed;
    li.append(el("div", {text: r.n_added || r.n_removed
      ? `reachability: +${r.n_added} added, -${r.n_removed} removed (${r.vm_pairs} VM pairs compared)`
      : `no change in reachability (${r.vm_pairs} VM pairs compared)`}));
    li.append(el("ul", {}, tripleList("added", "+", r.added, r.n_added),
                 tripleList("removed", "-", r.removed, r.n_removed)));
    return li;
  }));
}

// ---- the connection log and mirrors -------------------------------------------------------

function endpoint(ip, port) {
  if (port === null || port === undefined) return ip;
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function drawConnections(doc) {
  const c = doc.counters;
  replace("connection-counters",
    `${c.records.allow} allowed and ${c.records.deny} denied recorded; lost: ` +
    `${c.meter_drops} to the switches' log meters, ${c.writer_drops} to the writer` +
    (c.file ? ` (file ${c.file})` : " (no file: --connection-log)"));
  const head = el("tr", {}, ["time", "verdict", "tenant", "rule", "from", "to", "protocol"]
    .map(h => el("th", {text: h})));
  const rows = doc.records.map(r => el("tr", {class: `record ${r.verdict}`,
                                              "data-verdict": r.verdict, "data-rule": r.rule || "",
                                              "data-src": r.src_vm || "", "data-dst": r.dst_vm || "",
                                              "data-dst-port": r.dst_port ?? ""},
    el("td", {text: r.time.slice(11, 23)}), el("td", {text: r.verdict}),
    el("td", {text: r.tenant}), el("td", {text: r.rule || "(none)"}),
    el("td", {text: `${r.src_vm || "?"} ${endpoint(r.src_ip, r.src_port)}`}),
    el("td", {text: `${r.dst_vm || "?"} ${endpoint(r.dst_ip, r.dst_port)}`}),
    el("td", {text: r.proto})));
  if (!rows.length) {
    rows.push(el("tr", {}, el("td", {colspan: 7, class: "muted", text: "No record yet."})));
  }
  replace("connections", el("thead", {}, head), el("tbody", {}, rows));
}

function drawMirrors(doc, net) {
  const select = document.getElementById("mirror-vm");
  const names = net.vms.map(vm => vm.name);
  if ([...select.options].map(o => o.value).join() !== names.join()) {
    const was = select.value;
    select.replaceChildren(...names.map(n => el("option", {value: n, text: n})));
    if (names.includes(was)) select.value = was;
  }
  const head = el("tr", {}, ["VM", "bridge", "direction", "capture end", "packets", ""]
    .map(h => el("th", {text: h})));
  const rows = doc.mirrors.filter(m => m.vm).map(m => el("tr", {class: "mirror",
                                                               "data-mirror-vm": m.vm},
    el("td", {text: m.vm}), el("td", {text: m.bridge}), el("td", {text: m.direction || "-"}),
    el("td", {text: m.netns ? `${m.output} in ${m.netns}` : (m.output || "-")}),
    el("td", {text: m.tx_packets ?? "-"}),
    el("td", {}, el("button", {type: "button", "data-stop": m.vm, text: "Stop",
                               onclick: () => mirrorCommand("/mirrors/stop", {vm: m.vm})}))));
  if (!rows.length) {
    rows.push(el("tr", {}, el("td", {colspan: 6, class: "muted", text: "No mirror."})));
  }
  replace("mirrors", el("thead", {}, head), el("tbody", {}, rows));
}

async function mirrorCommand(path, doc) {
  const box = document.getElementById("mirror-result");
  try {
    const done = await post(path, doc);
    box.dataset.outcome = "ok";
    replace("mirror-result", [done.summary, ...done.changes, ...done.notes].join("; "));
  } catch (err) {
    if (err instanceof NeedToken) return showLogin("the API needs a token");
    box.dataset.outcome = "error";
    replace("mirror-result", `refused: ${err.message || err}`);
  }
  refresh();
}

function startMirror(ev) {
  ev.preventDefault();
  const doc = {vm: document.getElementById("mirror-vm").value,
               direction: document.getElementById("mirror-direction").value};
  doc[document.getElementById("mirror-kind").value] =
    document.getElementById("mirror-end").value.trim();
  mirrorCommand("/mirrors/start", doc);
}

// ---- the refresh loop -----------------------------------------------------------------------

async function refresh() {
  clearTimeout(ui.timer);
  try {
    const [net, m, edits, conns, mirrors] = await Promise.all([
      get("/network"), get("/matrix"), get("/edits"), get("/connections?limit=50"),
      get("/mirrors")]);
    ui.network = net; ui.matrix = m; ui.edits = edits;
    drawTopology(net);
    switchTable(net);
    vmTable(net);
    northSouth(net);
    drawMatrix(m);
    drawEdits(edits);
    drawConnections(conns);
    drawMirrors(mirrors, net);
    if (ui.selected) await showExplain();
    document.getElementById("login").hidden = true;
    delete document.body.dataset.needsToken;
    replace("error");
    ui.lastOk = now();
    ui.failedSince = null;
    delete document.body.dataset.stale;
    document.getElementById("stale").hidden = true;
    replace("updated", `updated ${clock(ui.lastOk)}`);
    ui.refreshes += 1;
    document.body.dataset.refreshes = String(ui.refreshes);
    document.body.dataset.ready = "1";
  } catch (err) {
    if (err instanceof NeedToken) {
      showLogin(token() ? "the token was refused" : "the API needs a token");
      return;  // no retry loop until a token is given
    }
    markStale(err);
  }
  ui.timer = setTimeout(refresh, REFRESH_MS);
}

// The daemon did not answer (or answered with an error): keep the last data on screen
// but make plain that it is old. Nothing may keep claiming a switch is programmed.
function markStale(err) {
  if (ui.failedSince === null) ui.failedSince = now();
  const gone = err instanceof TypeError;  // fetch itself failed: no answer at all
  const why = gone ? "the daemon does not answer" : `the daemon answered with an error: ${
    err.message || err}`;
  document.body.dataset.stale = "1";
  replace("error", gone ? "daemon unreachable" : "daemon error");
  replace("updated", ui.lastOk ? `last data ${clock(ui.lastOk)}` : "no data yet");
  replace("stale", `${why} (since ${clock(ui.failedSince)}). ` + (ui.lastOk
    ? `Everything below is from ${clock(ui.lastOk)} and may be out of date; switch states are unknown.`
    : "Nothing has been read from it yet."));
  document.getElementById("stale").hidden = false;
  for (const td of document.querySelectorAll("#switches td.state")) {
    td.className = "state stale";
    td.textContent = `unknown (was ${td.dataset.state})`;
  }
  for (const e of document.querySelectorAll("main .good")) {  // e.g. "in sync: yes"
    e.classList.remove("good");
    e.classList.add("stale");
  }
  for (const g of document.querySelectorAll("svg .switch")) {
    g.setAttribute("class", "switch stale");
    const title = g.querySelector("title");
    if (title) title.textContent = `${g.dataset.switch}: unknown (was ${g.dataset.state})`;
  }
}

function start() {
  const params = fragment();
  if (params.has("token")) {
    sessionStorage.setItem(TOKEN_KEY, params.get("token"));
    setFragment(params);  // off the screen and out of the history
  }
  const deep = (params.get("explain") || "").split(",");
  if (deep.length === 3 && deep.every(Boolean)) {
    ui.selected = {from: deep[0], to: deep[1], service: deep[2]};
  }
  document.getElementById("service").addEventListener("change", ev => {
    ui.service = ev.target.value;
    const p = fragment();
    p.set("service", ui.service);
    setFragment(p);
    if (ui.matrix) drawMatrix(ui.matrix);
  });
  document.getElementById("explain-source").addEventListener("change", () => showExplain());
  document.getElementById("explain-form").addEventListener("submit", ev => {
    ev.preventDefault();  // any two ends, a VM and an outside address included
    const value = id => document.getElementById(id).value.trim();
    explain(value("explain-from"), value("explain-to"), value("explain-service"));
  });
  document.getElementById("mirror-form").addEventListener("submit", startMirror);
  document.getElementById("login").addEventListener("submit", ev => {
    ev.preventDefault();
    const value = document.getElementById("token").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    refresh();
  });
  refresh();
}

start();

// "vlan 10", "vni 5001" or "vlan 10, vni 5001": how the segment travels between hypervisors.
function segmentTag(vm) {
  const parts = [];
  if (vm.vlan !== null && vm.vlan !== undefined) parts.push(`vlan ${vm.vlan}`);
  if (vm.vni !== null && vm.vni !== undefined) parts.push(`vni ${vm.vni}`);
  return parts.join(", ");
}
