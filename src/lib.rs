//! Hearth: small language models that run entirely on the user's machine.
//!
//! The crate is the engine behind both the native CLI (`src/bin/hearth/`) and the
//! WebAssembly build used in browsers. Data flows one way (see `DESIGN.md`):
//! bytes → [`gguf`] → [`model`] config + [`tokenizer`] + [`template`] → [`backend`] weights →
//! [`engine`] (prefill, decode, sampling) → text.

pub mod backend;
pub mod engine;
pub mod gguf;
pub mod model;
pub mod quant;
#[cfg(not(target_arch = "wasm32"))]
pub mod registry;
pub mod template;
pub mod tokenizer;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
/// Natively only the wasm surface's message types ([`wasm::protocol`]), so their tests (the
/// shapes the TypeScript side is checked against) run under `cargo test`.
#[cfg(not(target_arch = "wasm32"))]
pub mod wasm {
    pub mod protocol;
}
