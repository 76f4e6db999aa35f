//! The pool room's rules by example, and under random sequences of agents coming and going, commands,
//! answers, waits and restarts of the room (from the rows its host wrote on each store).

use super::*;
use crate::issue::session_id;
use crate::secret::Secret;
use proptest::prelude::*;

fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(1_000_000 + secs)
}

fn sid(n: u8) -> SessionId {
    session_id([n; 16])
}

fn report(capacity: u32, load: u32, runners: &[SessionId]) -> AgentReport {
    AgentReport { capacity, load, draining: false, runners: runners.to_vec() }
}

fn command(kind: Kind, session: SessionId, jti: &str, now: Timestamp) -> Submission {
    Submission {
        kind,
        session,
        jti: jti.to_owned(),
        forget_after: now + Duration::from_secs(90),
        payload: Payload { token: Secret::new(format!("token-{jti}")), body: format!("{{\"jti\":\"{jti}\"}}") },
    }
}

fn room() -> PoolRoom {
    PoolRoom::new(PoolRoomConfig::DEFAULT, PoolRoom::new_ledger(&PoolRoomConfig::DEFAULT), at(0))
}

/// Connects agent `name` as `conn` and says hello.
fn join(room: &mut PoolRoom, conn: u64, name: &str, hello: AgentReport, now: Timestamp) -> Vec<Effect> {
    room.handle_event(Event::Connected { conn: AgentConn(conn), agent: name.to_owned() }, now);
    room.handle_event(Event::Said { conn: AgentConn(conn), message: AgentMessage::Hello(hello) }, now)
}

/// The commands sent, as (connection, command id).
fn sent(effects: &[Effect]) -> Vec<(u64, u64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { conn, message: RoomMessage::Command { id, .. } } => Some((conn.0, *id)),
            _ => None,
        })
        .collect()
}

fn replies(effects: &[Effect]) -> Vec<(u64, Reply)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply { waiter, reply } => Some((waiter.0, reply.clone())),
            _ => None,
        })
        .collect()
}

fn answer(id: u64, status: u16) -> AgentMessage {
    AgentMessage::Answer { id, status, body: "{}".into() }
}

#[test]
fn a_start_goes_to_the_least_loaded_agent_with_room_and_its_answer_comes_back() {
    let mut room = room();
    join(&mut room, 1, "a", report(4, 3, &[]), at(0));
    join(&mut room, 2, "b", report(4, 1, &[]), at(0));
    let effects = room
        .handle_event(Event::Submit { waiter: WaiterId(7), command: command(Kind::Start, sid(1), "j1", at(1)) }, at(1));
    assert_eq!(effects.first(), Some(&Effect::Store), "stored before the command leaves");
    assert_eq!(sent(&effects), vec![(2, 1)]);
    let effects = room.handle_event(Event::Said { conn: AgentConn(2), message: answer(1, 201) }, at(2));
    assert_eq!(replies(&effects), vec![(7, Reply::Answered { status: 201, body: "{}".into() })]);
    // The next start counts the one b took: b is at 2 of 4, a at 3 of 4.
    let effects = room
        .handle_event(Event::Submit { waiter: WaiterId(8), command: command(Kind::Start, sid(2), "j2", at(3)) }, at(3));
    assert_eq!(sent(&effects), vec![(2, 2)]);
}

#[test]
fn no_agent_with_room_is_refused_at_once_and_a_gone_agent_takes_nothing() {
    let mut room = room();
    let effects = room
        .handle_event(Event::Submit { waiter: WaiterId(1), command: command(Kind::Start, sid(1), "j1", at(0)) }, at(0));
    assert!(matches!(replies(&effects)[..], [(1, Reply::NoAgent(_))]));
    join(&mut room, 1, "a", report(1, 1, &[]), at(0));
    let effects = room
        .handle_event(Event::Submit { waiter: WaiterId(2), command: command(Kind::Start, sid(1), "j2", at(0)) }, at(0));
    assert!(matches!(replies(&effects)[..], [(2, Reply::NoAgent(_))]), "full");
    join(&mut room, 2, "b", report(2, 0, &[]), at(0));
    room.handle_event(Event::Gone { conn: AgentConn(2) }, at(1));
    let effects = room
        .handle_event(Event::Submit { waiter: WaiterId(3), command: command(Kind::Start, sid(1), "j3", at(1)) }, at(1));
    assert!(
        matches!(replies(&effects)[..], [(3, Reply::NoAgent(_))]),
        "b's socket closed: placement avoids it at once"
    );
}

#[test]
fn a_start_in_flight_when_its_agent_goes_is_lost_not_resent_and_its_replay_is_refused() {
    let mut room = room();
    join(&mut room, 1, "a", report(4, 0, &[]), at(0));
    join(&mut room, 2, "b", report(4, 0, &[]), at(0));
    let effects = room
        .handle_event(Event::Submit { waiter: WaiterId(1), command: command(Kind::Start, sid(1), "j1", at(0)) }, at(0));
    assert_eq!(sent(&effects), vec![(1, 1)]);
    let effects = room.handle_event(Event::Gone { conn: AgentConn(1) }, at(1));
    assert_eq!(replies(&effects), vec![(1, Reply::AgentLost)]);
    assert!(sent(&effects).is_empty(), "never handed to the sibling");
    // The same signed command again, even to a room restarted from its stored ledger: refused.
    let mut restarted = PoolRoom::new(PoolRoomConfig::DEFAULT, room.ledger().clone(), at(2));
    join(&mut restarted, 3, "a", report(4, 0, &[]), at(2));
    let effects = restarted
        .handle_event(Event::Submit { waiter: WaiterId(2), command: command(Kind::Start, sid(1), "j1", at(2)) }, at(2));
    assert_eq!(replies(&effects), vec![(2, Reply::Replayed)]);
    assert!(sent(&effects).is_empty());
}

#[test]
fn a_stop_waits_for_the_agent_holding_the_session_across_its_reconnect() {
    let mut room = room();
    join(&mut room, 1, "a", report(4, 1, &[sid(1)]), at(0));
    join(&mut room, 2, "b", report(4, 0, &[]), at(0));
    room.handle_event(Event::Gone { conn: AgentConn(1) }, at(1));
    let effects = room.handle_event(
        Event::Submit { waiter: WaiterId(1), command: command(Kind::ToHolder, sid(1), "j1", at(1)) },
        at(1),
    );
    assert_eq!(replies(&effects), vec![(1, Reply::Queued)]);
    assert!(sent(&effects).is_empty(), "not to b, which does not hold it");
    // a comes back (a restart that kept its runner): the stop goes to it once it said hello.
    let effects = join(&mut room, 3, "a", report(4, 1, &[sid(1)]), at(2));
    assert_eq!(sent(&effects), vec![(3, 1)]);
    // Its connection is cut before it answers: the stop goes again on the next connection.
    room.handle_event(Event::Gone { conn: AgentConn(3) }, at(3));
    let effects = join(&mut room, 4, "a", report(4, 1, &[sid(1)]), at(4));
    assert_eq!(sent(&effects), vec![(4, 1)]);
    room.handle_event(Event::Said { conn: AgentConn(4), message: answer(1, 200) }, at(5));
    let effects = join(&mut room, 5, "a", report(4, 0, &[]), at(6));
    assert!(sent(&effects).is_empty(), "answered once: not sent again");
}

#[test]
fn silent_agents_are_closed_and_a_newer_connection_supersedes_the_old() {
    let mut room = room();
    join(&mut room, 1, "a", report(4, 0, &[]), at(0));
    assert_eq!(room.poll_timeout(), Some(at(10)));
    let effects = room.handle_timeout(at(10));
    assert!(effects.iter().any(|e| matches!(e, Effect::Close { conn: AgentConn(1), .. })));
    assert!(room.agents().is_empty());
    join(&mut room, 2, "b", report(4, 0, &[]), at(11));
    let effects = room.handle_event(Event::Connected { conn: AgentConn(3), agent: "b".into() }, at(12));
    assert!(effects.iter().any(|e| matches!(e, Effect::Close { conn: AgentConn(2), .. })));
}

#[test]
fn a_status_before_hello_and_answers_from_other_connections_change_nothing() {
    let mut room = room();
    room.handle_event(Event::Connected { conn: AgentConn(1), agent: "a".into() }, at(0));
    let effects =
        room.handle_event(Event::Said { conn: AgentConn(1), message: AgentMessage::Status(report(1, 0, &[])) }, at(0));
    assert!(effects.iter().any(|e| matches!(e, Effect::Close { conn: AgentConn(1), .. })));
    join(&mut room, 2, "a", report(4, 0, &[]), at(0));
    join(&mut room, 3, "b", report(4, 1, &[]), at(0));
    room.handle_event(Event::Submit { waiter: WaiterId(1), command: command(Kind::Start, sid(1), "j1", at(0)) }, at(0));
    // b answers a's command: ignored; the waiter still waits, then times out.
    let effects = room.handle_event(Event::Said { conn: AgentConn(3), message: answer(1, 201) }, at(1));
    assert!(replies(&effects).is_empty());
    let effects = room.handle_event(Event::WaitOver { waiter: WaiterId(1) }, at(2));
    assert_eq!(replies(&effects), vec![(1, Reply::TimedOut)]);
}

#[test]
fn a_restarted_room_sends_its_stops_again_and_ends_its_starts_as_lost() {
    let mut room = room();
    join(&mut room, 1, "a", report(4, 1, &[sid(1)]), at(0));
    room.handle_event(
        Event::Submit { waiter: WaiterId(1), command: command(Kind::ToHolder, sid(1), "stop", at(0)) },
        at(0),
    );
    room.handle_event(
        Event::Submit { waiter: WaiterId(2), command: command(Kind::Start, sid(2), "start", at(0)) },
        at(0),
    );
    // The object is evicted with both in flight; it comes back from what it stored.
    let mut back = PoolRoom::new(PoolRoomConfig::DEFAULT, room.ledger().clone(), at(1));
    let effects = join(&mut back, 2, "a", report(4, 2, &[sid(1), sid(2)]), at(1));
    let ids = sent(&effects);
    assert_eq!(ids.len(), 1, "only the stop goes again: {ids:?}");
    let stop_id = ids[0].1;
    assert_eq!(back.ledger().entry(CommandId(stop_id)).map(|e| e.kind), Some(Kind::ToHolder));
    assert!(matches!(back.ledger().state(CommandId(2)), Some(State::Ended(Outcome::Unknown))));
    // Nothing stays in flight for a connection that no longer exists: the ledger empties in time.
    back.handle_event(Event::Said { conn: AgentConn(2), message: answer(stop_id, 200) }, at(2));
    back.handle_timeout(at(1000));
    assert!(back.ledger().is_empty());
}

#[test]
fn a_stop_follows_its_start_in_flight_and_a_gone_agents_sessions_are_released_in_time() {
    let mut room = room();
    join(&mut room, 1, "a", report(4, 0, &[]), at(0));
    join(&mut room, 2, "b", report(4, 1, &[]), at(0));
    let effects = room
        .handle_event(Event::Submit { waiter: WaiterId(1), command: command(Kind::Start, sid(1), "s", at(0)) }, at(0));
    assert_eq!(sent(&effects), vec![(1, 1)]);
    // The start is in flight at a; a stop for its session goes to a, not to the less loaded b.
    room.handle_event(Event::WaitOver { waiter: WaiterId(1) }, at(1));
    let effects = room.handle_event(
        Event::Submit { waiter: WaiterId(2), command: command(Kind::ToHolder, sid(1), "t", at(1)) },
        at(1),
    );
    assert_eq!(sent(&effects), vec![(1, 2)]);
    // a goes with the stop unanswered: its waiter hears the stop is queued, not a lost start.
    let effects = room.handle_event(Event::Gone { conn: AgentConn(1) }, at(2));
    assert_eq!(replies(&effects), vec![(2, Reply::Queued)]);
    // (b keeps reporting, as a live agent does.)
    for t in [5, 9] {
        room.handle_event(Event::Said { conn: AgentConn(2), message: AgentMessage::Status(report(4, 1, &[])) }, at(t));
    }
    // While a may come back, a new stop of its session waits for it...
    let effects = room.handle_event(
        Event::Submit { waiter: WaiterId(3), command: command(Kind::ToHolder, sid(1), "u", at(10)) },
        at(10),
    );
    assert_eq!(replies(&effects), vec![(3, Reply::Queued)]);
    // ...and once a is gone for good (`keep`), its sessions are released: any agent may stop them (on
    // Kubernetes any agent of the region can), so the next stop goes to b at once.
    for t in (14..=130).step_by(5) {
        room.handle_event(Event::Said { conn: AgentConn(2), message: AgentMessage::Status(report(4, 1, &[])) }, at(t));
    }
    let effects = room.handle_event(
        Event::Submit { waiter: WaiterId(4), command: command(Kind::ToHolder, sid(1), "v", at(131)) },
        at(131),
    );
    assert_eq!(sent(&effects).len(), 1, "{effects:?}");
    assert_eq!(sent(&effects)[0].0, 2);
}

#[test]
fn a_room_takes_a_bounded_number_of_agents() {
    let mut room = room();
    for i in 0..MAX_AGENTS as u64 {
        join(&mut room, i + 1, &format!("agent-{i}"), report(1, 0, &[]), at(0));
    }
    let effects = room.handle_event(Event::Connected { conn: AgentConn(999), agent: "one-too-many".into() }, at(0));
    assert!(effects.iter().any(|e| matches!(e, Effect::Close { conn: AgentConn(999), .. })));
    assert_eq!(room.agents().len(), MAX_AGENTS);
}

#[derive(Debug, Clone)]
enum Op {
    Join(u8),
    Leave(u8),
    Start(u8),
    Stop(u8),
    Replay(u8),
    Answer(u8, u8, bool),
    Restart,
    Wait(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3u8).prop_map(Op::Join),
        (0..3u8).prop_map(Op::Leave),
        (0..4u8).prop_map(Op::Start),
        (0..4u8).prop_map(Op::Stop),
        (0..20u8).prop_map(Op::Replay),
        (0..3u8, 0..20u8, any::<bool>()).prop_map(|(a, c, ok)| Op::Answer(a, c, ok)),
        Just(Op::Restart),
        (0..15u8).prop_map(Op::Wait),
    ]
}

/// The rows a host holds, written on each store: (kind, key) to value.
type Rows = BTreeMap<(&'static str, String), String>;

fn write(room: &mut PoolRoom, rows: &mut Rows) {
    for row in room.take_changes().into_rows() {
        let key = (row.kind.name(), row.key);
        match row.value {
            Some(value) => rows.insert(key, value),
            None => rows.remove(&key),
        };
    }
}

fn read(rows: &Rows) -> Ledger {
    let mut ledger = PoolRoom::new_ledger(&PoolRoomConfig::DEFAULT);
    let rows = rows.iter().map(|((kind, key), value)| (kind.to_string(), key.clone(), value.clone()));
    ledger.apply(crate::pool_ledger::Changes::from_rows(rows).unwrap());
    ledger
}

proptest! {
    /// Whatever happens: no start id is sent twice, a replayed token id is never sent, every submit
    /// is answered at most once, a start goes only to a connected agent that said hello, and what the
    /// host wrote on its last store is the ledger (no change goes without a store).
    #[test]
    fn starts_once_replays_never(ops in proptest::collection::vec(op(), 1..120)) {
        let mut room = room();
        let mut rows = Rows::new();
        let mut now = 0u64;
        let mut next_conn = 1u64;
        let mut conns: BTreeMap<u8, u64> = BTreeMap::new();
        let mut jtis: Vec<(String, u64)> = Vec::new();
        let mut kinds: BTreeMap<u64, Kind> = BTreeMap::new();
        let mut sent_starts: BTreeMap<u64, u32> = BTreeMap::new();
        let mut replied: BTreeMap<u64, u32> = BTreeMap::new();
        let mut waiter = 0u64;
        for op in ops {
            let effects = match op {
                Op::Join(a) => {
                    next_conn += 1;
                    if let Some(old) = conns.insert(a, next_conn) {
                        room.handle_event(Event::Gone { conn: AgentConn(old) }, at(now));
                    }
                    join(&mut room, next_conn, &format!("agent-{a}"), report(2, 0, &[]), at(now))
                }
                Op::Leave(a) => match conns.remove(&a) {
                    Some(c) => room.handle_event(Event::Gone { conn: AgentConn(c) }, at(now)),
                    None => vec![],
                },
                Op::Start(s) | Op::Stop(s) => {
                    waiter += 1;
                    let kind = if matches!(op, Op::Start(_)) { Kind::Start } else { Kind::ToHolder };
                    let jti = format!("j{waiter}");
                    jtis.push((jti.clone(), now));
                    room.handle_event(Event::Submit { waiter: WaiterId(waiter), command: command(kind, sid(s), &jti, at(now)) }, at(now))
                }
                // While its token could still verify (the host refuses it after that).
                Op::Replay(i) => match jtis.get(i as usize).filter(|(_, t)| now < t + 90) {
                    Some((jti, _)) => {
                        waiter += 1;
                        let effects = room.handle_event(Event::Submit { waiter: WaiterId(waiter), command: command(Kind::Start, sid(0), jti, at(now)) }, at(now));
                        prop_assert!(sent(&effects).is_empty(), "a replayed token id was sent");
                        effects
                    }
                    None => vec![],
                },
                Op::Answer(a, c, ok) => match conns.get(&a) {
                    Some(conn) => room.handle_event(Event::Said { conn: AgentConn(*conn), message: answer(u64::from(c), if ok { 201 } else { 503 }) }, at(now)),
                    None => vec![],
                },
                Op::Restart => {
                    room = PoolRoom::new(PoolRoomConfig::DEFAULT, read(&rows), at(now));
                    conns.clear();
                    vec![]
                }
                Op::Wait(secs) => {
                    now += u64::from(secs);
                    room.handle_timeout(at(now))
                }
            };
            if effects.first() == Some(&Effect::Store) {
                write(&mut room, &mut rows);
                prop_assert_eq!(&read(&rows), room.ledger());
            }
            for e in &effects {
                match e {
                    Effect::Send { conn, message: RoomMessage::Command { id, body, .. } } => {
                        prop_assert!(conns.values().any(|c| c == &conn.0), "sent to a connection that is gone");
                        prop_assert!(body.starts_with(r#"{"jti":"#), "{}", body);
                        if let Some(entry) = room.ledger().entry(CommandId(*id)) {
                            kinds.insert(*id, entry.kind);
                        }
                        if kinds.get(id) == Some(&Kind::Start) {
                            *sent_starts.entry(*id).or_default() += 1;
                        }
                    }
                    Effect::Reply { waiter, .. } => *replied.entry(waiter.0).or_default() += 1,
                    _ => {}
                }
            }
            for (id, times) in &sent_starts {
                prop_assert!(*times <= 1, "start {} sent {} times", id, times);
            }
            for (w, times) in &replied {
                prop_assert!(*times <= 1, "waiter {} answered {} times", w, times);
            }
        }
    }
}

#[test]
fn a_submitted_command_is_read_checked_against_its_signed_body_and_kept_until_its_token_lapses() {
    use crate::api_error::ErrorCode;
    use crate::dangerous::assume_verified;
    use crate::ids::{Kid, RegionId};
    use crate::issue::{session_id, Issuer};
    use crate::secret::Secret;
    let region = RegionId::new("eu").unwrap();
    let not_a_command = Submitted::read("https://control.test", &region, "{\"action\":\"reboot\"}".into());
    assert_eq!(not_a_command.unwrap_err().code, ErrorCode::BadCommand);

    let sid = session_id([1; 16]);
    let body = format!("{{\"action\":\"stop\",\"session_id\":\"{sid}\",\"reason\":\"ended\"}}");
    let submitted = Submitted::read("https://control.test", &region, body.clone()).unwrap();
    assert_eq!(submitted.options.audience, crate::issue::pool_audience(&region), "this region's pools");
    assert_eq!(submitted.expectation().session, Some(&sid));
    let claims = Issuer::new("https://control.test").pool_command(
        &sid,
        &region,
        body.as_bytes(),
        [5; 16],
        Timestamp::from_secs(100),
    );
    let exp = claims.exp;
    let verified = assume_verified(claims.clone(), Kid::new("k").unwrap());
    let submission = submitted.verified(&verified, Secret::new("t")).unwrap();
    assert_eq!((submission.kind, &submission.session), (Kind::ToHolder, &sid));
    assert_eq!(submission.jti, claims.jti.as_str());
    let leeway = ValidationOptions::new("i".to_owned(), "a".to_owned()).leeway;
    assert_eq!(submission.forget_after, Timestamp::from_secs(exp) + leeway + Duration::from_secs(1));
    assert_eq!(submission.payload.body, body, "the body as signed, byte for byte");

    // The same token for another body (another session's stop) is refused.
    let other = format!("{{\"action\":\"stop\",\"session_id\":\"{}\",\"reason\":\"ended\"}}", session_id([2; 16]));
    let submitted = Submitted::read("https://control.test", &region, other).unwrap();
    let refused = submitted.verified(&verified, Secret::new("t")).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Forbidden);
}
