//! Milliseconds for usage timings. `std::time::Instant` panics on wasm32-unknown-unknown,
//! so the browser build reads `performance.now()` (through `instant`, which llguidance's
//! timers already use there).

#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1000.0
}

#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> f64 {
    instant::now()
}
