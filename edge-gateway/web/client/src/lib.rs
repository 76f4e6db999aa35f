//! The web client's protocol engine: [`edgeshell_core::browser_link::BrowserLink`] exposed to the page
//! through wasm-bindgen. The page (`web/src/`) owns the WebSocket, xterm.js, timers and randomness; this
//! module only converts between JavaScript values and the core's types, so the browser speaks exactly
//! the protocol the room and the native test clients speak.
//!
//! Updates reach JavaScript as plain objects with a `kind`: `output` and `send` (`data`: `Uint8Array`),
//! `gap` (`bytes`), `status` (`status`), `exited` (`code` or `signal`), `refresh`, `closing` (`code`,
//! `reason`).

use edgeshell_core::browser_link::{AfterClose, BrowserLink, Update};
use edgeshell_core::protocol::{ExitStatus, NextStep};
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

/// One session's connection state, across reconnects.
#[wasm_bindgen]
pub struct Link {
    inner: BrowserLink,
}

#[wasm_bindgen]
impl Link {
    /// A link for `session`, attaching first with `token`.
    #[wasm_bindgen(constructor)]
    pub fn new(session: String, token: String) -> Link {
        Link { inner: BrowserLink::new(session, token) }
    }

    /// The `Sec-WebSocket-Protocol` list the next connection offers (version, then credential).
    pub fn protocols(&self) -> Vec<String> {
        self.inner.credential().offer().to_vec()
    }

    /// The path and query the next connection opens.
    pub fn path(&self) -> String {
        self.inner.path()
    }

    /// Call when the WebSocket opened.
    pub fn opened(&mut self, now_ms: f64) {
        self.inner.opened(ms(now_ms));
    }

    /// Feeds a binary message; returns the updates, or throws on a protocol violation (close and
    /// reconnect).
    #[wasm_bindgen(js_name = onBinary)]
    pub fn on_binary(&mut self, bytes: &[u8], now_ms: f64) -> Result<Array, JsError> {
        let updates = self.inner.on_binary(bytes, ms(now_ms)).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(updates.into_iter().map(update).collect())
    }

    /// Feeds a text message; returns the heartbeat round trip in ms when it was one.
    #[wasm_bindgen(js_name = onText)]
    pub fn on_text(&mut self, text: &str, now_ms: f64) -> Option<f64> {
        self.inner.on_text(text, ms(now_ms)).map(|rtt| rtt as f64)
    }

    /// Call about every second: returns the text heartbeat to send if one is due; throws when the
    /// connection went silent (close and reconnect).
    pub fn tick(&mut self, now_ms: f64) -> Result<Option<String>, JsError> {
        match self.inner.tick(ms(now_ms)) {
            Ok(ping) => Ok(ping.map(str::to_owned)),
            Err(silent) => Err(JsError::new(&silent.to_string())),
        }
    }

    /// Typed or pasted text as binary messages (empty while disconnected: queued for the next
    /// connection).
    pub fn input(&mut self, text: &str) -> Array {
        self.inner.input(text.as_bytes()).iter().map(|m| JsValue::from(Uint8Array::from(m.as_slice()))).collect()
    }

    /// A resize message to send now, or `undefined` (no live connection: remembered and sent after the
    /// next welcome; or a zero size).
    pub fn resize(&mut self, cols: u16, rows: u16) -> Option<Vec<u8>> {
        self.inner.resize(cols, rows)
    }

    /// The in-band refresh message carrying a fresh attach token.
    pub fn refresh(&mut self, token: String) -> Vec<u8> {
        self.inner.refresh(token)
    }

    /// A new attach token after `closed` asked for one.
    #[wasm_bindgen(js_name = newToken)]
    pub fn new_token(&mut self, token: String) {
        self.inner.new_token(token);
    }

    /// Call when the WebSocket closed: `{after: "reconnect", delay_ms}`, `{after: "token"}` or
    /// `{after: "stop", message, next}` (`next`: "new-session", "give-up"), with `updates`.
    pub fn closed(&mut self, code: u16, random: f64) -> Object {
        let (after, updates) = self.inner.closed(code, random);
        let out = Object::new();
        match after {
            AfterClose::Reconnect { delay_ms } => {
                set(&out, "after", "reconnect");
                set(&out, "delay_ms", delay_ms as f64);
            }
            AfterClose::NeedToken => set(&out, "after", "token"),
            AfterClose::Stop { message, next } => {
                set(&out, "after", "stop");
                set(&out, "message", message);
                set(&out, "next", next_name(next));
            }
        }
        let updates: Array = updates.into_iter().map(update).collect();
        set(&out, "updates", updates);
        out
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

fn ms(now: f64) -> u64 {
    if now.is_finite() && now > 0.0 {
        now as u64
    } else {
        0
    }
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

fn update(update: Update) -> JsValue {
    let out = Object::new();
    match update {
        Update::Output(data) => {
            set(&out, "kind", "output");
            set(&out, "data", Uint8Array::from(data.as_slice()));
        }
        Update::Gap(bytes) => {
            set(&out, "kind", "gap");
            set(&out, "bytes", bytes as f64);
        }
        Update::Send(data) => {
            set(&out, "kind", "send");
            set(&out, "data", Uint8Array::from(data.as_slice()));
        }
        Update::Status(status) => {
            set(&out, "kind", "status");
            set(&out, "status", status.name());
        }
        Update::Exited(status) => {
            set(&out, "kind", "exited");
            match status {
                ExitStatus::Code(code) => set(&out, "code", code),
                ExitStatus::Signaled(signal) => set(&out, "signal", signal),
            }
        }
        Update::RefreshNeeded => set(&out, "kind", "refresh"),
        Update::Closing(code, reason) => {
            set(&out, "kind", "closing");
            set(&out, "code", code.code());
            set(&out, "reason", reason);
        }
    }
    out.into()
}
