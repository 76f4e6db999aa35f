//! Input credit: browsers that keep to [`INPUT_CREDIT`] paste any amount, at the program's pace, and
//! are never refused, also several at once and while the program reads nothing for a while; the room
//! acks each connection the offset its own bytes reached, never plain `Input`, and a resumed
//! connection counts afresh.

use super::*;
use crate::protocol::INPUT_CREDIT;

/// A browser's side of input credit, as `BrowserLink` keeps it.
struct Paster {
    conn: u64,
    byte: u8,
    left: usize,
    sent: u64,
    acked: u64,
}

impl Paster {
    fn send(&mut self, h: &mut Harness) {
        while self.left > 0 {
            let room = (u64::from(INPUT_CREDIT) - (self.sent - self.acked)) as usize;
            let n = self.left.min(room).min(crate::protocol::MAX_DATA_BYTES);
            if n == 0 {
                return;
            }
            h.send(self.conn, Frame::InputAt { offset: self.sent, data: vec![self.byte; n] });
            (self.sent, self.left) = (self.sent + n as u64, self.left - n);
        }
    }

    fn hear(&mut self, frames: &[Frame]) {
        for f in frames {
            if let Frame::Ack { offset } = f {
                assert!(*offset <= self.sent, "acked {offset} of {} sent", self.sent);
                self.acked = self.acked.max(*offset);
            }
        }
    }
}

#[test]
fn browsers_keeping_to_their_credit_paste_any_amount_and_are_never_refused() {
    let mut h = live();
    welcome(&h.attach(10, "a1"));
    welcome(&h.attach(11, "a2"));
    h.take(1);
    const EACH: usize = 3 * 1024 * 1024;
    let mut pasters = [
        Paster { conn: 10, byte: b'a', left: EACH, sent: 0, acked: 0 },
        Paster { conn: 11, byte: b'b', left: EACH, sent: 0, acked: 0 },
    ];
    let (mut got, mut written) = ([0usize; 2], 0u64);
    for round in 0.. {
        assert!(round < 10_000, "stalled: {got:?}");
        for p in &mut pasters {
            p.send(&mut h);
        }
        assert!(h.room.pending_input.len() <= h.room.config.max_pending_input as usize);
        // The program reads nothing for the first rounds, then some of what reached it each round.
        for f in h.take(1) {
            if let Frame::Input { data } = f {
                for b in data {
                    got[usize::from(b - b'a')] += 1;
                }
            }
        }
        let received = (got[0] + got[1]) as u64;
        if round > 20 && written < received {
            written = (written + 100_000).min(received);
            h.send(1, Frame::Ack { offset: written });
        }
        for p in &mut pasters {
            p.hear(&h.take(p.conn));
            assert_eq!(h.closed(p.conn), None, "a browser within its credit was refused");
        }
        if got == [EACH, EACH] {
            break;
        }
    }
    assert_eq!(h.room.pending_input.len(), 0);
    assert!(h.room.pending_from.is_empty());
}

#[test]
fn acks_name_the_offset_passed_on_and_a_resumed_connection_counts_afresh() {
    let half = INPUT_CREDIT as usize / 2;
    let mut h = live();
    let w = welcome(&h.attach(10, "a1"));
    h.take(1);
    // The runner's window takes the input at once: acks go out each half credit.
    h.send(10, Frame::InputAt { offset: 0, data: vec![b'x'; half - 1] });
    assert!(h.take(10).is_empty(), "less than half a credit: no ack yet");
    h.send(10, Frame::InputAt { offset: half as u64 - 1, data: vec![b'x'; 1] });
    assert_eq!(h.take(10), vec![Frame::Ack { offset: half as u64 }]);
    // Plain input (an older page) is passed on and never acked.
    h.send(10, Frame::Input { data: vec![b'p'; half * 2] });
    assert!(h.take(10).is_empty());
    // The browser resumes on another connection: its offsets start again there.
    let frames = h.resume(12, &w.resume_ticket, 0);
    assert!(matches!(frames.first(), Some(Frame::Welcome(_))), "{frames:?}");
    h.send(12, Frame::InputAt { offset: 0, data: vec![b'z'; half] });
    let acks: Vec<Frame> = h.take(12).into_iter().filter(|f| matches!(f, Frame::Ack { .. })).collect();
    assert_eq!(acks, vec![Frame::Ack { offset: half as u64 }]);
}

#[test]
fn input_waiting_for_an_absent_runner_is_acked_when_it_goes() {
    let mut h = Harness::new(RoomConfig::default());
    welcome(&h.attach(10, "a1"));
    h.send(10, Frame::InputAt { offset: 0, data: vec![b'q'; INPUT_CREDIT as usize] });
    assert!(h.take(10).iter().all(|f| !matches!(f, Frame::Ack { .. })), "nothing passed on yet");
    assert_eq!(h.room.pending_input.len(), INPUT_CREDIT as usize);
    h.join_runner(1);
    assert!(h.room.pending_input.is_empty(), "passed on to the runner that joined");
    let acks: Vec<Frame> = h.take(10).into_iter().filter(|f| matches!(f, Frame::Ack { .. })).collect();
    assert_eq!(acks, vec![Frame::Ack { offset: u64::from(INPUT_CREDIT) }]);
}
