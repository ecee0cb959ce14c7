//! Single-machine behaviour tests: each drives one `Fsm` with hand-written inputs on virtual time.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

/// Exact timers (no jitter) so deadlines can be asserted; the jitter has its own tests.
fn cfg() -> FsmConfig {
    let mut c = FsmConfig::new(65001, 65002, Ipv4Addr::new(10, 0, 0, 1));
    c.jitter_seed = None;
    c
}

/// The fields of a peer's OPEN, editable before encoding them as the codec's `Open`.
#[derive(Clone)]
struct PeerOpen {
    version: u8,
    my_as: u16,
    hold_time: u16,
    bgp_id: Ipv4Addr,
    caps: Capabilities,
}

impl PeerOpen {
    fn wire(self) -> Open {
        let mut o = Open::new(
            u32::from(self.my_as),
            self.hold_time,
            self.bgp_id,
            self.caps.to_wire(),
        );
        o.version = self.version;
        o
    }
}

fn peer_open(asn: u32, hold: u16) -> PeerOpen {
    PeerOpen {
        version: 4,
        my_as: u16::try_from(asn).unwrap_or(AS_TRANS as u16),
        hold_time: hold,
        bgp_id: Ipv4Addr::new(10, 0, 0, 2),
        caps: default_capabilities(asn, &[Family::IPV4_UNICAST]),
    }
}

fn sent(out: &[Output]) -> Vec<&Msg> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(_, m) => Some(m),
            _ => None,
        })
        .collect()
}

fn notification(out: &[Output]) -> Option<&Notification> {
    sent(out).into_iter().find_map(|m| match m {
        Msg::Notification(n) => Some(n),
        _ => None,
    })
}

fn timer(out: &[Output], t: TimerId) -> Option<Option<Time>> {
    out.iter().rev().find_map(|o| match o {
        Output::Timer(id, d) if *id == t => Some(*d),
        _ => None,
    })
}

/// Start, connect, exchange OPEN and KEEPALIVE: returns the FSM Established on connection 1.
fn established(cfg: FsmConfig, peer: PeerOpen) -> (Fsm, ConnId) {
    let mut f = Fsm::new(cfg);
    let out = f.handle(S(0), Input::Start);
    let id = match out[0] {
        Output::Connect(id) => id,
        ref o => panic!("expected Connect first, got {o:?}"),
    };
    f.handle(S(0), Input::Connected(id));
    assert_eq!(f.state(), State::OpenSent);
    f.handle(S(0), Input::Received(id, Msg::Open(peer.wire())));
    assert_eq!(f.state(), State::OpenConfirm);
    let out = f.handle(S(0), Input::Received(id, Msg::Keepalive));
    assert!(out.iter().any(|o| matches!(o, Output::Established(..))));
    assert_eq!(f.state(), State::Established);
    (f, id)
}

#[test]
fn manual_start_connects_and_arms_connect_retry_rfc4271_8_2_2() {
    let mut f = Fsm::new(cfg());
    let out = f.handle(S(0), Input::Start);
    assert!(matches!(out[0], Output::Connect(_)));
    assert_eq!(timer(&out, TimerId::ConnectRetry), Some(Some(S(30))));
    assert_eq!(f.state(), State::Connect);
}

#[test]
fn passive_peer_waits_in_active_without_connecting_rfc4271_8_2_2() {
    let mut c = cfg();
    c.passive = true;
    let mut f = Fsm::new(c);
    let out = f.handle(S(0), Input::Start);
    assert!(!out.iter().any(|o| matches!(o, Output::Connect(_))));
    assert_eq!(f.state(), State::Active);
}

#[test]
fn idle_refuses_incoming_connections_rfc4271_8_2_2() {
    let mut f = Fsm::new(cfg());
    assert_eq!(f.handle(S(0), Input::Incoming), vec![Output::Refuse]);
}

#[test]
fn connect_retry_expiry_opens_a_new_connection_rfc4271_8_2_2() {
    let mut f = Fsm::new(cfg());
    let out = f.handle(S(0), Input::Start);
    let Output::Connect(first) = out[0] else {
        panic!()
    };
    f.handle(S(1), Input::ConnectFailed(first));
    assert_eq!(f.state(), State::Active);
    let out = f.handle(S(30), Input::Timer(TimerId::ConnectRetry));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Connect(id) if *id != first))
    );
    assert_eq!(f.state(), State::Connect);
}

#[test]
fn hold_time_negotiates_to_minimum_rfc4271_4_2() {
    let (f, _) = established(cfg(), peer_open(65002, 30));
    let n = f.status().negotiated.clone().unwrap();
    assert_eq!(n.hold_time, 30);
    assert_eq!(n.keepalive, 10);
    let mut c = cfg();
    c.hold_time = 9;
    let (f, _) = established(c, peer_open(65002, 180));
    assert_eq!(f.status().negotiated.clone().unwrap().hold_time, 9);
}

#[test]
fn hold_time_zero_disables_hold_and_keepalive_timers_rfc4271_4_2() {
    let mut f = Fsm::new(cfg());
    let out = f.handle(S(0), Input::Start);
    let Output::Connect(id) = out[0] else {
        panic!()
    };
    f.handle(S(0), Input::Connected(id));
    let out = f.handle(
        S(1),
        Input::Received(id, Msg::Open(peer_open(65002, 0).wire())),
    );
    assert_eq!(timer(&out, TimerId::Hold(id)), Some(None));
    assert_eq!(timer(&out, TimerId::Keepalive(id)), Some(None));
    f.handle(S(1), Input::Received(id, Msg::Keepalive));
    assert_eq!(f.state(), State::Established);
    // Nothing expires, however long the silence.
    assert!(
        f.handle(S(100_000), Input::Timer(TimerId::Hold(id)))
            .is_empty()
    );
    assert_eq!(f.state(), State::Established);
}

#[test]
fn hold_time_of_one_or_two_seconds_is_refused_rfc4271_6_2() {
    for hold in [1, 2] {
        let mut f = Fsm::new(cfg());
        let out = f.handle(S(0), Input::Start);
        let Output::Connect(id) = out[0] else {
            panic!()
        };
        f.handle(S(0), Input::Connected(id));
        let out = f.handle(
            S(0),
            Input::Received(id, Msg::Open(peer_open(65002, hold).wire())),
        );
        let n = notification(&out).expect("NOTIFICATION");
        assert_eq!(
            (n.code, n.subcode),
            (code::OPEN_MESSAGE, open_error::UNACCEPTABLE_HOLD_TIME)
        );
        assert_eq!(f.state(), State::Idle);
    }
}

fn open_error_for(open: PeerOpen, cfg: FsmConfig) -> Notification {
    let mut f = Fsm::new(cfg);
    let out = f.handle(S(0), Input::Start);
    let Output::Connect(id) = out[0] else {
        panic!()
    };
    f.handle(S(0), Input::Connected(id));
    let out = f.handle(S(0), Input::Received(id, Msg::Open(open.wire())));
    assert!(out.contains(&Output::Close(id)));
    notification(&out).cloned().expect("NOTIFICATION")
}

#[test]
fn wrong_peer_as_gets_bad_peer_as_rfc4271_6_2() {
    let n = open_error_for(peer_open(65099, 90), cfg());
    assert_eq!(
        (n.code, n.subcode),
        (code::OPEN_MESSAGE, open_error::BAD_PEER_AS)
    );
}

#[test]
fn four_octet_peer_as_behind_as_trans_is_accepted_rfc6793_4_1() {
    let mut c = cfg();
    c.peer_as = Some(4_200_000_002);
    let (f, _) = established(c, peer_open(4_200_000_002, 90));
    let n = f.status().negotiated.clone().unwrap();
    assert_eq!(n.peer_as, 4_200_000_002);
    assert!(n.four_octet_as);
}

#[test]
fn as_trans_without_four_octet_capability_is_bad_peer_as_rfc6793_4_1() {
    let mut o = peer_open(65002, 90);
    o.my_as = AS_TRANS as u16;
    o.caps.four_octet_as = None;
    let n = open_error_for(o, cfg());
    assert_eq!(
        (n.code, n.subcode),
        (code::OPEN_MESSAGE, open_error::BAD_PEER_AS)
    );
}

#[test]
fn two_octet_field_disagreeing_with_capability_is_bad_peer_as_rfc6793_4_1() {
    let mut o = peer_open(65002, 90);
    o.my_as = 65003;
    let n = open_error_for(o, cfg());
    assert_eq!(
        (n.code, n.subcode),
        (code::OPEN_MESSAGE, open_error::BAD_PEER_AS)
    );
}

#[test]
fn zero_or_own_ibgp_identifier_is_bad_bgp_identifier_rfc6286_2_1() {
    let mut o = peer_open(65002, 90);
    o.bgp_id = Ipv4Addr::UNSPECIFIED;
    let n = open_error_for(o, cfg());
    assert_eq!(
        (n.code, n.subcode),
        (code::OPEN_MESSAGE, open_error::BAD_BGP_IDENTIFIER)
    );

    let mut c = cfg();
    c.peer_as = Some(65001);
    let mut o = peer_open(65001, 90);
    o.bgp_id = c.router_id;
    let n = open_error_for(o, c);
    assert_eq!(
        (n.code, n.subcode),
        (code::OPEN_MESSAGE, open_error::BAD_BGP_IDENTIFIER)
    );
}

#[test]
fn unsupported_version_answers_with_our_version_rfc4271_6_2() {
    let mut o = peer_open(65002, 90);
    o.version = 3;
    let n = open_error_for(o, cfg());
    assert_eq!(
        (n.code, n.subcode, n.data.as_slice()),
        (code::OPEN_MESSAGE, 1, &[0u8, 4][..])
    );
}

#[test]
fn missing_required_capability_is_unsupported_capability_with_data_rfc5492_5() {
    let mut c = cfg();
    c.required_capabilities = vec![cap_code::FOUR_OCTET_AS];
    let mut o = peer_open(65002, 90);
    o.caps.four_octet_as = None;
    let n = open_error_for(o, c);
    assert_eq!(
        (n.code, n.subcode),
        (code::OPEN_MESSAGE, open_error::UNSUPPORTED_CAPABILITY)
    );
    assert_eq!(n.data, vec![65, 4, 0, 0, 0xfd, 0xe9]);
}

#[test]
fn keepalive_in_opensent_is_an_fsm_error_rfc6608_4() {
    let mut f = Fsm::new(cfg());
    let out = f.handle(S(0), Input::Start);
    let Output::Connect(id) = out[0] else {
        panic!()
    };
    f.handle(S(0), Input::Connected(id));
    let out = f.handle(S(0), Input::Received(id, Msg::Keepalive));
    let n = notification(&out).unwrap();
    assert_eq!(
        (n.code, n.subcode),
        (code::FSM, fsm_error::UNEXPECTED_IN_OPENSENT)
    );
}

#[test]
fn update_before_established_is_an_fsm_error_rfc6608_4() {
    let mut f = Fsm::new(cfg());
    let out = f.handle(S(0), Input::Start);
    let Output::Connect(id) = out[0] else {
        panic!()
    };
    f.handle(S(0), Input::Connected(id));
    f.handle(
        S(0),
        Input::Received(id, Msg::Open(peer_open(65002, 90).wire())),
    );
    let out = f.handle(S(0), Input::Received(id, Msg::Update));
    let n = notification(&out).unwrap();
    assert_eq!(
        (n.code, n.subcode),
        (code::FSM, fsm_error::UNEXPECTED_IN_OPENCONFIRM)
    );
}

#[test]
fn hold_timer_expiry_sends_notification_and_goes_idle_rfc4271_6_5() {
    let (mut f, id) = established(cfg(), peer_open(65002, 9));
    // A message at t=5 pushes the deadline from 9 to 14.
    f.handle(S(5), Input::Received(id, Msg::Keepalive));
    let out = f.handle(S(9), Input::Timer(TimerId::Hold(id)));
    assert_eq!(out, vec![Output::Timer(TimerId::Hold(id), Some(S(14)))]);
    let out = f.handle(S(14), Input::Timer(TimerId::Hold(id)));
    let n = notification(&out).unwrap();
    assert_eq!(n.code, code::HOLD_TIMER_EXPIRED);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Down(Cause::Sent(_))))
    );
    assert_eq!(f.state(), State::Idle);
    assert_eq!(f.status().flaps, 1);
}

#[test]
fn alive_while_back_pressured_keeps_the_hold_timer_satisfied() {
    let (mut f, id) = established(cfg(), peer_open(65002, 9));
    f.handle(S(8), Input::Alive(id));
    let out = f.handle(S(9), Input::Timer(TimerId::Hold(id)));
    assert_eq!(out, vec![Output::Timer(TimerId::Hold(id), Some(S(17)))]);
    assert_eq!(f.state(), State::Established);
}

#[test]
fn keepalive_timer_sends_keepalive_every_third_of_hold_rfc4271_4_4() {
    let (mut f, id) = established(cfg(), peer_open(65002, 90));
    let out = f.handle(S(30), Input::Timer(TimerId::Keepalive(id)));
    assert_eq!(sent(&out), vec![&Msg::Keepalive]);
    assert_eq!(timer(&out, TimerId::Keepalive(id)), Some(Some(S(60))));
}

#[test]
fn peer_notification_tears_down_and_restarts_after_idle_hold_rfc4271_6_4() {
    let (mut f, id) = established(cfg(), peer_open(65002, 90));
    let n = Notification::shutdown(cease::ADMINISTRATIVE_SHUTDOWN, "maintenance");
    let out = f.handle(S(10), Input::Received(id, Msg::Notification(n.clone())));
    assert!(out.contains(&Output::Close(id)));
    assert!(out.contains(&Output::Down(Cause::Received(n))));
    assert_eq!(f.state(), State::Idle);
    assert_eq!(timer(&out, TimerId::IdleHold), Some(Some(S(11))));
    // Incoming connections are refused while idle-holding.
    assert_eq!(f.handle(S(10), Input::Incoming), vec![Output::Refuse]);
    let out = f.handle(S(11), Input::Timer(TimerId::IdleHold));
    assert!(matches!(out[0], Output::Connect(_)));
}

#[test]
fn consecutive_failures_double_idle_hold_up_to_the_cap() {
    let mut c = cfg();
    c.idle_hold_max = S(5);
    let mut f = Fsm::new(c);
    let mut now = S(0);
    let mut delays = Vec::new();
    let out = f.handle(now, Input::Start);
    let Output::Connect(mut id) = out[0] else {
        panic!()
    };
    for _ in 0..5 {
        f.handle(now, Input::Connected(id));
        let out = f.handle(now, Input::Closed(id));
        let Some(Some(at)) = timer(&out, TimerId::IdleHold) else {
            panic!("no idle hold in {out:?}")
        };
        delays.push((at - now).as_secs());
        now = at;
        let out = f.handle(now, Input::Timer(TimerId::IdleHold));
        let Output::Connect(next) = out[0] else {
            panic!()
        };
        id = next;
    }
    assert_eq!(delays, vec![1, 2, 4, 5, 5]);
}

/// Drives `retries` ConnectRetry expiries (connections never complete) and returns each delay.
fn connect_retry_delays(c: FsmConfig, retries: usize) -> Vec<Duration> {
    let mut f = Fsm::new(c);
    let mut now = S(0);
    let mut out = f.handle(now, Input::Start);
    let mut delays = Vec::new();
    for _ in 0..retries {
        let Some(Some(at)) = timer(&out, TimerId::ConnectRetry) else {
            panic!("no ConnectRetry in {out:?}")
        };
        delays.push(at - now);
        now = at;
        out = f.handle(now, Input::Timer(TimerId::ConnectRetry));
    }
    delays
}

#[test]
fn connect_retry_is_jittered_between_three_quarters_and_the_full_time_rfc4271_10() {
    let seeded = FsmConfig::new(65001, 65002, Ipv4Addr::new(10, 0, 0, 1));
    assert!(seeded.jitter_seed.is_some(), "jitter is on by default");
    let d = connect_retry_delays(seeded.clone(), 50);
    assert!(d.iter().all(|&x| x >= S(30) * 3 / 4 && x <= S(30)), "{d:?}");
    // Spread over the range, not one value.
    let (min, max) = (d.iter().min().unwrap(), d.iter().max().unwrap());
    assert!(*max - *min > S(3), "{min:?}..{max:?}");
    // Deterministic per seed (reproducible on virtual time), different between speakers.
    assert_eq!(connect_retry_delays(seeded, 50), d);
    let other = FsmConfig::new(65002, 65001, Ipv4Addr::new(10, 0, 0, 2));
    assert_ne!(connect_retry_delays(other, 50), d);
    // Without a seed the timer is exact.
    assert!(connect_retry_delays(cfg(), 5).iter().all(|&x| x == S(30)));
}

#[test]
fn idle_hold_back_off_is_jittered_rfc4271_10() {
    let mut c = FsmConfig::new(65001, 65002, Ipv4Addr::new(10, 0, 0, 1));
    c.idle_hold_max = S(8);
    let mut f = Fsm::new(c);
    let mut now = S(0);
    let out = f.handle(now, Input::Start);
    let Output::Connect(mut id) = out[0] else {
        panic!()
    };
    for nominal in [1u64, 2, 4, 8, 8, 8] {
        f.handle(now, Input::Connected(id));
        let out = f.handle(now, Input::Closed(id));
        assert_eq!(f.backoff_delay(), S(nominal));
        let Some(Some(at)) = timer(&out, TimerId::IdleHold) else {
            panic!("no idle hold in {out:?}")
        };
        let d = at - now;
        assert!(
            d >= S(nominal) * 3 / 4 && d <= S(nominal),
            "{d:?} for {nominal} s"
        );
        now = at;
        let out = f.handle(now, Input::Timer(TimerId::IdleHold));
        let Output::Connect(next) = out[0] else {
            panic!("{out:?}")
        };
        id = next;
    }
}

#[test]
fn session_stable_for_stable_time_resets_back_off() {
    let (mut f, id) = established(cfg(), peer_open(65002, 90));
    f.handle(S(100), Input::Closed(id));
    assert_eq!(f.status().failures, 1);
    assert_eq!(f.backoff_delay(), S(1));
}

#[test]
fn manual_stop_sends_cease_admin_shutdown_with_message_rfc8203() {
    let (mut f, id) = established(cfg(), peer_open(65002, 90));
    let out = f.handle(
        S(5),
        Input::Stop {
            message: Some("upgrade to v2 — back soon".into()),
        },
    );
    let n = notification(&out).unwrap();
    assert_eq!(
        (n.code, n.subcode),
        (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN)
    );
    assert_eq!(
        n.shutdown_communication(),
        Some(Ok("upgrade to v2 — back soon"))
    );
    assert!(out.contains(&Output::Close(id)));
    assert_eq!(f.state(), State::Idle);
    assert_eq!(
        timer(&out, TimerId::IdleHold),
        None,
        "a manual stop does not restart"
    );
}

#[test]
fn cease_input_sends_the_given_notification_and_does_not_restart_rfc4486_4() {
    let (mut f, id) = established(cfg(), peer_open(65002, 90));
    let given = Notification::max_prefixes(crate::wire::AfiSafi::IPV4_UNICAST, 1000);
    let out = f.handle(
        S(5),
        Input::Cease {
            notification: given.clone(),
        },
    );
    assert_eq!(notification(&out), Some(&given));
    assert_eq!((given.code, given.subcode), (code::CEASE, 1));
    assert!(out.contains(&Output::Close(id)));
    assert_eq!(f.state(), State::Idle);
    assert_eq!(timer(&out, TimerId::IdleHold), None);
}

#[test]
fn shutdown_message_is_cut_at_255_octets_on_a_char_boundary_rfc9003_2() {
    let long = "é".repeat(200);
    let n = Notification::shutdown(cease::ADMINISTRATIVE_SHUTDOWN, &long);
    assert_eq!(n.data[0], 254);
    assert_eq!(
        n.shutdown_communication().unwrap().unwrap().chars().count(),
        127
    );
}

#[test]
fn admin_reset_sends_cease_reset_and_reconnects_rfc4486_4() {
    let (mut f, _) = established(cfg(), peer_open(65002, 90));
    let out = f.handle(S(5), Input::Reset { message: None });
    let n = notification(&out).unwrap();
    assert_eq!(
        (n.code, n.subcode),
        (code::CEASE, cease::ADMINISTRATIVE_RESET)
    );
    assert!(out.iter().any(|o| matches!(o, Output::Connect(_))));
    assert_eq!(f.state(), State::Connect);
}

#[test]
fn delay_open_waits_for_timer_before_sending_open_rfc4271_8_1_1() {
    let mut c = cfg();
    c.delay_open = Some(S(5));
    let mut f = Fsm::new(c);
    let out = f.handle(S(0), Input::Start);
    let Output::Connect(id) = out[0] else {
        panic!()
    };
    let out = f.handle(S(0), Input::Connected(id));
    assert!(sent(&out).is_empty());
    assert_eq!(timer(&out, TimerId::DelayOpen(id)), Some(Some(S(5))));
    assert_eq!(f.state(), State::Connect);
    let out = f.handle(S(5), Input::Timer(TimerId::DelayOpen(id)));
    assert!(matches!(sent(&out)[..], [Msg::Open(_)]));
    assert_eq!(f.state(), State::OpenSent);
}

#[test]
fn delay_open_answers_an_early_peer_open_with_open_and_keepalive_rfc4271_8_2_2() {
    let mut c = cfg();
    c.delay_open = Some(S(5));
    c.passive = true;
    let mut f = Fsm::new(c);
    f.handle(S(0), Input::Start);
    let out = f.handle(S(0), Input::Incoming);
    let Output::Accept(id) = out[0] else { panic!() };
    assert_eq!(f.state(), State::Active);
    let out = f.handle(
        S(1),
        Input::Received(id, Msg::Open(peer_open(65002, 90).wire())),
    );
    let msgs = sent(&out);
    assert!(matches!(msgs[..], [Msg::Open(_), Msg::Keepalive]));
    assert_eq!(timer(&out, TimerId::DelayOpen(id)), Some(None));
    assert_eq!(f.state(), State::OpenConfirm);
}

#[test]
fn incoming_connection_while_established_is_refused_rfc4271_6_8() {
    let (mut f, _) = established(cfg(), peer_open(65002, 90));
    assert_eq!(f.handle(S(1), Input::Incoming), vec![Output::Refuse]);
}

/// Starts `f` and gives it two connections: its own outgoing `X` (connected) and the peer's `Y`
/// (accepted), both before any OPEN from the peer.
fn outgoing_then_incoming(f: &mut Fsm) -> (ConnId, ConnId) {
    let Output::Connect(x) = f.handle(S(0), Input::Start)[0] else {
        panic!("no connect")
    };
    f.handle(S(0), Input::Connected(x));
    let Output::Accept(y) = f.handle(S(0), Input::Incoming)[0] else {
        panic!("not accepted")
    };
    (x, y)
}

/// Our connection (outgoing, `X`) Established while the peer's connection (incoming, `Y`, accepted
/// before) is in OpenSent; then the peer's OPEN arrives on `Y`. Our Identifier is 10.0.0.1.
fn established_then_open_on_the_other(peer_id: [u8; 4]) -> (Fsm, ConnId, ConnId, Vec<Output>) {
    let mut f = Fsm::new(cfg());
    let (x, y) = outgoing_then_incoming(&mut f);
    let mut open = peer_open(65002, 90);
    open.bgp_id = Ipv4Addr::from(peer_id);
    f.handle(S(0), Input::Received(x, Msg::Open(open.clone().wire())));
    f.handle(S(0), Input::Received(x, Msg::Keepalive));
    assert_eq!(f.established_conn(), Some(x));
    let out = f.handle(S(1), Input::Received(y, Msg::Open(open.wire())));
    (f, x, y, out)
}

fn collision_cease() -> Notification {
    Notification::new(
        code::CEASE,
        cease::CONNECTION_COLLISION_RESOLUTION,
        Vec::new(),
    )
}

fn is_collision_cease(n: Option<&Notification>) -> bool {
    n.is_some_and(|n| (n.code, n.subcode) == (code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION))
}

#[test]
fn open_colliding_with_established_loses_at_once_when_the_identifier_rule_agrees_rfc4271_6_8() {
    // We have the higher Identifier: our connection X is the one §6.8 keeps either way.
    let (f, x, y, out) = established_then_open_on_the_other([10, 0, 0, 0]);
    assert!(out.contains(&Output::Close(y)));
    assert!(is_collision_cease(notification(&out)));
    assert_eq!(f.established_conn(), Some(x));
    assert_eq!(f.connections(), 1);
}

#[test]
fn open_colliding_with_established_waits_for_the_peers_resolution_rfc4271_6_8() {
    // The peer has the higher Identifier: the rule favours its connection Y. It may have been in
    // OpenConfirm on X when our OPEN on Y reached it, and then it closes X: closing Y as well would
    // lose both. Nothing is sent on Y until the peer has shown its choice.
    let (f, x, y, out) = established_then_open_on_the_other([10, 0, 0, 2]);
    assert!(sent(&out).is_empty(), "{out:?}");
    assert_eq!(timer(&out, TimerId::Collision(y)), Some(Some(S(6))));
    assert_eq!((f.established_conn(), f.connections()), (Some(x), 2));

    // The peer closes X (it resolved in OpenConfirm): Y carries on, one flap, no idle hold.
    let mut a = f.clone();
    let out = a.handle(
        S(1),
        Input::Received(x, Msg::Notification(collision_cease())),
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Down(Cause::Received(_))))
    );
    assert!(out.contains(&Output::Send(y, Msg::Keepalive)));
    assert_eq!(timer(&out, TimerId::Collision(y)), Some(None));
    assert_eq!(timer(&out, TimerId::IdleHold), None);
    assert_eq!(a.state(), State::OpenConfirm);
    let out = a.handle(S(1), Input::Received(y, Msg::Keepalive));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Established(id, _) if *id == y))
    );
    assert_eq!((a.status().flaps, a.status().failures), (1, 0));

    // Its KEEPALIVE arrives on Y first (it is in OpenConfirm there): we follow, closing X.
    let mut b = f.clone();
    let out = b.handle(S(1), Input::Received(y, Msg::Keepalive));
    assert!(out.contains(&Output::Close(x)));
    assert!(is_collision_cease(notification(&out)));
    assert!(out.contains(&Output::Send(y, Msg::Keepalive)));
    assert_eq!((b.established_conn(), b.connections()), (Some(y), 1));
    assert_eq!(b.status().flaps, 1);

    // It kept X (it was Established there too) and closes Y: nothing else changes.
    let mut c = f.clone();
    let out = c.handle(
        S(1),
        Input::Received(y, Msg::Notification(collision_cease())),
    );
    assert!(out.contains(&Output::Close(y)));
    assert_eq!((c.established_conn(), c.connections()), (Some(x), 1));
    assert_eq!(c.status().flaps, 0);
    let mut c2 = f.clone();
    c2.handle(S(1), Input::Closed(y));
    assert_eq!(
        (c2.established_conn(), c2.connections(), c2.status().flaps),
        (Some(x), 1, 0)
    );

    // No word within `collision_wait` (the peer waits as well): Y is closed as §6.8 prescribes.
    let mut d = f.clone();
    let out = d.handle(S(6), Input::Timer(TimerId::Collision(y)));
    assert!(out.contains(&Output::Close(y)));
    assert!(is_collision_cease(notification(&out)));
    assert_eq!(
        (d.established_conn(), d.connections(), d.status().flaps),
        (Some(x), 1, 0)
    );

    // A stop while waiting sends its Cease on both and answers nothing.
    let mut e = f.clone();
    let out = e.handle(S(1), Input::Stop { message: None });
    assert!(!out.contains(&Output::Send(y, Msg::Keepalive)));
    assert_eq!(e.connections(), 0);
    // A second OPEN on the waiting connection is an FSM error.
    let mut g = f;
    let out = g.handle(
        S(1),
        Input::Received(y, Msg::Open(peer_open(65002, 90).wire())),
    );
    assert_eq!(notification(&out).map(|n| n.code), Some(code::FSM));
    assert_eq!(g.established_conn(), Some(x));
}

#[test]
fn equal_identifiers_keep_the_connection_of_the_larger_as_rfc6286_2_3() {
    // Same BGP Identifier on both sides (allowed between ASes): our AS 65003 is larger than the
    // peer's 65002, so our connection survives a collision in OpenConfirm, as on the peer's side.
    let mut f = Fsm::new(FsmConfig::new(65003, 65002, Ipv4Addr::new(10, 0, 0, 1)));
    let (x, y) = outgoing_then_incoming(&mut f);
    let mut open = peer_open(65002, 90);
    open.bgp_id = Ipv4Addr::new(10, 0, 0, 1);
    f.handle(S(0), Input::Received(x, Msg::Open(open.clone().wire())));
    assert_eq!(f.state(), State::OpenConfirm);
    let out = f.handle(S(0), Input::Received(y, Msg::Open(open.wire())));
    assert!(out.contains(&Output::Close(y)));
    assert!(is_collision_cease(notification(&out)));
    assert_eq!((f.state(), f.connections()), (State::OpenConfirm, 1));
}

#[test]
fn capabilities_negotiate_to_the_intersection_rfc5492() {
    let mut c = cfg();
    c.capabilities.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    c.capabilities.add_path = vec![
        (Family::IPV4_UNICAST, AddPathMode::Both),
        (Family::IPV6_UNICAST, AddPathMode::Receive),
    ];
    c.capabilities.extended_next_hop = vec![(Family::IPV4_UNICAST, 2)];
    c.capabilities.graceful_restart = Some(GracefulRestart {
        restarting: false,
        restart_time: 120,
        families: vec![],
    });
    let mut o = peer_open(65002, 90);
    o.caps.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    o.caps.add_path = vec![
        (Family::IPV4_UNICAST, AddPathMode::Send),
        (Family::IPV6_UNICAST, AddPathMode::Receive),
    ];
    o.caps.extended_next_hop = vec![(Family::IPV4_UNICAST, 2)];
    o.caps.extended_message = false;
    o.caps.graceful_restart = Some(GracefulRestart {
        restarting: true,
        restart_time: 90,
        families: vec![(Family::IPV4_UNICAST, true)],
    });
    let (f, _) = established(c, o);
    let n = f.status().negotiated.clone().unwrap();
    assert_eq!(n.families, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert_eq!(n.add_path_rx, vec![Family::IPV4_UNICAST]);
    assert_eq!(n.add_path_tx, Vec::<Family>::new());
    assert_eq!(n.extended_next_hop, vec![(Family::IPV4_UNICAST, 2)]);
    assert!(!n.extended_message);
    assert_eq!(n.max_message_len(), 4096);
    assert!(n.route_refresh);
    assert_eq!(n.graceful_restart.unwrap().restart_time, 90);
}

#[test]
fn peer_without_multiprotocol_capability_speaks_ipv4_unicast_rfc4760_8() {
    let mut c = cfg();
    c.capabilities.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    let mut o = peer_open(65002, 90);
    o.caps.families.clear();
    let (f, _) = established(c, o);
    assert_eq!(
        f.status().negotiated.clone().unwrap().families,
        vec![Family::IPV4_UNICAST]
    );
}

#[test]
fn route_refresh_is_sent_only_when_the_peer_supports_it_rfc2918_3() {
    let (mut f, id) = established(cfg(), peer_open(65002, 90));
    let out = f.handle(S(1), Input::Refresh(Family::IPV4_UNICAST));
    assert_eq!(
        out,
        vec![Output::Send(
            id,
            Msg::RouteRefresh {
                family: Family::IPV4_UNICAST,
                subtype: 0
            }
        )]
    );
    let mut o = peer_open(65002, 90);
    o.caps.route_refresh = false;
    let (mut f, _) = established(cfg(), o);
    assert!(
        f.handle(S(1), Input::Refresh(Family::IPV4_UNICAST))
            .is_empty()
    );
}

#[test]
fn peer_route_refresh_is_reported_to_the_driver_rfc2918_4() {
    let (mut f, id) = established(cfg(), peer_open(65002, 90));
    let out = f.handle(
        S(1),
        Input::Received(
            id,
            Msg::RouteRefresh {
                family: Family::IPV6_UNICAST,
                subtype: 0,
            },
        ),
    );
    assert_eq!(out, vec![Output::RouteRefresh(Family::IPV6_UNICAST, 0)]);
}

#[test]
fn malformed_message_sends_its_notification_and_closes_rfc4271_6_1() {
    let (mut f, id) = established(cfg(), peer_open(65002, 90));
    let n = Notification::new(code::UPDATE_MESSAGE, 1, Vec::new());
    let out = f.handle(S(1), Input::Malformed(id, n.clone()));
    assert_eq!(out[0], Output::Send(id, Msg::Notification(n)));
    assert!(out.contains(&Output::Close(id)));
    assert_eq!(f.state(), State::Idle);
}

#[test]
fn capability_set_survives_the_codec_round_trip_rfc5492_4() {
    let mut caps =
        default_capabilities(4_200_000_001, &[Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    caps.enhanced_route_refresh = true;
    caps.add_path = vec![(Family::IPV4_UNICAST, AddPathMode::Both)];
    caps.extended_next_hop = vec![(Family::IPV4_UNICAST, 2)];
    caps.graceful_restart = Some(GracefulRestart {
        restarting: true,
        restart_time: 120,
        families: vec![(Family::IPV6_UNICAST, true)],
    });
    caps.long_lived_gr = Some(LongLivedGr {
        families: vec![(Family::IPV4_UNICAST, false, 3600)],
    });
    caps.unknown = vec![(200, vec![1, 2, 3])];
    let open = Open::new(4_200_000_001, 90, Ipv4Addr::new(1, 2, 3, 4), caps.to_wire());
    let bytes = crate::wire::Message::Open(open)
        .to_bytes(&crate::wire::Context::default())
        .unwrap();
    let crate::wire::Message::Open(back) =
        crate::wire::Message::decode(&bytes, &crate::wire::Context::default()).unwrap()
    else {
        panic!("not an OPEN");
    };
    assert_eq!(u32::from(back.my_as), crate::wire::AS_TRANS);
    assert_eq!(Capabilities::from_open(&back), caps);
}

#[test]
fn negotiated_session_gives_the_codec_context_rfc7911_4() {
    let mut c = cfg();
    c.capabilities.add_path = vec![(Family::IPV4_UNICAST, AddPathMode::Receive)];
    let mut o = peer_open(65002, 90);
    o.caps.add_path = vec![(Family::IPV4_UNICAST, AddPathMode::Send)];
    let (f, _) = established(c, o);
    let ctx = f.status().negotiated.as_ref().unwrap().context();
    assert!(ctx.four_octet_as);
    assert!(ctx.add_path_receive(Family::IPV4_UNICAST));
    assert!(!ctx.add_path_send(Family::IPV4_UNICAST));
    assert_eq!(ctx.max_message_len, 65535);
}

fn gr(restarting: bool) -> Option<GracefulRestart> {
    Some(GracefulRestart {
        restarting,
        restart_time: 120,
        families: vec![(Family::IPV4_UNICAST, true)],
    })
}

/// Established with graceful restart negotiated on both sides (the peer's R bit as given).
fn established_gr(peer_restarting: bool) -> (Fsm, ConnId) {
    let mut c = cfg();
    c.capabilities.graceful_restart = gr(false);
    let mut o = peer_open(65002, 90);
    o.caps.graceful_restart = gr(peer_restarting);
    established(c, o)
}

#[test]
fn restarting_peer_on_a_new_connection_replaces_the_established_one_rfc4724_4_2() {
    let (mut f, old) = established_gr(false);
    let out = f.handle(S(100), Input::Incoming);
    let Some(Output::Accept(new)) = out.first().cloned() else {
        panic!("{out:?}")
    };
    assert!(sent(&out).iter().any(|m| matches!(m, Msg::Open(_))));
    assert_eq!(f.state(), State::Established);
    let mut o = peer_open(65002, 90);
    o.caps.graceful_restart = gr(true);
    let out = f.handle(S(100), Input::Received(new, Msg::Open(o.wire())));
    // The old connection is closed without a NOTIFICATION: a TCP failure to the consumer, whose
    // graceful-restart helper keeps the routes stale.
    assert!(out.contains(&Output::Close(old)));
    assert!(out.contains(&Output::Down(Cause::ConnectionClosed)));
    assert_eq!(notification(&out), None);
    assert!(out.contains(&Output::Send(new, Msg::Keepalive)));
    assert_eq!(f.state(), State::OpenConfirm);
    assert_eq!(timer(&out, TimerId::IdleHold), None);
    let out = f.handle(S(100), Input::Received(new, Msg::Keepalive));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Established(id, _) if *id == new))
    );
    assert_eq!(f.established_conn(), Some(new));
    assert_eq!(f.status().flaps, 1);
    assert_eq!(f.status().failures, 0);
    // The old connection's late close is nothing.
    assert!(f.handle(S(101), Input::Closed(old)).is_empty());
}

#[test]
fn new_connection_while_established_is_refused_without_graceful_restart_rfc4271_6_8() {
    let (mut f, _) = established(cfg(), peer_open(65002, 90));
    assert_eq!(f.handle(S(100), Input::Incoming), vec![Output::Refuse]);
    // GR advertised by the peer only is not negotiated either.
    let mut o = peer_open(65002, 90);
    o.caps.graceful_restart = gr(false);
    let (mut f, _) = established(cfg(), o);
    assert_eq!(f.handle(S(100), Input::Incoming), vec![Output::Refuse]);
}

#[test]
fn open_without_the_restart_bit_on_a_new_connection_is_a_collision_rfc4724_3() {
    // Our Identifier (10.0.0.1) is below the peer's: §6.8 favours the new (incoming) connection, so its
    // OPEN is held for the peer's resolution; the Established session stays.
    for (old_restarting, new_restarting) in [(false, false), (true, true)] {
        let (mut f, old) = established_gr(old_restarting);
        let out = f.handle(S(100), Input::Incoming);
        let Some(Output::Accept(new)) = out.first().cloned() else {
            panic!("{out:?}")
        };
        let mut o = peer_open(65002, 90);
        o.caps.graceful_restart = gr(new_restarting);
        let out = f.handle(S(100), Input::Received(new, Msg::Open(o.wire())));
        assert!(!out.iter().any(|o| matches!(o, Output::Down(_))), "{out:?}");
        assert!(!out.contains(&Output::Close(old)));
        assert!(timer(&out, TimerId::Collision(new)).is_some());
        assert_eq!(f.established_conn(), Some(old));
        // Nothing from the peer: the new connection goes (Cease/7), the session stays.
        let out = f.handle(S(105), Input::Timer(TimerId::Collision(new)));
        assert!(out.contains(&Output::Close(new)));
        assert_eq!(
            notification(&out).map(|n| (n.code, n.subcode)),
            Some((code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION))
        );
        assert_eq!(f.established_conn(), Some(old));
        assert_eq!(f.status().flaps, 0);
    }
}

/// The graceful restart capability in the OPEN among `out`.
fn sent_gr(out: &[Output]) -> Option<GracefulRestart> {
    sent(out).into_iter().find_map(|m| match m {
        Msg::Open(o) => Capabilities::from_open(o).graceful_restart,
        _ => None,
    })
}

#[test]
fn restart_state_bit_changed_between_connections_applies_to_the_next_open_rfc4724_3() {
    let mut c = cfg();
    c.capabilities.graceful_restart = gr(true);
    let mut f = Fsm::new(c);
    let out = f.handle(S(0), Input::Start);
    let Some(Output::Connect(first)) = out.first().cloned() else {
        panic!("{out:?}")
    };
    let out = f.handle(S(0), Input::Connected(first));
    assert_eq!(
        sent_gr(&out),
        gr(true),
        "the restarting speaker's first OPEN sets R"
    );
    // The restart is over: R clear, IPv4 forwarding now preserved, a longer restart time.
    let steady = GracefulRestart {
        restarting: false,
        restart_time: 90,
        families: vec![(Family::IPV4_UNICAST, true)],
    };
    assert!(f.set_graceful_restart(steady.clone()));
    // The peer's own connection arrives: its OPEN exchange uses the new capability.
    let out = f.handle(S(1), Input::Incoming);
    let Some(Output::Accept(_)) = out.first().cloned() else {
        panic!("{out:?}")
    };
    assert_eq!(sent_gr(&out), Some(steady.clone()));
    assert_eq!(f.config().capabilities.graceful_restart, Some(steady));
    // Without graceful restart configured there is nothing to change (no capability appears).
    let mut f = Fsm::new(cfg());
    assert!(!f.set_graceful_restart(gr(true).unwrap()));
    assert_eq!(f.config().capabilities.graceful_restart, None);
}
