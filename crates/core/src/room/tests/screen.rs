//! Screen snapshots in the room: a browser attaching afresh gets the latest snapshot and then exactly
//! the output after it; a resuming browser never gets one; the output after a snapshot stays held; a
//! snapshot too large or beyond the runner's credit breaks the protocol; the room asks for one when it
//! has none to give.

use super::*;
use crate::protocol::MAX_DATA_BYTES;
use crate::room::MAX_SNAPSHOT_BYTES;

fn snapshot(h: &mut Harness, offset: u64, data: &[u8]) {
    h.send(1, Frame::Snapshot { offset, last: true, data: data.to_vec() });
}

/// The snapshot parts a browser got, joined, with their offset.
fn screen_of(frames: &[Frame]) -> Option<(u64, Vec<u8>)> {
    let mut out: Option<(u64, Vec<u8>)> = None;
    for f in frames {
        if let Frame::Snapshot { offset, data, .. } = f {
            out.get_or_insert((*offset, Vec::new())).1.extend_from_slice(data);
        }
    }
    out
}

#[test]
fn a_fresh_browser_gets_the_screen_then_exactly_the_output_after_it() {
    let config = RoomConfig { history_bytes: 4, ..RoomConfig::default() };
    let mut h = Harness::new(config);
    h.join_runner(1);
    h.send(1, Frame::Output { offset: 0, data: b"\x1b[?1049h\x1b[2Jvim screen".to_vec() });
    snapshot(&mut h, 22, b"<the screen at 22>");
    h.send(1, Frame::Output { offset: 22, data: b"+typed after".to_vec() });
    let frames = h.attach(10, "a1");
    let w = welcome(&frames);
    assert_eq!(w.offset, 22, "output continues where the snapshot stands");
    assert_eq!(screen_of(&frames), Some((22, b"<the screen at 22>".to_vec())));
    assert_eq!(output(&frames), b"+typed after", "then exactly the bytes after it, though history is 4 bytes");
    let snap_at = frames.iter().position(|f| matches!(f, Frame::Snapshot { .. })).unwrap();
    let out_at = frames.iter().position(|f| matches!(f, Frame::Output { .. })).unwrap();
    assert!(snap_at < out_at, "the screen comes before the output");

    // A resume continues at its own byte: no snapshot.
    h.event(Event::Disconnected { conn: ConnId(10) });
    let frames = h.resume(11, &w.resume_ticket, 29);
    assert_eq!(screen_of(&frames), None);
    assert_eq!(output(&frames), b"after");
}

#[test]
fn a_large_snapshot_arrives_in_parts_and_leaves_in_parts() {
    let mut h = live();
    let big: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    let parts: Vec<&[u8]> = big.chunks(MAX_DATA_BYTES).collect();
    for (i, part) in parts.iter().enumerate() {
        h.send(1, Frame::Snapshot { offset: 0, last: i + 1 == parts.len(), data: part.to_vec() });
    }
    let frames = h.attach(10, "a1");
    assert_eq!(screen_of(&frames), Some((0, big)));
    let lasts: Vec<bool> =
        frames.iter().filter_map(|f| if let Frame::Snapshot { last, .. } = f { Some(*last) } else { None }).collect();
    assert_eq!(lasts, [false, false, true]);
}

#[test]
fn without_a_snapshot_the_room_gives_history_and_asks_the_runner_for_one() {
    let mut h = live();
    h.send(1, Frame::Output { offset: 0, data: b"$ ".to_vec() });
    h.take(1);
    let frames = h.attach(10, "a1");
    assert_eq!(screen_of(&frames), None);
    assert_eq!(output(&frames), b"$ ");
    assert!(h.take(1).contains(&Frame::SnapshotWanted));
}

#[test]
fn the_output_after_the_latest_snapshot_stays_held_and_an_older_one_never_replaces_it() {
    let config = RoomConfig { history_bytes: 0, ..RoomConfig::default() };
    let mut h = Harness::new(config);
    h.join_runner(1);
    snapshot(&mut h, 0, b"blank");
    h.send(1, Frame::Output { offset: 0, data: vec![b'x'; 5000] });
    assert_eq!(h.room.buffered_bytes(), 5000, "kept for a fresh attach from the snapshot");
    snapshot(&mut h, 4000, b"newer");
    assert_eq!(h.room.buffered_bytes(), 1000, "a newer snapshot lets the older output go");
    snapshot(&mut h, 100, b"older");
    let frames = h.attach(10, "a1");
    assert_eq!(screen_of(&frames), Some((4000, b"newer".to_vec())));
    assert_eq!(output(&frames).len(), 1000);
}

#[test]
fn a_snapshot_too_large_or_beyond_the_credit_breaks_the_protocol() {
    let mut h = live();
    let part = vec![0u8; MAX_DATA_BYTES];
    for _ in 0..MAX_SNAPSHOT_BYTES / MAX_DATA_BYTES {
        h.send(1, Frame::Snapshot { offset: 0, last: false, data: part.clone() });
    }
    assert_eq!(h.closed(1), None);
    h.send(1, Frame::Snapshot { offset: 0, last: true, data: vec![0] });
    assert_eq!(h.closed(1), Some(CloseCode::ProtocolError));

    let mut h = live();
    snapshot(&mut h, 4 * 1024 * 1024 + 1, b"from the future");
    assert_eq!(h.closed(1), Some(CloseCode::ProtocolError));
}

#[test]
fn a_snapshot_survives_a_restore_from_storage() {
    let mut h = live();
    h.send(1, Frame::Output { offset: 0, data: b"abc".to_vec() });
    snapshot(&mut h, 3, b"<screen>");
    let mut woken = h.store.wake();
    woken.take_liveness_from(&h.room);
    h.room = woken;
    let frames = h.attach(10, "a1");
    assert_eq!(screen_of(&frames), Some((3, b"<screen>".to_vec())));
}

#[test]
fn the_terminal_follows_the_browser_that_types() {
    let mut h = live();
    h.attach(10, "a1");
    h.attach(11, "a2");
    h.send(10, Frame::Resize { cols: 120, rows: 40 });
    h.send(11, Frame::Resize { cols: 40, rows: 20 });
    h.take(1);
    // The phone resized last, but the laptop types: the terminal takes the laptop's size first.
    h.send(10, Frame::Input { data: b"ls\r".to_vec() });
    assert_eq!(h.take(1), [Frame::Resize { cols: 120, rows: 40 }, Frame::Input { data: b"ls\r".to_vec() }]);
    h.send(10, Frame::Input { data: b"x".to_vec() });
    assert_eq!(h.take(1), [Frame::Input { data: b"x".to_vec() }], "no resize while the size holds");
    h.send(11, Frame::Input { data: b"y".to_vec() });
    assert_eq!(h.take(1), [Frame::Resize { cols: 40, rows: 20 }, Frame::Input { data: b"y".to_vec() }]);
}
