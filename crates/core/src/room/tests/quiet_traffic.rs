//! What steady traffic costs a hosting Durable Object: typed input, its echo and heartbeats neither move
//! the alarm nor write anything but the output (liveness times are stored only when they cross
//! [`LIVENESS_SLACK`]), and the alarm is never later than the earliest deadline.

use super::*;

#[test]
fn typing_and_its_echo_write_only_the_output_and_never_move_the_alarm() {
    let mut h = live();
    h.attach(10, "a1");
    h.take(1);
    let (alarms, writes) = (h.alarms_set, h.store.writes);
    // 400 keystrokes, 50 ms apart, each echoed by the runner, with heartbeats on the way.
    for i in 0..400u64 {
        h.now = h.now + core::time::Duration::from_millis(50);
        h.send(10, Frame::Input { data: vec![b'a'] });
        h.send(1, Frame::Output { offset: i, data: vec![b'a'] });
        if i % 100 == 0 {
            h.send(10, Frame::Ping { nonce: i });
            h.send(1, Frame::Ping { nonce: i });
        }
        let deadline = h.room.deadlines().into_iter().map(|(at, _)| at).min().unwrap();
        assert!(h.alarm.is_some_and(|a| a <= deadline), "the alarm never comes after a deadline");
    }
    assert_eq!(h.alarms_set, alarms, "the silence deadlines moved on, the alarm stayed");
    // One write per output frame; input and heartbeats only when liveness crosses a 10 s boundary
    // (20 s of typing: twice).
    assert_eq!(h.store.writes - writes, 400 + 2);
    // When the early alarm fires, nothing is due: it is re-armed, and everyone is still there.
    let early = h.alarm.unwrap();
    h.advance_to(early);
    assert!(h.alarm.is_some_and(|a| a > early));
    assert_eq!((h.closed(10), h.closed(1)), (None, None));
}

#[test]
fn bulk_output_earns_a_credit_per_step_not_per_frame() {
    let mut h = live();
    h.attach(10, "a1");
    h.take(1);
    let (mut credits, mut received) = (0, 0u64);
    // 2 MiB in 32 KiB frames to a browser acking what it gets.
    for i in 0..64u64 {
        h.send(1, Frame::Output { offset: i * 32 * 1024, data: vec![b'x'; 32 * 1024] });
        credits += h.take(1).iter().filter(|f| matches!(f, Frame::Credit { .. })).count();
        received += output(&h.take(10)).len() as u64;
        h.send(10, Frame::Ack { offset: received });
    }
    assert_eq!(h.closed(1), None, "the runner stayed within its credit");
    assert_eq!(received, 2 * 1024 * 1024);
    // A step is a sixteenth of the 4 MiB buffer: 256 KiB, so 8 credits for 2 MiB instead of 64.
    assert_eq!(credits, 8);
}

#[test]
fn a_runner_at_its_limit_gets_credit_as_soon_as_there_is_any() {
    let config = RoomConfig { buffer_capacity: 1600, history_bytes: 0, browser_window: 4000, ..RoomConfig::default() };
    let mut h = Harness::new(config);
    h.join_runner(1);
    h.attach(10, "a1");
    h.take(1);
    // The runner uses its whole credit (1600) while the browser acks nothing yet.
    h.send(1, Frame::Output { offset: 0, data: vec![1; 1600] });
    assert_eq!(h.take(1), vec![Frame::Credit { acked: 1600, limit: 1600 }], "acknowledged, but no more room");
    // The browser acks 10 bytes: less than a step (100), but the runner is stalled, so it gets them.
    h.take(10);
    h.send(10, Frame::Ack { offset: 10 });
    assert_eq!(h.take(1), vec![Frame::Credit { acked: 1600, limit: 1610 }]);
}

#[test]
fn who_may_connect_is_written_at_once_output_may_wait() {
    let mut h = live();
    h.defer = true;
    let due = |h: &mut Harness| h.room.checkpoint_due(&h.store.stored);
    let w = welcome(&h.attach(10, "a1"));
    assert_eq!(due(&mut h), CheckpointDue::Nothing, "the attach (a consumed token, a seat) was written");
    h.send(10, Frame::Input { data: b"l".to_vec() });
    assert_eq!(due(&mut h), CheckpointDue::Nothing, "typing changes only liveness");
    h.send(1, Frame::Output { offset: 0, data: b"l".to_vec() });
    assert_eq!(due(&mut h), CheckpointDue::Soon, "output may wait for the batch");
    assert_eq!(output(&h.take(10)), b"l", "and the browser has it already");
    // Resuming rotates the ticket: written before the welcome leaves, with the waiting output.
    h.event(Event::Disconnected { conn: ConnId(10) });
    let w2 = welcome(&h.resume(11, &w.resume_ticket, 1));
    assert_eq!(due(&mut h), CheckpointDue::Nothing);
    let restored = h.store.wake();
    assert_eq!(restored.output_end(), 1);
    // The spent ticket is gone from storage too, and the new one is there.
    h.room = restored;
    h.resume(12, &w.resume_ticket, 1);
    assert_eq!(h.closed(12), Some(CloseCode::Unauthorized));
    h.resume(13, &w2.resume_ticket, 1);
    assert_eq!(h.closed(13), None);
}
