//! Codec tests: golden encodings, refusals, and a round-trip property over arbitrary frames.

use super::*;
use proptest::prelude::*;

fn check(bytes: &[u8], expected: Result<Frame, FrameError>) {
    assert_eq!(Frame::decode(bytes), expected, "bytes {bytes:02x?}");
    if let Ok(frame) = expected {
        assert_eq!(frame.encode(), bytes, "golden encoding of {frame:?}");
    }
}

#[test]
fn golden_frames() {
    check(&[1, 0x01, 0, 0, 0, 0, 0, 0, 0, 7], Ok(Frame::Ping { nonce: 7 }));
    check(&[1, 0x10, b'l', b's'], Ok(Frame::Input { data: b"ls".to_vec() }));
    check(&[1, 0x11, 0, 80, 0, 24], Ok(Frame::Resize { cols: 80, rows: 24 }));
    check(&[1, 0x12, 2], Ok(Frame::Signal { signal: Signal::Interrupt }));
    check(&[1, 0x20, 0, 0, 0, 0, 0, 0, 1, 0, b'h', b'i'], Ok(Frame::Output { offset: 256, data: b"hi".to_vec() }));
    check(&[1, 0x21, 0, 0xff, 0xff, 0xff, 0xff], Ok(Frame::Exited { status: ExitStatus::Code(-1) }));
    check(&[1, 0x21, 1, 9], Ok(Frame::Exited { status: ExitStatus::Signaled(9) }));
    check(&[1, 0x35], Ok(Frame::RunnerLost));
    check(
        &[1, 0x36, 0x0f, 0xab, 0, 2, b'o', b'k'],
        Ok(Frame::Closing { code: CloseCode::RunnerLost, reason: "ok".into() }),
    );
}

#[test]
fn refusals() {
    check(&[], Err(FrameError::Empty));
    check(&[2, 0x01], Err(FrameError::UnsupportedVersion(2)));
    check(&[1], Err(FrameError::Truncated("type")));
    check(&[1, 0x7f], Err(FrameError::UnknownType(0x7f)));
    check(&[1, 0x01, 0, 0], Err(FrameError::Truncated("nonce")));
    check(&[1, 0x01, 0, 0, 0, 0, 0, 0, 0, 7, 0], Err(FrameError::TrailingBytes(1)));
    check(&[1, 0x11, 0, 0, 0, 24], Err(FrameError::InvalidValue("terminal size")));
    check(&[1, 0x12, 4], Err(FrameError::InvalidValue("signal")));
    check(&[1, 0x14, 0, 3, b'a', 0xff, b'b'], Err(FrameError::InvalidValue("token")));
    check(&[1, 0x14, 0, 9, b'a'], Err(FrameError::Truncated("token")));
    check(&[1, 0x22, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1], Err(FrameError::InvalidValue("credit limit")));
    check(&[1, 0x36, 0x0f, 0xff, 0, 0], Err(FrameError::InvalidValue("close code")));
    let mut too_big = vec![1, 0x10];
    too_big.resize(MAX_FRAME_BYTES + 1, b'x');
    check(&too_big, Err(FrameError::TooLarge(MAX_FRAME_BYTES + 1)));
    let mut big_output = vec![1, 0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    big_output.push(b'x');
    check(&big_output, Err(FrameError::InvalidValue("offset")));
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let data = proptest::collection::vec(any::<u8>(), 0..300);
    let text = "[ -~]{0,200}";
    let code = proptest::sample::select(ALL_CLOSE_CODES.to_vec());
    let signal = proptest::sample::select(vec![
        Signal::Hangup,
        Signal::Interrupt,
        Signal::Quit,
        Signal::Kill,
        Signal::Terminate,
    ]);
    prop_oneof![
        any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Frame::Pong { nonce }),
        data.clone().prop_map(|data| Frame::Input { data }),
        (any::<u64>(), data.clone()).prop_map(|(offset, data)| Frame::InputAt { offset, data }),
        (1..=u16::MAX, 1..=u16::MAX).prop_map(|(cols, rows)| Frame::Resize { cols, rows }),
        signal.prop_map(|signal| Frame::Signal { signal }),
        any::<u64>().prop_map(|offset| Frame::Ack { offset }),
        text.prop_map(|token| Frame::Refresh { token: token.into() }),
        (0..u64::MAX / 2, data).prop_map(|(offset, data)| Frame::Output { offset, data }),
        any::<i32>().prop_map(|c| Frame::Exited { status: ExitStatus::Code(c) }),
        any::<u8>().prop_map(|s| Frame::Exited { status: ExitStatus::Signaled(s) }),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| Frame::Credit { acked: a.min(b), limit: a.max(b) }),
        (any::<bool>(), text, any::<u64>(), text, any::<u32>(), any::<u64>(), any::<u32>()).prop_map(
            |(browser, session, offset, resume_ticket, window, expires_at, heartbeat_ms)| {
                Frame::Welcome(Welcome {
                    role: if browser { Role::Browser } else { Role::Runner },
                    session,
                    offset,
                    resume_ticket: resume_ticket.into(),
                    window,
                    expires_at,
                    heartbeat_ms,
                })
            }
        ),
        any::<u64>().prop_map(|expires_at| Frame::RefreshNeeded { expires_at }),
        any::<u64>().prop_map(|expires_at| Frame::RefreshAccepted { expires_at }),
        Just(Frame::RunnerAway),
        Just(Frame::RunnerBack),
        Just(Frame::RunnerLost),
        Just(Frame::SnapshotWanted),
        any::<u64>().prop_map(|ends_at| Frame::Deadline { ends_at }),
        (any::<u64>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(offset, last, data)| Frame::Snapshot { offset, last, data }),
        (code, text).prop_map(|(code, reason)| Frame::Closing { code, reason }),
    ]
}

proptest! {
    #[test]
    fn round_trip(frame in arb_frame()) {
        let bytes = frame.encode();
        prop_assert!(bytes.len() <= MAX_FRAME_BYTES);
        prop_assert_eq!(Frame::decode(&bytes), Ok(frame));
    }

    #[test]
    fn decoding_never_panics_and_reencodes_identically(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(frame) = Frame::decode(&bytes) {
            prop_assert_eq!(frame.encode(), bytes);
        }
    }
}
