//! Two FSMs against each other in memory, on virtual time: the `Pair` harness.
//!
//! Every connection attempt, message and close travels with a fixed one-way latency through an event
//! queue ordered by (time, sequence), so delivery is FIFO per direction, as on TCP. Timers are kept
//! per side exactly as a driver keeps them (the last `Output::Timer` for an id wins).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

use bgp::fsm::*;

const LATENCY: Duration = Duration::from_millis(5);
const S: fn(u64) -> Duration = Duration::from_secs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// `from` opened connection `conn` toward the other side.
    Syn {
        from: Side,
        conn: ConnId,
    },
    Input {
        to: Side,
        input: InputKey,
    },
}

/// `Input` is not `Ord`; events carry it through an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct InputKey(usize);

struct Node {
    fsm: Fsm,
    timers: BTreeMap<TimerId, Time>,
    frozen: bool,
    backlog: Vec<Input>,
    outputs: Vec<(Time, Output)>,
}

struct Pair {
    now: Time,
    seq: u64,
    queue: BinaryHeap<Reverse<(Time, u64, Ev)>>,
    inputs: Vec<Option<Input>>,
    nodes: HashMap<Side, Node>,
    /// (side, conn) → (other side's conn)
    links: HashMap<(Side, ConnId), ConnId>,
}

fn cfg(asn: u32, peer: u32, id: [u8; 4]) -> FsmConfig {
    let mut c = FsmConfig::new(asn, peer, Ipv4Addr::from(id));
    c.connect_retry = S(5);
    c
}

impl Pair {
    fn new(a: FsmConfig, b: FsmConfig) -> Self {
        let node = |c| Node {
            fsm: Fsm::new(c),
            timers: BTreeMap::new(),
            frozen: false,
            backlog: Vec::new(),
            outputs: Vec::new(),
        };
        Pair {
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            inputs: Vec::new(),
            nodes: HashMap::from([(Side::A, node(a)), (Side::B, node(b))]),
            links: HashMap::new(),
        }
    }

    fn node(&mut self, s: Side) -> &mut Node {
        self.nodes.get_mut(&s).unwrap()
    }

    fn fsm(&self, s: Side) -> &Fsm {
        &self.nodes[&s].fsm
    }

    fn push(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    fn push_input(&mut self, at: Time, to: Side, input: Input) {
        self.inputs.push(Some(input));
        let key = InputKey(self.inputs.len() - 1);
        self.push(at, Ev::Input { to, input: key });
    }

    /// Feeds an input now and performs the outputs.
    fn input(&mut self, s: Side, input: Input) {
        if self.nodes[&s].frozen {
            self.node(s).backlog.push(input);
            return;
        }
        let now = self.now;
        let out = self.node(s).fsm.handle(now, input);
        for o in out {
            self.perform(s, o);
        }
    }

    fn perform(&mut self, s: Side, o: Output) {
        let now = self.now;
        self.node(s).outputs.push((now, o.clone()));
        match o {
            Output::Connect(conn) => self.push(now + LATENCY, Ev::Syn { from: s, conn }),
            Output::Send(conn, m) => {
                if let Some(&peer) = self.links.get(&(s, conn)) {
                    self.push_input(now + LATENCY, s.other(), Input::Received(peer, m));
                }
            }
            Output::Close(conn) => {
                if let Some(peer) = self.links.remove(&(s, conn)) {
                    self.links.remove(&(s.other(), peer));
                    self.push_input(now + LATENCY, s.other(), Input::Closed(peer));
                }
            }
            Output::Timer(t, Some(d)) => {
                self.node(s).timers.insert(t, d);
            }
            Output::Timer(t, None) => {
                self.node(s).timers.remove(&t);
            }
            Output::Accept(_) | Output::Refuse => unreachable!("handled in syn()"),
            Output::State(_)
            | Output::Established(..)
            | Output::Down(_)
            | Output::RouteRefresh(..) => {}
        }
    }

    /// The SYN from `from` reaches the other side: it accepts or refuses.
    fn syn(&mut self, from: Side, conn: ConnId) {
        let to = from.other();
        if self.nodes[&to].frozen {
            // A stopped process still has its kernel accept the connection, but never reads it.
            self.push_input(self.now + LATENCY, from, Input::ConnectFailed(conn));
            return;
        }
        let now = self.now;
        let out = self.node(to).fsm.handle(now, Input::Incoming);
        let mut outs = out.into_iter();
        match outs.next() {
            Some(Output::Accept(peer)) => {
                self.node(to).outputs.push((now, Output::Accept(peer)));
                self.links.insert((to, peer), conn);
                self.links.insert((from, conn), peer);
                self.push_input(now + LATENCY, from, Input::Connected(conn));
            }
            Some(Output::Refuse) => {
                self.node(to).outputs.push((now, Output::Refuse));
                self.push_input(now + LATENCY, from, Input::ConnectFailed(conn));
            }
            other => panic!("Incoming answered with {other:?}"),
        }
        for o in outs {
            self.perform(to, o);
        }
    }

    fn next_timer(&self) -> Option<(Time, Side, TimerId)> {
        self.nodes
            .iter()
            .filter(|(_, n)| !n.frozen)
            .flat_map(|(s, n)| n.timers.iter().map(move |(t, d)| (*d, *s, *t)))
            .min()
    }

    /// Runs every event and timer up to `until` (virtual time).
    fn run_until(&mut self, until: Time) {
        loop {
            let q = self.queue.peek().map(|Reverse((t, ..))| *t);
            let t = self.next_timer();
            let next = match (q, t) {
                (Some(q), Some((t, ..))) => q.min(t),
                (Some(q), None) => q,
                (None, Some((t, ..))) => t,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            if q == Some(next) {
                let Reverse((_, _, ev)) = self.queue.pop().unwrap();
                match ev {
                    Ev::Syn { from, conn } => self.syn(from, conn),
                    Ev::Input { to, input } => {
                        let i = self.inputs[input.0].take().unwrap();
                        self.input(to, i);
                    }
                }
            } else if let Some((_, s, id)) = t {
                self.node(s).timers.remove(&id);
                self.input(s, Input::Timer(id));
            }
        }
        self.now = until;
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn freeze(&mut self, s: Side) {
        self.node(s).frozen = true;
    }

    fn thaw(&mut self, s: Side) {
        let backlog = {
            let n = self.node(s);
            n.frozen = false;
            std::mem::take(&mut n.backlog)
        };
        for i in backlog {
            self.input(s, i);
        }
    }

    fn outputs(&self, s: Side) -> &[(Time, Output)] {
        &self.nodes[&s].outputs
    }

    fn sent_notifications(&self, s: Side) -> Vec<Notification> {
        self.outputs(s)
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Send(_, Msg::Notification(n)) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    fn idle_hold_delays(&self, s: Side) -> Vec<Duration> {
        self.outputs(s)
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Timer(TimerId::IdleHold, Some(d)) => Some(*d - *at),
                _ => None,
            })
            .collect()
    }

    /// Both Established on the two ends of the same connection.
    fn assert_established(&self) {
        assert_eq!(
            self.fsm(Side::A).state(),
            State::Established,
            "A: {:?}",
            self.outputs(Side::A)
        );
        assert_eq!(
            self.fsm(Side::B).state(),
            State::Established,
            "B: {:?}",
            self.outputs(Side::B)
        );
        let a = self.fsm(Side::A).established_conn().unwrap();
        let b = self.fsm(Side::B).established_conn().unwrap();
        assert_eq!(self.links.get(&(Side::A, a)), Some(&b));
        assert_eq!(self.fsm(Side::A).connections(), 1);
        assert_eq!(self.fsm(Side::B).connections(), 1);
    }

    /// Which side opened the connection the session runs on.
    fn established_initiator(&self) -> Side {
        let a = self.fsm(Side::A).established_conn().unwrap();
        let a_connected = self
            .outputs(Side::A)
            .iter()
            .any(|(_, o)| *o == Output::Connect(a));
        if a_connected { Side::A } else { Side::B }
    }
}

fn ebgp_pair() -> Pair {
    Pair::new(
        cfg(65001, 65002, [10, 0, 0, 1]),
        cfg(65002, 65001, [10, 0, 0, 2]),
    )
}

#[test]
fn active_and_passive_sides_establish_rfc4271_8_2_2() {
    let mut a = cfg(65001, 65002, [10, 0, 0, 1]);
    a.passive = true;
    let mut p = Pair::new(a, cfg(65002, 65001, [10, 0, 0, 2]));
    p.input(Side::A, Input::Start);
    p.input(Side::B, Input::Start);
    p.run_for(S(1));
    p.assert_established();
    assert_eq!(p.established_initiator(), Side::B);
    let n = p.fsm(Side::A).status().negotiated.clone().unwrap();
    assert_eq!((n.local_as, n.peer_as, n.hold_time), (65001, 65002, 90));
}

#[test]
fn simultaneous_open_keeps_the_connection_of_the_higher_identifier_rfc4271_6_8() {
    for (a_id, b_id, winner) in [
        ([10, 0, 0, 9], [10, 0, 0, 2], Side::A),
        ([10, 0, 0, 1], [10, 0, 0, 2], Side::B),
    ] {
        let mut p = Pair::new(cfg(65001, 65002, a_id), cfg(65002, 65001, b_id));
        p.input(Side::A, Input::Start);
        p.input(Side::B, Input::Start);
        p.run_for(S(2));
        p.assert_established();
        assert_eq!(p.established_initiator(), winner);
        let collisions = |s| {
            p.sent_notifications(s)
                .iter()
                .filter(|n| {
                    (n.code, n.subcode) == (code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION)
                })
                .count()
        };
        assert!(
            collisions(Side::A) + collisions(Side::B) >= 1,
            "one side resolved the collision"
        );
        // A resolved collision is not a failure: no back-off, no flap.
        assert_eq!(p.fsm(Side::A).status().flaps, 0);
        assert_eq!(p.fsm(Side::B).status().failures, 0);
        assert!(p.idle_hold_delays(Side::A).is_empty() && p.idle_hold_delays(Side::B).is_empty());
    }
}

#[test]
fn collision_detected_by_the_side_that_started_second_rfc4271_6_8() {
    // B starts a little later (before A's SYN arrives): the two connections reach OpenConfirm at
    // different times on each side; whichever side resolves, both keep the same connection.
    for b_id in [[10, 0, 0, 1], [10, 0, 0, 200]] {
        let mut p = Pair::new(cfg(65001, 65002, [10, 0, 0, 100]), cfg(65002, 65001, b_id));
        p.input(Side::A, Input::Start);
        p.run_for(Duration::from_millis(3));
        p.input(Side::B, Input::Start);
        p.run_for(S(2));
        p.assert_established();
        let winner = if b_id[3] > 100 { Side::B } else { Side::A };
        assert_eq!(p.established_initiator(), winner);
        let resolved: Vec<Side> = [Side::A, Side::B]
            .into_iter()
            .filter(|&s| {
                p.sent_notifications(s)
                    .iter()
                    .any(|n| n.subcode == cease::CONNECTION_COLLISION_RESOLUTION)
            })
            .collect();
        assert!(
            !resolved.is_empty(),
            "a collision happened and was resolved"
        );
    }
}

#[test]
fn hold_timer_expiry_on_a_frozen_peer_then_reestablishment_rfc4271_6_5() {
    let mut a = cfg(65001, 65002, [10, 0, 0, 1]);
    a.hold_time = 9;
    let mut p = Pair::new(a, cfg(65002, 65001, [10, 0, 0, 2]));
    p.input(Side::A, Input::Start);
    p.input(Side::B, Input::Start);
    p.run_for(S(1));
    p.assert_established();
    p.freeze(Side::B);
    p.run_for(S(12));
    assert_ne!(p.fsm(Side::A).state(), State::Established);
    assert!(
        p.sent_notifications(Side::A)
            .iter()
            .any(|n| n.code == code::HOLD_TIMER_EXPIRED)
    );
    assert!(p.outputs(Side::A).iter().any(
        |(_, o)| matches!(o, Output::Down(Cause::Sent(n)) if n.code == code::HOLD_TIMER_EXPIRED)
    ));
    p.thaw(Side::B);
    p.run_for(S(30));
    p.assert_established();
    assert_eq!(p.fsm(Side::A).status().flaps, 1);
    assert_eq!(p.fsm(Side::B).status().flaps, 1);
}

#[test]
fn peer_shutdown_notification_tears_down_and_peer_reconnects_after_restart_rfc8203() {
    let mut p = ebgp_pair();
    p.input(Side::A, Input::Start);
    p.input(Side::B, Input::Start);
    p.run_for(S(1));
    p.assert_established();
    p.input(
        Side::A,
        Input::Stop {
            message: Some("planned maintenance".into()),
        },
    );
    p.run_for(S(20));
    assert_eq!(p.fsm(Side::A).state(), State::Idle);
    assert_ne!(p.fsm(Side::B).state(), State::Established);
    match &p.fsm(Side::B).status().last_error {
        // B saw the Cease, or later a refused reconnect; the shutdown message reached it either way.
        Some(_) => {}
        None => panic!("B has no last error"),
    }
    let received_msg = p.outputs(Side::B).iter().find_map(|(_, o)| match o {
        Output::Down(Cause::Received(n)) => n
            .shutdown_communication()
            .and_then(Result::ok)
            .map(str::to_owned),
        _ => None,
    });
    assert_eq!(received_msg.as_deref(), Some("planned maintenance"));
    // B kept trying (A refuses while stopped) without giving up.
    assert!(
        p.outputs(Side::B)
            .iter()
            .filter(|(_, o)| matches!(o, Output::Connect(_)))
            .count()
            >= 2
    );
    p.input(Side::A, Input::Start);
    p.run_for(S(10));
    p.assert_established();
}

#[test]
fn capability_mismatch_refuses_the_session_with_growing_back_off_rfc5492_5() {
    let mut a = cfg(65001, 65002, [10, 0, 0, 1]);
    a.required_capabilities = vec![cap_code::ADD_PATH];
    let mut p = Pair::new(a, cfg(65002, 65001, [10, 0, 0, 2]));
    p.input(Side::A, Input::Start);
    p.input(Side::B, Input::Start);
    p.run_for(S(40));
    assert_eq!(p.fsm(Side::A).status().established, 0);
    assert_eq!(p.fsm(Side::B).status().established, 0);
    assert!(
        p.sent_notifications(Side::A).iter().all(
            |n| (n.code, n.subcode) == (code::OPEN_MESSAGE, open_error::UNSUPPORTED_CAPABILITY)
        ),
        "{:?}",
        p.sent_notifications(Side::A)
    );
    match &p.fsm(Side::B).status().last_error {
        Some(Cause::Received(n)) => assert_eq!(n.subcode, open_error::UNSUPPORTED_CAPABILITY),
        other => panic!("B's last error: {other:?}"),
    }
    // Each consecutive failure doubles the idle hold: 1, 2, 4, 8, 16 s ...
    let d = p.idle_hold_delays(Side::B);
    assert!(d.len() >= 4, "{d:?}");
    for w in d.windows(2) {
        assert!(w[1] >= w[0], "back-off never shrinks while failing: {d:?}");
    }
    assert!(d.last().unwrap() >= &S(8), "{d:?}");
}

#[test]
fn wrong_as_on_one_side_never_establishes_and_reports_bad_peer_as_rfc4271_6_2() {
    let mut p = Pair::new(
        cfg(65001, 65009, [10, 0, 0, 1]),
        cfg(65002, 65001, [10, 0, 0, 2]),
    );
    p.input(Side::A, Input::Start);
    p.input(Side::B, Input::Start);
    p.run_for(S(10));
    assert_eq!(p.fsm(Side::A).status().established, 0);
    assert!(
        p.sent_notifications(Side::A)
            .iter()
            .any(|n| (n.code, n.subcode) == (code::OPEN_MESSAGE, open_error::BAD_PEER_AS))
    );
}

#[test]
fn delay_open_on_both_sides_still_establishes_rfc4271_8_1_1() {
    let mut a = cfg(65001, 65002, [10, 0, 0, 1]);
    a.delay_open = Some(S(3));
    let mut b = cfg(65002, 65001, [10, 0, 0, 2]);
    b.delay_open = Some(S(3));
    let mut p = Pair::new(a, b);
    p.input(Side::A, Input::Start);
    p.input(Side::B, Input::Start);
    p.run_for(S(10));
    p.assert_established();
}

#[test]
fn hold_time_zero_session_stays_up_without_keepalives_rfc4271_4_4() {
    let mut a = cfg(65001, 65002, [10, 0, 0, 1]);
    a.hold_time = 0;
    let mut p = Pair::new(a, cfg(65002, 65001, [10, 0, 0, 2]));
    p.input(Side::A, Input::Start);
    p.input(Side::B, Input::Start);
    p.run_for(S(1));
    p.assert_established();
    let keepalives = |p: &Pair| {
        p.outputs(Side::A)
            .iter()
            .chain(p.outputs(Side::B))
            .filter(|(_, o)| matches!(o, Output::Send(_, Msg::Keepalive)))
            .count()
    };
    let before = keepalives(&p);
    p.run_for(S(3600));
    p.assert_established();
    assert_eq!(keepalives(&p), before);
}

#[test]
fn keepalives_keep_an_idle_session_up_for_an_hour_rfc4271_4_4() {
    let mut a = cfg(65001, 65002, [10, 0, 0, 1]);
    a.hold_time = 3;
    let mut p = Pair::new(a, cfg(65002, 65001, [10, 0, 0, 2]));
    p.input(Side::A, Input::Start);
    p.input(Side::B, Input::Start);
    p.run_for(S(3600));
    p.assert_established();
    assert_eq!(p.fsm(Side::A).status().flaps, 0);
}
