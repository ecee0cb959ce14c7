//! FlowSpec Adj-RIB-Out (RFC 8955 §8/§9, RFC 8956): what each session negotiating IPv4/IPv6 FlowSpec
//! (SAFI 133) has been sent, and the UPDATEs that bring it to the current FlowSpec table.
//!
//! ```text
//!   FlowRib best announcement per rule (feasible, §6) ──export_flowspec(member)──► wanted table
//!   member's sent table ──diff──► MP_UNREACH (rules gone) + MP_REACH per attribute set ──► Send
//!   join / ROUTE-REFRESH: the whole wanted table, then End-of-RIB per FlowSpec family
//! ```
//!
//! Sans-IO like the unicast [`super::AdjOut`]: the input is the candidate rules, the output encoded bytes
//! and the member they go to. Unlike unicast there are no update groups, no MRAI and no ADD-PATH:
//! a FlowSpec table is small (mitigations: tens to thousands of rules, against a million unicast
//! prefixes), so a table per member costs little and every change is recomputed for every member
//! in full; a mitigation should reach the next router at once, so nothing is held back; and a rule is
//! its own identity, so one path per rule is sent (the best, as for unicast without ADD-PATH).

use std::collections::{BTreeMap, BTreeSet};

use bgp::wire::flowspec::FlowSpec;
use bgp::wire::nlri::Family;
use bgp::wire::{Context as WireCtx, Update};
use bytes::BytesMut;

use super::{MemberId, Send};
use crate::export::{ExportCtx, Source, announce_flowspec, export_flowspec, withdraw_flowspec};
use crate::flowspec::fam_index;
use crate::rib::attrs::Attrs;

/// What decides what one session is sent.
#[derive(Debug, Clone)]
pub struct FlowMemberSpec {
    pub id: MemberId,
    pub ctx: ExportCtx,
    /// FlowSpec families negotiated and configured: [IPv4, IPv6].
    pub families: [bool; 2],
    pub wire: WireCtx,
}

/// One rule offered for export: its best announcement and where that came from.
#[derive(Debug, Clone, Copy)]
pub struct FlowCandidate<'a> {
    pub rule: &'a FlowSpec,
    pub attrs: &'a Attrs,
    pub src: Source<'a>,
}

#[derive(Debug)]
struct Member {
    spec: FlowMemberSpec,
    sent: BTreeMap<FlowSpec, Attrs>,
}

/// The FlowSpec Adj-RIBs-Out of every member.
#[derive(Debug, Default)]
pub struct FlowOut {
    members: BTreeMap<MemberId, Member>,
}

impl FlowOut {
    pub fn new() -> FlowOut {
        FlowOut::default()
    }

    /// A session came up: everything it should have, then End-of-RIB for each of its FlowSpec
    /// families (RFC 4724 §2). A member without FlowSpec family is not kept.
    pub fn join(&mut self, spec: FlowMemberSpec, cands: &[FlowCandidate<'_>]) -> Vec<Send> {
        let id = spec.id;
        if !spec.families.iter().any(|f| *f) {
            self.members.remove(&id);
            return Vec::new();
        }
        self.members.insert(
            id,
            Member {
                spec,
                sent: BTreeMap::new(),
            },
        );
        self.sync_member(id, cands, None, true)
    }

    pub fn leave(&mut self, id: MemberId) {
        self.members.remove(&id);
    }

    pub fn is_member(&self, id: MemberId) -> bool {
        self.members.contains_key(&id)
    }

    /// The member's export context changed (reload): it gets only the difference.
    pub fn respec(&mut self, spec: FlowMemberSpec, cands: &[FlowCandidate<'_>]) -> Vec<Send> {
        let id = spec.id;
        match self.members.get_mut(&id) {
            Some(m) if spec.families.iter().any(|f| *f) => {
                // Rules of a family the member no longer has are simply not sent any more; the
                // session was reset if its families changed, so nothing needs withdrawing there.
                m.spec = spec;
                self.sync_member(id, cands, None, false)
            }
            Some(_) => {
                self.members.remove(&id);
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// ROUTE-REFRESH (RFC 2918) for one FlowSpec family: the whole table again, then End-of-RIB.
    pub fn refresh(
        &mut self,
        id: MemberId,
        family: Family,
        cands: &[FlowCandidate<'_>],
    ) -> Vec<Send> {
        let Some(m) = self.members.get_mut(&id) else {
            return Vec::new();
        };
        m.sent.retain(|r, _| r.family() != family);
        let only = m.spec.families;
        let mut out = self.sync_member(id, cands, None, false);
        if only[fam_index(family)]
            && let Some(m) = self.members.get(&id)
        {
            out.extend(encode(
                &m.spec,
                vec![Update::end_of_rib(bgp::wire::flowspec::afi_safi(family))],
            ));
        }
        out
    }

    /// The table changed (or feasibility, or policy): every member gets its difference, computed over
    /// the whole table.
    pub fn sync(&mut self, cands: &[FlowCandidate<'_>]) -> Vec<Send> {
        let ids: Vec<MemberId> = self.members.keys().copied().collect();
        ids.into_iter()
            .flat_map(|id| self.sync_member(id, cands, None, false))
            .collect()
    }

    /// [`FlowOut::sync`] looking only at the rules in `changed` (those whose best announcement,
    /// feasibility or presence changed): the cost of one change is one export per member, not the whole
    /// table per member. `cands` is still the whole table (only the changed rules are read).
    pub fn sync_changed(
        &mut self,
        cands: &[FlowCandidate<'_>],
        changed: &BTreeSet<FlowSpec>,
    ) -> Vec<Send> {
        if changed.is_empty() {
            return Vec::new();
        }
        let ids: Vec<MemberId> = self.members.keys().copied().collect();
        ids.into_iter()
            .flat_map(|id| self.sync_member(id, cands, Some(changed), false))
            .collect()
    }

    /// Rules advertised to the member, per family [IPv4, IPv6].
    pub fn advertised(&self, id: MemberId) -> [u64; 2] {
        let mut n = [0u64; 2];
        if let Some(m) = self.members.get(&id) {
            for r in m.sent.keys() {
                n[fam_index(r.family())] += 1;
            }
        }
        n
    }

    /// The rules sent to a member with the attributes they were sent with (API, tests).
    pub fn sent(&self, id: MemberId) -> impl Iterator<Item = (&FlowSpec, &Attrs)> {
        self.members
            .get(&id)
            .into_iter()
            .flat_map(|m| m.sent.iter())
    }

    /// Brings member `id` to `cands`; with `only`, just for those rules (the others are as sent).
    fn sync_member(
        &mut self,
        id: MemberId,
        cands: &[FlowCandidate<'_>],
        only: Option<&BTreeSet<FlowSpec>>,
        end_of_rib: bool,
    ) -> Vec<Send> {
        let Some(m) = self.members.get_mut(&id) else {
            return Vec::new();
        };
        let fam_on = |r: &FlowSpec| m.spec.families[fam_index(r.family())];
        let looked_at = |r: &FlowSpec| only.is_none_or(|o| o.contains(r));
        let mut wanted: BTreeMap<&FlowSpec, Attrs> = BTreeMap::new();
        for c in cands.iter().filter(|c| fam_on(c.rule) && looked_at(c.rule)) {
            if let Some(a) = export_flowspec(c.rule, c.attrs, c.src, &m.spec.ctx) {
                wanted.insert(c.rule, a);
            }
        }
        // Withdrawals first (per family), then announcements packed by attribute set.
        let mut gone: [Vec<FlowSpec>; 2] = [Vec::new(), Vec::new()];
        m.sent.retain(|r, _| {
            let keep = !looked_at(r) || wanted.contains_key(r);
            if !keep {
                gone[fam_index(r.family())].push(r.clone());
            }
            keep
        });
        let mut updates = Vec::new();
        for (i, rules) in gone.into_iter().enumerate() {
            if !rules.is_empty() {
                updates.push(withdraw_flowspec(family_of(i), rules));
            }
        }
        // (family, attribute set) → rules, in the order first seen (the table's §5.1 order).
        let mut packs: Vec<(usize, Attrs, Vec<FlowSpec>)> = Vec::new();
        for (rule, a) in wanted {
            if m.sent.get(rule) == Some(&a) {
                continue;
            }
            let i = fam_index(rule.family());
            match packs.iter_mut().find(|(f, pa, _)| *f == i && *pa == a) {
                Some((_, _, rules)) => rules.push(rule.clone()),
                None => packs.push((i, a.clone(), vec![rule.clone()])),
            }
            m.sent.insert(rule.clone(), a);
        }
        for (i, a, rules) in packs {
            updates.push(announce_flowspec(&a, family_of(i), rules));
        }
        if end_of_rib {
            for (i, on) in m.spec.families.iter().enumerate() {
                if *on {
                    updates.push(Update::end_of_rib(bgp::wire::flowspec::afi_safi(
                        family_of(i),
                    )));
                }
            }
        }
        encode(&m.spec, updates).into_iter().collect()
    }
}

fn family_of(i: usize) -> Family {
    if i == 0 { Family::V4 } else { Family::V6 }
}

/// Encodes `updates` (split to the session's message size) into one send to the member.
fn encode(spec: &FlowMemberSpec, updates: Vec<Update>) -> Option<Send> {
    if updates.is_empty() {
        return None;
    }
    let mut buf = BytesMut::new();
    let mut messages = 0;
    for u in &updates {
        match u.encode_split(&spec.wire, &mut buf) {
            Ok(n) => messages += n,
            Err(e) => tracing::error!(error = %e, "FlowSpec UPDATE not encodable; skipped"),
        }
    }
    (messages > 0).then(|| Send {
        to: vec![spec.id],
        bytes: buf.freeze(),
        messages,
    })
}

#[cfg(test)]
mod tests;
