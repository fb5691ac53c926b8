//! How failures cross the boundary: engine errors become JS objects `{code, message}` (the
//! JS `HearthError` codes), and a Rust panic leaves its message behind for JS to read after
//! the trap.

use crate::engine::EngineError;
use wasm_bindgen::prelude::*;

/// Builds the `{code, message}` object JS receives.
pub(super) fn js_error(code: &str, message: &str) -> JsValue {
    let o = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&o, &"code".into(), &code.into());
    let _ = js_sys::Reflect::set(&o, &"message".into(), &message.into());
    o.into()
}

/// An engine error as JS receives it (its code: [`EngineError::code`]).
pub(super) fn to_js(e: EngineError) -> JsValue {
    js_error(e.code(), &e.to_string())
}

/// An answer of [`super::protocol`] as the JSON string JS parses; `INTERNAL` if serde fails
/// (these types hold only strings, numbers and booleans, so it does not).
pub(super) fn answer<T: serde::Serialize>(value: &T) -> Result<String, JsValue> {
    serde_json::to_string(value).map_err(|e| js_error("INTERNAL", &e.to_string()))
}

/// The last Rust panic's message (location included), kept by [`install_panic_hook`].
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Installs the panic hook every export starts with: it logs the panic to the console
/// (`console_error_panic_hook`) and keeps its message for [`last_panic_message`], because
/// the trap that follows reaches JS as a bare `RuntimeError: unreachable`.
pub(super) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            // try_lock: a panic while the lock is held (it never is, outside this hook) must
            // not deadlock the hook.
            if let Ok(mut last) = LAST_PANIC.try_lock() {
                *last = Some(info.to_string());
            }
            console_error_panic_hook::hook(info);
        }));
    });
}

/// The message of the last Rust panic in this wasm instance (`"panicked at src/…: …"`), or
/// `undefined` if none happened. After a trap (`WebAssembly.RuntimeError`) JS reads it to
/// report `INTERNAL` with the panic's text; the instance itself must then be discarded
/// (a trap leaves Rust state, such as a held `RefCell` borrow, behind).
#[wasm_bindgen]
pub fn last_panic_message() -> Option<String> {
    LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).clone()
}
