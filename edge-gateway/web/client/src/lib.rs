//! The web client's protocol engine: the core's [`BrowserLink`] state machine exposed to the page through
//! wasm-bindgen. The page (`web/src/session.js`) owns the WebSocket, xterm.js and one timer; it feeds
//! each thing that happened in with the time, carries out the effects that come back, and arms its timer
//! for [`Link::poll_timeout`]. This module only converts between JavaScript values and the core's types,
//! so the browser speaks exactly the protocol the room and the native clients speak.
//!
//! Every call returns the effects as an array of plain objects with a `kind`: `connect` (`path`,
//! `protocols`), `output` and `send` (`data`: `Uint8Array`), `screen` (`data`, `first`, `last`: a
//! snapshot that draws the session's screen on a fresh attach), `sendText` (`text`), `gap` (`bytes`),
//! `status` (`status`), `rtt` (`ms`), `exited` (`code` or `signal`), `deadline` (`at`, epoch seconds),
//! `refresh`, `closing` (`code`,
//! `reason`), `notice` (`text`), `abandon` (`reason`), `reconnectIn` (`ms`), `needToken`, `stop` (`message`,
//! `next`).

use edgeshell_core::browser_link::{BrowserLink, Effect, Event};
use edgeshell_core::machine::StateMachine;
use edgeshell_core::protocol::{ExitStatus, NextStep};
use edgeshell_core::time::Timestamp;
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

/// One session's connection state, across reconnects.
#[wasm_bindgen]
pub struct Link {
    inner: BrowserLink,
}

#[wasm_bindgen]
impl Link {
    /// A link for `session`, attaching first with `token`; `seed` is random in `[0, 1)` (reconnect
    /// jitter). Its first timeout is due at once and connects.
    #[wasm_bindgen(constructor)]
    pub fn new(session: String, token: String, seed: f64, now_ms: f64) -> Link {
        let seed = (seed.clamp(0.0, 1.0) * 9_007_199_254_740_992.0) as u64;
        Link { inner: BrowserLink::new(session, token, seed, ms(now_ms)) }
    }

    /// A link continuing the seat this tab held before a reload: the `ticket` and `offset` that
    /// page kept (the [`Link::resume_ticket`] and the offset of the output it had shown), and a fresh `token`
    /// to attach with should the room refuse the ticket.
    pub fn resuming(session: String, token: String, ticket: String, offset: f64, seed: f64, now_ms: f64) -> Link {
        let seed = (seed.clamp(0.0, 1.0) * 9_007_199_254_740_992.0) as u64;
        let offset = if offset.is_finite() && offset > 0.0 { offset as u64 } else { 0 };
        Link { inner: BrowserLink::resuming(session, token, (ticket, offset), seed, ms(now_ms)) }
    }

    /// The latest resume ticket, once the room has welcomed the link (the page keeps it per tab, so a
    /// reload continues the seat).
    #[wasm_bindgen(getter, js_name = resumeTicket)]
    pub fn resume_ticket(&self) -> Option<String> {
        self.inner.resume_point().map(|(ticket, _)| ticket.to_owned())
    }

    /// The WebSocket opened.
    pub fn opened(&mut self, now_ms: f64) -> Array {
        self.event(Event::Opened, now_ms)
    }

    /// A binary message arrived.
    #[wasm_bindgen(js_name = onBinary)]
    pub fn on_binary(&mut self, bytes: &[u8], now_ms: f64) -> Array {
        self.event(Event::Binary(bytes.to_vec()), now_ms)
    }

    /// A text message arrived (the heartbeat answer).
    #[wasm_bindgen(js_name = onText)]
    pub fn on_text(&mut self, text: String, now_ms: f64) -> Array {
        self.event(Event::Text(text), now_ms)
    }

    /// Typed or pasted text.
    pub fn input(&mut self, text: &str, now_ms: f64) -> Array {
        self.event(Event::Input(text.as_bytes().to_vec()), now_ms)
    }

    /// The terminal's size changed.
    pub fn resize(&mut self, cols: u16, rows: u16, now_ms: f64) -> Array {
        self.event(Event::Resize { cols, rows }, now_ms)
    }

    /// A fresh attach token for the in-band refresh (after a `refresh` effect).
    pub fn refresh(&mut self, token: String, now_ms: f64) -> Array {
        self.event(Event::Refresh(token), now_ms)
    }

    /// A new attach token after a `needToken` effect.
    #[wasm_bindgen(js_name = newToken)]
    pub fn new_token(&mut self, token: String, now_ms: f64) -> Array {
        self.event(Event::NewToken(token), now_ms)
    }

    /// The WebSocket closed with `code`.
    pub fn closed(&mut self, code: u16, now_ms: f64) -> Array {
        self.event(Event::Closed { code }, now_ms)
    }

    /// The timer fired.
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now_ms: f64) -> Array {
        self.inner.handle_timeout(ms(now_ms)).into_iter().map(effect).collect()
    }

    /// When the timer should fire next (milliseconds since the epoch), or `undefined`.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.inner.poll_timeout().map(|at| at.as_millis() as f64)
    }

    /// The status: connecting, live, resuming, runner-away, runner-lost, ended.
    #[wasm_bindgen(getter)]
    pub fn status(&self) -> String {
        self.inner.status().name().to_owned()
    }

    /// The last heartbeat round trip in ms.
    #[wasm_bindgen(getter, js_name = rttMs)]
    pub fn rtt_ms(&self) -> Option<f64> {
        self.inner.rtt_ms().map(|r| r as f64)
    }

    /// Output bytes shown so far (the resume offset).
    #[wasm_bindgen(getter)]
    pub fn offset(&self) -> f64 {
        self.inner.offset() as f64
    }

    /// When the attach authorization expires, seconds since the epoch (0: unknown).
    #[wasm_bindgen(getter, js_name = expiresAt)]
    pub fn expires_at(&self) -> f64 {
        self.inner.expires_at() as f64
    }
}

impl Link {
    fn event(&mut self, event: Event, now_ms: f64) -> Array {
        self.inner.handle_event(event, ms(now_ms)).into_iter().map(effect).collect()
    }
}

fn ms(now: f64) -> Timestamp {
    Timestamp::from_millis(if now.is_finite() && now > 0.0 { now as u64 } else { 0 })
}

fn next_name(next: NextStep) -> &'static str {
    match next {
        NextStep::Resume => "resume",
        NextStep::NewToken => "new-token",
        NextStep::NewSession => "new-session",
        NextStep::Later => "later",
        NextStep::GiveUp => "give-up",
    }
}

fn set(object: &Object, key: &str, value: impl Into<JsValue>) {
    // Setting a fresh plain object's own property cannot fail.
    let _ = Reflect::set(object, &JsValue::from_str(key), &value.into());
}

fn effect(effect: Effect) -> JsValue {
    let out = Object::new();
    let kind = |name: &str| set(&out, "kind", name);
    match effect {
        Effect::Connect { path, credential } => {
            kind("connect");
            set(&out, "path", path);
            let protocols: Array = credential.offer().iter().map(|p| JsValue::from_str(p)).collect();
            set(&out, "protocols", protocols);
        }
        Effect::Output(data) => {
            kind("output");
            set(&out, "data", Uint8Array::from(data.as_slice()));
        }
        Effect::Screen { data, first, last } => {
            kind("screen");
            set(&out, "data", Uint8Array::from(data.as_slice()));
            set(&out, "first", first);
            set(&out, "last", last);
        }
        Effect::Gap(bytes) => {
            kind("gap");
            set(&out, "bytes", bytes as f64);
        }
        Effect::Send(data) => {
            kind("send");
            set(&out, "data", Uint8Array::from(data.as_slice()));
        }
        Effect::SendText(text) => {
            kind("sendText");
            set(&out, "text", text);
        }
        Effect::Status(status) => {
            kind("status");
            set(&out, "status", status.name());
        }
        Effect::Rtt(ms) => {
            kind("rtt");
            set(&out, "ms", ms as f64);
        }
        Effect::Exited(status) => {
            kind("exited");
            match status {
                ExitStatus::Code(code) => set(&out, "code", code),
                ExitStatus::Signaled(signal) => set(&out, "signal", signal),
            }
        }
        Effect::Deadline(at) => {
            kind("deadline");
            set(&out, "at", at as f64);
        }
        Effect::RefreshNeeded => kind("refresh"),
        Effect::Closing(code, reason) => {
            kind("closing");
            set(&out, "code", code.code());
            set(&out, "reason", reason);
        }
        Effect::Notice(text) => {
            kind("notice");
            set(&out, "text", text);
        }
        Effect::Abandon(reason) => {
            kind("abandon");
            set(&out, "reason", reason);
        }
        Effect::ReconnectIn(delay) => {
            kind("reconnectIn");
            set(&out, "ms", delay.as_millis() as f64);
        }
        Effect::NeedToken => kind("needToken"),
        Effect::Stop { message, next } => {
            kind("stop");
            set(&out, "message", message);
            set(&out, "next", next_name(next));
        }
    }
    out.into()
}
