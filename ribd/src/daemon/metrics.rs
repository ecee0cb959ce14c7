//! Prometheus text exposition (format 0.0.4) of the daemon's state.

use std::fmt::Write as _;

use super::core::Core;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(core: &Core) -> String {
    let mut out = String::new();
    update_groups(&mut out, core);
    flowspec(&mut out, core);
    acls(&mut out, core);
    let summary = core.summary();
    let peers = core.peer_views();
    let states = [
        "Idle",
        "Connect",
        "Active",
        "OpenSent",
        "OpenConfirm",
        "Established",
    ];
    metric(
        &mut out,
        "ribd_bgp_sessions",
        "gauge",
        "BGP sessions by state.",
        &states
            .iter()
            .map(|s| {
                (
                    format!("state=\"{s}\""),
                    peers.iter().filter(|p| p.state == *s).count() as f64,
                )
            })
            .collect::<Vec<_>>(),
    );
    let mut up = Vec::new();
    let mut pfx = Vec::new();
    let mut msgs = Vec::new();
    let (mut stale, mut stale_left) = (Vec::new(), Vec::new());
    for p in &peers {
        let l = format!("peer=\"{}\",address=\"{}\"", esc(&p.name), p.address);
        up.push((l.clone(), f64::from(u8::from(p.state == "Established"))));
        if let Some(g) = &p.graceful_restart {
            for (afi, n) in [("ipv4", g.stale_paths_ipv4), ("ipv6", g.stale_paths_ipv6)] {
                stale.push((format!("{l},afi=\"{afi}\""), n as f64));
            }
            if let (Some(phase), Some(secs)) = (&g.stale_phase, g.stale_remaining_secs) {
                stale_left.push((format!("{l},phase=\"{phase}\""), secs as f64));
            }
        }
        for f in &p.families {
            for (what, v) in [
                ("received", f.received),
                ("accepted", f.accepted),
                ("advertised", f.advertised),
            ] {
                pfx.push((format!("{l},afi=\"{}\",kind=\"{what}\"", f.afi), v as f64));
            }
        }
        for (i, ty) in [
            "open",
            "update",
            "notification",
            "keepalive",
            "route_refresh",
        ]
        .iter()
        .enumerate()
        {
            msgs.push((
                format!("{l},direction=\"in\",type=\"{ty}\""),
                p.messages.received[i] as f64,
            ));
            msgs.push((
                format!("{l},direction=\"out\",type=\"{ty}\""),
                p.messages.sent[i] as f64,
            ));
        }
    }
    metric(
        &mut out,
        "ribd_bgp_peer_up",
        "gauge",
        "1 when the session is Established.",
        &up,
    );
    metric(
        &mut out,
        "ribd_bgp_prefixes",
        "gauge",
        "Prefixes per peer and family: received (total seen), accepted (in the RIB), advertised.",
        &pfx,
    );
    metric(
        &mut out,
        "ribd_bgp_peer_stale_paths",
        "gauge",
        "Paths of a restarting peer kept stale (graceful restart helper, RFC 4724/9494), per family; peers with graceful restart on.",
        &stale,
    );
    metric(
        &mut out,
        "ribd_bgp_peer_stale_seconds_remaining",
        "gauge",
        "Seconds until a restarting peer's stale phase (graceful-restart or long-lived) ends by its timer; only while one runs.",
        &stale_left,
    );
    let gr = &summary.graceful_restart;
    metric(
        &mut out,
        "ribd_graceful_restart_deferring",
        "gauge",
        "1 while our own (re)start holds our advertisements back, waiting for the peers' End-of-RIB (selection deferral).",
        &[(String::new(), f64::from(u8::from(gr.deferring)))],
    );
    metric(
        &mut out,
        "ribd_bgp_messages_total",
        "counter",
        "BGP messages by peer, direction and type.",
        &msgs,
    );
    let afi = |v: &[crate::api::AfiCount], f: &dyn Fn(&crate::api::AfiCount) -> u64| {
        v.iter()
            .map(|c| (format!("afi=\"{}\"", c.afi), f(c) as f64))
            .collect::<Vec<_>>()
    };
    metric(
        &mut out,
        "ribd_rib_prefixes",
        "gauge",
        "Prefixes in the RIB.",
        &afi(&summary.rib, &|c| c.prefixes),
    );
    metric(
        &mut out,
        "ribd_rib_paths",
        "gauge",
        "Candidate paths in the RIB.",
        &afi(&summary.rib, &|c| c.paths),
    );
    metric(
        &mut out,
        "ribd_fib_prefixes",
        "gauge",
        "Prefixes with a forwarding entry.",
        &afi(&summary.fib, &|c| c.prefixes),
    );
    metric(
        &mut out,
        "ribd_rib_attribute_sets",
        "gauge",
        "Distinct interned path-attribute sets.",
        &[(String::new(), summary.attribute_sets as f64)],
    );
    let st = core.rib().stats();
    metric(
        &mut out,
        "ribd_rib_best_path_runs_total",
        "counter",
        "Best-path selections run.",
        &[(String::new(), st.selections as f64)],
    );
    metric(
        &mut out,
        "ribd_updates_received_total",
        "counter",
        "UPDATE messages processed.",
        &[(String::new(), core.counters.updates_in as f64)],
    );
    metric(
        &mut out,
        "ribd_prefix_changes_total",
        "counter",
        "Prefix announcements and withdrawals processed.",
        &[
            (
                "kind=\"announce\"".into(),
                core.counters.prefixes_announced as f64,
            ),
            (
                "kind=\"withdraw\"".into(),
                core.counters.prefixes_withdrawn as f64,
            ),
        ],
    );
    metric(
        &mut out,
        "ribd_fib_sync_batches_total",
        "counter",
        "FIB delta batches applied.",
        &[(String::new(), core.counters.fib_batches as f64)],
    );
    metric(
        &mut out,
        "ribd_fib_deltas_total",
        "counter",
        "FIB deltas applied.",
        &[(String::new(), core.counters.fib_deltas as f64)],
    );
    // Histogram of batch latency.
    let bounds = [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0];
    let _ = writeln!(
        out,
        "# HELP ribd_fib_sync_seconds Time to apply one FIB delta batch (recent batches)."
    );
    let _ = writeln!(out, "# TYPE ribd_fib_sync_seconds histogram");
    let v = &core.counters.sync_seconds;
    for b in bounds {
        let _ = writeln!(
            out,
            "ribd_fib_sync_seconds_bucket{{le=\"{b}\"}} {}",
            v.iter().filter(|x| **x <= b).count()
        );
    }
    let _ = writeln!(
        out,
        "ribd_fib_sync_seconds_bucket{{le=\"+Inf\"}} {}",
        v.len()
    );
    let _ = writeln!(out, "ribd_fib_sync_seconds_sum {}", v.iter().sum::<f64>());
    let _ = writeln!(out, "ribd_fib_sync_seconds_count {}", v.len());
    if let Some(dp) = core.dataplane_stats() {
        let by_reason = |f: &dyn Fn(&crate::api::ReasonCounter) -> u64| {
            dp.reasons
                .iter()
                .map(|r| (format!("reason=\"{}\"", r.reason), f(r) as f64))
                .collect::<Vec<_>>()
        };
        metric(
            &mut out,
            "ribd_dataplane_packets_total",
            "counter",
            "Packets seen by the XDP forwarder, by outcome.",
            &by_reason(&|r| r.packets),
        );
        metric(
            &mut out,
            "ribd_dataplane_bytes_total",
            "counter",
            "Bytes seen by the XDP forwarder, by outcome.",
            &by_reason(&|r| r.bytes),
        );
        let by_nh = |f: &dyn Fn(&crate::api::NextHopCounter) -> u64| {
            dp.nexthops
                .iter()
                .map(|n| {
                    (
                        format!(
                            "nexthop=\"{}\",interface=\"{}\",mac=\"{}\"",
                            n.id,
                            esc(&n.interface),
                            n.mac
                        ),
                        f(n) as f64,
                    )
                })
                .collect::<Vec<_>>()
        };
        // Egress per interface: the next-hops' transmit counters summed by their interface.
        let mut by_if: std::collections::BTreeMap<String, (u64, u64)> =
            std::collections::BTreeMap::new();
        for n in &dp.nexthops {
            let ifname = n
                .interface
                .split(" (")
                .next()
                .unwrap_or(&n.interface)
                .to_string();
            let e = by_if.entry(ifname).or_default();
            e.0 += n.packets;
            e.1 += n.bytes;
        }
        let ifs = |pick: fn(&(u64, u64)) -> u64| {
            by_if
                .iter()
                .map(|(i, v)| (format!("interface=\"{}\"", esc(i)), pick(v) as f64))
                .collect::<Vec<_>>()
        };
        metric(
            &mut out,
            "ribd_dataplane_interface_tx_packets_total",
            "counter",
            "Packets the forwarder redirected out of each interface.",
            &ifs(|v| v.0),
        );
        metric(
            &mut out,
            "ribd_dataplane_interface_tx_bytes_total",
            "counter",
            "Bytes the forwarder redirected out of each interface.",
            &ifs(|v| v.1),
        );
        metric(
            &mut out,
            "ribd_dataplane_nexthop_tx_packets_total",
            "counter",
            "Packets the forwarder sent to each next-hop.",
            &by_nh(&|n| n.packets),
        );
        metric(
            &mut out,
            "ribd_dataplane_nexthop_tx_bytes_total",
            "counter",
            "Bytes the forwarder sent to each next-hop.",
            &by_nh(&|n| n.bytes),
        );
    }
    metric(
        &mut out,
        "ribd_process_resident_memory_bytes",
        "gauge",
        "Resident set size of ribd.",
        &[(String::new(), rss_bytes() as f64)],
    );
    metric(
        &mut out,
        "ribd_uptime_seconds",
        "counter",
        "Seconds since ribd started.",
        &[(String::new(), summary.uptime_secs as f64)],
    );
    out
}

/// Update groups: members, Adj-RIB-Out size and memory, UPDATEs encoded once vs queued to members.
/// FlowSpec rules by state, and per installed rule its classifier counters (labelled by the rule's
/// text, which is its identity in BGP).
fn flowspec(out: &mut String, core: &Core) {
    let t = core.flowspec_table();
    let count =
        |f: &dyn Fn(&crate::api::FlowRule) -> bool| t.rules.iter().filter(|r| f(r)).count() as f64;
    metric(
        out,
        "ribd_flowspec_rules",
        "gauge",
        "FlowSpec rules learned, by state.",
        &[
            ("state=\"installed\"".into(), count(&|r| r.installed)),
            ("state=\"infeasible\"".into(), count(&|r| !r.feasible)),
            (
                "state=\"not_installed\"".into(),
                count(&|r| r.feasible && !r.installed),
            ),
        ],
    );
    let per = |f: &dyn Fn(&crate::api::FlowRule) -> u64| -> Vec<(String, f64)> {
        t.rules
            .iter()
            .filter(|r| r.installed)
            .map(|r| {
                (
                    format!("rule=\"{}\",peer=\"{}\"", esc(&r.rule), esc(&r.peer)),
                    f(r) as f64,
                )
            })
            .collect()
    };
    metric(
        out,
        "ribd_flowspec_matched_packets_total",
        "counter",
        "Packets matched by an installed FlowSpec rule in XDP.",
        &per(&|r| r.packets),
    );
    metric(
        out,
        "ribd_flowspec_matched_bytes_total",
        "counter",
        "Bytes (frame length) matched by an installed FlowSpec rule in XDP.",
        &per(&|r| r.bytes),
    );
    metric(
        out,
        "ribd_flowspec_dropped_packets_total",
        "counter",
        "Packets dropped by a FlowSpec rule (discard, or over its rate limit).",
        &per(&|r| r.dropped),
    );
    // RFC 7606 outcomes of malformed FlowSpec UPDATEs, per peer and family.
    let mut outcomes = Vec::new();
    let mut disabled = Vec::new();
    for p in core.peer_views() {
        for f in p.families.iter().filter(|f| f.afi.ends_with("flowspec")) {
            let l = format!("peer=\"{}\",afi=\"{}\"", esc(&p.name), f.afi);
            outcomes.push((
                format!("{l},outcome=\"treat-as-withdraw\""),
                f.treat_as_withdraw as f64,
            ));
            outcomes.push((
                format!("{l},outcome=\"afi-safi-disable\""),
                f.afi_safi_disable as f64,
            ));
            disabled.push((l, f64::from(u8::from(f.state == "disabled"))));
        }
    }
    metric(
        out,
        "ribd_flowspec_rfc7606_total",
        "counter",
        "Malformed FlowSpec UPDATEs by RFC 7606 outcome (treat-as-withdraw, AFI/SAFI disable), per peer and family.",
        &outcomes,
    );
    metric(
        out,
        "ribd_flowspec_family_disabled",
        "gauge",
        "1 while a FlowSpec family is disabled on the peer's session (RFC 7606 AFI/SAFI disable).",
        &disabled,
    );
}

/// Per config ACL rule: matched packets/bytes and drops.
fn acls(out: &mut String, core: &Core) {
    let t = core.acl_table();
    let per = |f: &dyn Fn(&crate::api::AclRuleView) -> u64| -> Vec<(String, f64)> {
        t.rules
            .iter()
            .map(|r| {
                (
                    format!("acl=\"{}\",rule=\"{}\"", esc(&r.acl), esc(&r.name)),
                    f(r) as f64,
                )
            })
            .collect()
    };
    metric(
        out,
        "ribd_acl_matched_packets_total",
        "counter",
        "Packets matched by a config ACL rule in XDP.",
        &per(&|r| r.packets),
    );
    metric(
        out,
        "ribd_acl_matched_bytes_total",
        "counter",
        "Bytes (frame length) matched by a config ACL rule in XDP.",
        &per(&|r| r.bytes),
    );
    metric(
        out,
        "ribd_acl_dropped_packets_total",
        "counter",
        "Packets dropped by a config ACL rule (drop, or over its rate limit).",
        &per(&|r| r.dropped),
    );
}

fn update_groups(out: &mut String, core: &Core) {
    let (groups, (sets, set_bytes)) = core.adj_out_stats();
    let label = |i: usize, g: &crate::adj_out::GroupStats| {
        let names: Vec<String> = g.members.iter().map(|m| core.member_name(*m)).collect();
        format!("group=\"{i}\",members=\"{}\"", esc(&names.join(",")))
    };
    let per = |f: &dyn Fn(&crate::adj_out::GroupStats) -> f64| -> Vec<(String, f64)> {
        groups
            .iter()
            .enumerate()
            .map(|(i, g)| (label(i, g), f(g)))
            .collect()
    };
    metric(
        out,
        "ribd_update_group_members",
        "gauge",
        "Established sessions per update group (peers sharing one Adj-RIB-Out and one encoding).",
        &per(&|g| g.members.len() as f64),
    );
    metric(
        out,
        "ribd_update_group_paths",
        "gauge",
        "Paths in the update group's Adj-RIB-Out (all families).",
        &per(&|g| (g.paths[0] + g.paths[1]) as f64),
    );
    metric(
        out,
        "ribd_update_group_bytes",
        "gauge",
        "Bytes of the update group's Adj-RIB-Out table (attribute sets counted separately).",
        &per(&|g| g.bytes as f64),
    );
    metric(
        out,
        "ribd_update_group_mrai_held",
        "gauge",
        "Prefixes whose announcement waits for the MinRouteAdvertisementInterval.",
        &per(&|g| g.held as f64),
    );
    metric(
        out,
        "ribd_update_group_messages_encoded_total",
        "counter",
        "UPDATE messages encoded for the group (once whatever the number of members).",
        &per(&|g| g.messages_encoded as f64),
    );
    metric(
        out,
        "ribd_update_group_messages_sent_total",
        "counter",
        "UPDATE messages queued to the group's members (encoded messages x recipients).",
        &per(&|g| g.messages_sent as f64),
    );
    metric(
        out,
        "ribd_adj_rib_out_attribute_sets",
        "gauge",
        "Distinct exported attribute sets shared by all Adj-RIBs-Out, and their approximate bytes.",
        &[
            ("kind=\"sets\"".to_string(), sets as f64),
            ("kind=\"bytes\"".to_string(), set_bytes as f64),
        ],
    );
}
