//! The ledger's promises, by example and under random sequences of submits, hand-outs, answers, lost
//! agents, restarts (a ledger restored from the rows its host wrote) and time; and that the rows written
//! change by change are the ledger, its indexes always what its entries say.

use super::*;
use crate::issue::session_id;
use proptest::prelude::*;

const MINUTE: Duration = Duration::from_secs(60);

fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(1_000_000 + secs)
}

fn holder(agent: &str, connection: u64) -> Holder {
    Holder { agent: agent.to_owned(), connection }
}

fn sid(n: u8) -> SessionId {
    session_id([n; 16])
}

fn payload() -> Payload {
    Payload { token: Secret::new("token"), body: "{}".to_owned() }
}

/// Submits with a fresh token id.
fn submit(ledger: &mut Ledger, kind: Kind, session: SessionId, now: Timestamp) -> CommandId {
    let jti = format!("jti-{}", ledger.next);
    ledger.submit(kind, session, &jti, now + MINUTE, payload(), now).unwrap()
}

#[test]
fn a_start_whose_agent_went_is_never_handed_out_again_a_stop_is() {
    let mut ledger = Ledger::new(MINUTE, MINUTE);
    let start = submit(&mut ledger, Kind::Start, sid(1), at(0));
    let stop = submit(&mut ledger, Kind::ToHolder, sid(2), at(0));
    let a = holder("agent-a", 1);
    assert_eq!(ledger.next_for(&a, at(1)).map(|(id, k, s, _)| (id, k, s)), Some((start, Kind::Start, sid(1))));
    assert_eq!(ledger.next_for(&a, at(1)).map(|(id, k, s, _)| (id, k, s)), Some((stop, Kind::ToHolder, sid(2))));
    assert_eq!(ledger.next_for(&a, at(1)).map(|(id, k, s, _)| (id, k, s)), None);
    // The agent goes before answering either.
    assert_eq!(ledger.agent_gone(&a, at(2)), vec![start]);
    assert_eq!(ledger.state(start), Some(&State::Ended(Outcome::Unknown)));
    // It comes back (a new connection), and so does a sibling: only the stop is handed out again.
    let again = holder("agent-a", 2);
    assert_eq!(ledger.next_for(&again, at(3)).map(|(id, k, s, _)| (id, k, s)), Some((stop, Kind::ToHolder, sid(2))));
    assert_eq!(ledger.next_for(&holder("agent-b", 1), at(3)).map(|(id, k, s, _)| (id, k, s)), None);
    // Its answer to the start, from the old connection's command, is too late to matter.
    assert_eq!(ledger.answer(&a, start, Outcome::Done, at(4)), Ok(()));
    assert_eq!(ledger.state(start), Some(&State::Ended(Outcome::Unknown)));
}

#[test]
fn answers_count_once_and_only_from_the_agent_it_went_to() {
    let mut ledger = Ledger::new(MINUTE, MINUTE);
    let start = submit(&mut ledger, Kind::Start, sid(1), at(0));
    let (a, b) = (holder("a", 1), holder("b", 1));
    assert_eq!(ledger.answer(&a, start, Outcome::Done, at(0)), Err(LedgerError::NotYours(start)), "not sent yet");
    ledger.next_for(&a, at(1));
    assert_eq!(ledger.answer(&b, start, Outcome::Done, at(2)), Err(LedgerError::NotYours(start)));
    assert_eq!(ledger.answer(&a, start, Outcome::Refused("full".into()), at(2)), Ok(()));
    assert_eq!(ledger.answer(&a, start, Outcome::Done, at(3)), Ok(()), "a repeated answer is harmless");
    assert_eq!(ledger.state(start), Some(&State::Ended(Outcome::Refused("full".into()))));
    assert_eq!(ledger.answer(&a, CommandId(99), Outcome::Done, at(3)), Err(LedgerError::Unknown(CommandId(99))));
}

#[test]
fn unclaimed_commands_expire_and_ended_ones_are_forgotten_later() {
    let mut ledger = Ledger::new(MINUTE, 2 * MINUTE);
    let start = submit(&mut ledger, Kind::Start, sid(1), at(0));
    ledger.tidy(at(59));
    assert_eq!(ledger.state(start), Some(&State::Queued));
    ledger.tidy(at(60));
    assert_eq!(ledger.state(start), Some(&State::Ended(Outcome::Expired)));
    assert_eq!(
        ledger.next_for(&holder("a", 1), at(61)).map(|(id, k, s, _)| (id, k, s)),
        None,
        "an expired start is never handed out"
    );
    ledger.tidy(at(179));
    assert_eq!(ledger.len(), 1);
    ledger.tidy(at(180));
    assert!(ledger.is_empty());
    // Ids are never reused, so an answer to a forgotten command cannot land on a new one.
    assert_eq!(submit(&mut ledger, Kind::ToHolder, sid(2), at(181)), CommandId(2));
}

#[derive(Debug, Clone)]
enum Op {
    Submit(bool, u8),
    Next(u8),
    Answer(u8, u8),
    Gone(u8),
    Restart,
    Tidy(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), 0..4u8).prop_map(|(start, s)| Op::Submit(start, s)),
        (0..3u8).prop_map(Op::Next),
        (0..3u8, 0..12u8).prop_map(|(a, c)| Op::Answer(a, c)),
        (0..3u8).prop_map(Op::Gone),
        Just(Op::Restart),
        (0..90u8).prop_map(Op::Tidy),
    ]
}

/// Writes `ledger`'s changes into `rows` as a host does (a key per kind, deleted rows removed).
fn write(ledger: &mut Ledger, rows: &mut BTreeMap<(&'static str, String), String>) {
    for row in ledger.take_changes().into_rows() {
        let key = (row.kind.name(), row.key);
        match row.value {
            Some(value) => rows.insert(key, value),
            None => rows.remove(&key),
        };
    }
}

/// The ledger a restarted host reads back from `rows`.
fn read(rows: &BTreeMap<(&'static str, String), String>) -> Ledger {
    let mut ledger = Ledger::new(MINUTE, 2 * MINUTE);
    let rows = rows.iter().map(|((kind, key), value)| (kind.to_string(), key.clone(), value.clone()));
    ledger.apply(Changes::from_rows(rows).unwrap());
    ledger
}

/// The indexes are what the entries say: rebuilt from scratch, they are the same.
fn indexes_hold(ledger: &Ledger) -> Result<(), TestCaseError> {
    let rebuilt: Ledger = serde_json::from_str(&serde_json::to_string(ledger).unwrap()).unwrap();
    prop_assert_eq!(&rebuilt.index.queued, &ledger.index.queued);
    prop_assert_eq!(&rebuilt.index.sent, &ledger.index.sent);
    prop_assert_eq!(&rebuilt.index.ended, &ledger.index.ended);
    prop_assert_eq!(&rebuilt.index.expiring, &ledger.index.expiring);
    prop_assert_eq!(rebuilt.next_tidy(), ledger.next_tidy());
    Ok(())
}

proptest! {
    /// Whatever happens, no start is handed out twice, a stop is handed out until it is answered
    /// (it never ends otherwise but by expiring while queued), the rows written change by change are
    /// the ledger, and its indexes hold.
    #[test]
    fn starts_at_most_once_stops_until_answered(ops in proptest::collection::vec(op(), 1..80)) {
        let mut ledger = Ledger::new(MINUTE, 2 * MINUTE);
        let mut rows = BTreeMap::new();
        let mut connection = [1u64; 3];
        let mut handed: BTreeMap<CommandId, (Kind, u32)> = BTreeMap::new();
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Submit(start, s) => {
                    submit(&mut ledger, if start { Kind::Start } else { Kind::ToHolder }, sid(s), at(now));
                }
                Op::Next(a) => {
                    let h = holder(&format!("agent-{a}"), connection[a as usize]);
                    if let Some((id, kind, _, _)) = ledger.next_for(&h, at(now)) {
                        handed.entry(id).or_insert((kind, 0)).1 += 1;
                    }
                }
                Op::Answer(a, c) => {
                    let h = holder(&format!("agent-{a}"), connection[a as usize]);
                    let _ = ledger.answer(&h, CommandId(u64::from(c)), Outcome::Done, at(now));
                }
                Op::Gone(a) => {
                    let h = holder(&format!("agent-{a}"), connection[a as usize]);
                    ledger.agent_gone(&h, at(now));
                    connection[a as usize] += 1;
                }
                Op::Restart => {
                    write(&mut ledger, &mut rows);
                    let back = read(&rows);
                    prop_assert_eq!(&back, &ledger);
                    ledger = back;
                }
                Op::Tidy(secs) => {
                    now += u64::from(secs);
                    ledger.tidy(at(now));
                }
            }
            indexes_hold(&ledger)?;
            write(&mut ledger, &mut rows);
            prop_assert_eq!(&read(&rows), &ledger);
            for (id, (kind, times)) in &handed {
                prop_assert!(*kind == Kind::ToHolder || *times <= 1, "start {:?} handed out {} times", id, times);
            }
            for (id, entry) in &ledger.entries {
                if entry.kind == Kind::ToHolder {
                    prop_assert!(
                        !matches!(entry.state, State::Ended(Outcome::Unknown)),
                        "stop {:?} given up while unanswered", id
                    );
                }
            }
        }
    }
}

#[test]
fn a_token_id_is_taken_once_until_its_token_expires_even_after_a_restart() {
    let mut ledger = Ledger::new(MINUTE, MINUTE);
    let first = ledger.submit(Kind::Start, sid(1), "jti-1", at(60), payload(), at(0)).unwrap();
    ledger.hand(first, &holder("a", 1), at(0)).unwrap();
    ledger.answer(&holder("a", 1), first, Outcome::Done, at(1)).unwrap();
    let stored: Ledger = serde_json::from_str(&serde_json::to_string(&ledger).unwrap()).unwrap();
    let mut ledger = stored;
    assert_eq!(ledger.submit(Kind::Start, sid(1), "jti-1", at(60), payload(), at(2)), Err(LedgerError::Replayed));
    ledger.tidy(at(59));
    assert_eq!(ledger.submit(Kind::Start, sid(1), "jti-1", at(60), payload(), at(59)), Err(LedgerError::Replayed));
    // Once its token can no longer verify, the id may go (the token is refused on its expiry instead).
    ledger.tidy(at(60));
    assert!(ledger.submit(Kind::Start, sid(1), "jti-1", at(120), payload(), at(60)).is_ok());
}

#[test]
fn a_start_leaves_with_its_payload_once_a_stop_keeps_it_for_the_next_agent() {
    let mut ledger = Ledger::new(MINUTE, MINUTE);
    let start = submit(&mut ledger, Kind::Start, sid(1), at(0));
    let a = holder("a", 1);
    assert!(ledger.hand(start, &a, at(0)).is_some());
    assert_eq!(ledger.entry(start).unwrap().payload, None, "no join token stays in the ledger");
    ledger.answer(&a, start, Outcome::Done, at(1)).unwrap();
    assert_eq!(ledger.holder_of(&sid(1)), Some("a"));
    // The stop of that session waits for agent a, not for its sibling b.
    let stop = submit(&mut ledger, Kind::ToHolder, sid(1), at(2));
    assert!(ledger.next_for(&holder("b", 1), at(2)).is_none());
    let (id, _, _, p) = ledger.next_for(&a, at(2)).unwrap();
    assert_eq!((id, p), (stop, payload()));
    // a goes before answering: the stop waits for a's next connection, payload and all.
    ledger.agent_gone(&a, at(3));
    let again = holder("a", 2);
    assert_eq!(ledger.next_for(&again, at(4)).map(|(id, _, _, p)| (id, p)), Some((stop, payload())));
    ledger.answer(&again, stop, Outcome::Done, at(5)).unwrap();
    assert_eq!(ledger.holder_of(&sid(1)), None);
    assert_eq!(ledger.entry(stop).unwrap().payload, None);
}

#[test]
fn a_ledger_stored_whole_moves_to_rows_unchanged() {
    let mut ledger = Ledger::new(MINUTE, 2 * MINUTE);
    let start = submit(&mut ledger, Kind::Start, sid(1), at(0));
    ledger.hand(start, &holder("a", 1), at(0)).unwrap();
    submit(&mut ledger, Kind::ToHolder, sid(2), at(1));
    ledger.place(sid(3), "b");
    ledger.agent_gone(&holder("b", 1), at(2));
    // As an older room stored it: one JSON document.
    let whole: Ledger = serde_json::from_str(&serde_json::to_string(&ledger).unwrap()).unwrap();
    let mut rows = BTreeMap::new();
    for row in whole.everything().into_rows() {
        rows.insert((row.kind.name(), row.key), row.value.unwrap());
    }
    assert_eq!(read(&rows), ledger);
    assert_eq!(read(&rows).next_tidy(), ledger.next_tidy());
}

#[test]
fn rows_that_cannot_be_read_are_a_clear_error() {
    let bad = |kind: &str, key: &str, value: &str| {
        Changes::from_rows([(kind.to_owned(), key.to_owned(), value.to_owned())]).unwrap_err().to_string()
    };
    assert!(bad("orders", "1", "{}").contains("unknown kind"));
    assert!(bad("command", "one", "{}").contains("not a command id"));
    assert!(bad("command", "1", "{}").starts_with("stored ledger: command row \"1\""));
    assert!(bad("used", "jti-1", "soon").contains("not a time"));
    assert!(bad("placed", "not a session", "a").starts_with("stored ledger: placed row"));
    assert!(bad("counters", "ledger", "[]").starts_with("stored ledger: counters row"));
}

#[test]
fn only_what_changed_is_written() {
    let mut ledger = Ledger::new(MINUTE, 2 * MINUTE);
    for n in 0..50 {
        let id = submit(&mut ledger, Kind::Start, sid(n), at(0));
        ledger.hand(id, &holder("a", 1), at(0)).unwrap();
        ledger.answer(&holder("a", 1), id, Outcome::Done, at(0)).unwrap();
    }
    ledger.take_changes();
    let id = submit(&mut ledger, Kind::ToHolder, sid(7), at(1));
    let changes = ledger.take_changes();
    assert_eq!(changes.commands.len(), 1);
    assert_eq!(changes.commands[0].0, id);
    assert_eq!((changes.used.len(), changes.placed.len(), changes.gone.len()), (1, 0, 0));
    // A status that changes no placement changes nothing.
    let sessions: Vec<SessionId> = (0..50).map(sid).collect();
    assert!(!ledger.placed_with("a", &sessions));
    let changes = ledger.take_changes();
    assert!(changes.commands.is_empty() && changes.placed.is_empty() && changes.used.is_empty());
    // Forgetting is written as deletions; the stop nobody took expires (kept, as ended).
    ledger.tidy(at(200));
    let changes = ledger.take_changes();
    assert_eq!(changes.commands.iter().filter(|(_, e)| e.is_none()).count(), 50);
    let expired = changes.commands.iter().find(|(c, _)| *c == id).and_then(|(_, e)| e.as_ref()).unwrap();
    assert_eq!(expired.state, State::Ended(Outcome::Expired));
    assert_eq!(changes.used.iter().filter(|(_, at)| at.is_none()).count(), 51);
}
