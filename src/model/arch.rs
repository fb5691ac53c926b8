//! The architectures Hearth runs, by GGUF `general.architecture`: the one list of their
//! names and of what tells them apart (which file computes them, RoPE ordering).
//!
//! Adding an architecture that an existing family computes is one row here; a new family is
//! one file (`model/<family>.rs`, written over the `Backend` trait), one [`Family`] variant
//! and its rows.

use super::ModelError;

/// The file that computes an architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `llama.rs`: Llama-style decoders (SwiGLU, RMSNorm, optional QKV biases, QK norms, fused
    /// QKV / gate-up as Phi-3 stores them).
    Llama,
    /// `gemma.rs`: Gemma 2 and 3 (GeGLU, extra norms, sliding-window layers, soft-capping;
    /// QK-norm in Gemma 3).
    Gemma,
}

/// One architecture Hearth runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Architecture {
    /// `general.architecture` (the prefix of its metadata keys).
    pub name: &'static str,
    pub family: Family,
    /// NeoX RoPE ordering (pairs `(i, i + n_rot/2)`) rather than adjacent pairs (llama.cpp's
    /// `LLAMA_ROPE_TYPE_NEOX` list).
    pub rope_neox: bool,
}

/// Every architecture Hearth runs, once.
pub const ARCHITECTURES: &[Architecture] = &[
    Architecture { name: "llama", family: Family::Llama, rope_neox: false },
    Architecture { name: "mistral", family: Family::Llama, rope_neox: false },
    Architecture { name: "qwen2", family: Family::Llama, rope_neox: true },
    Architecture { name: "qwen3", family: Family::Llama, rope_neox: true },
    Architecture { name: "smollm", family: Family::Llama, rope_neox: false },
    Architecture { name: "smollm3", family: Family::Llama, rope_neox: false },
    Architecture { name: "phi3", family: Family::Llama, rope_neox: true },
    Architecture { name: "gemma2", family: Family::Gemma, rope_neox: true },
    Architecture { name: "gemma3", family: Family::Gemma, rope_neox: true },
];

/// The [`ARCHITECTURES`] row named `name`.
///
/// Errors: [`ModelError::UnsupportedArchitecture`] (listing the supported names) when none is.
pub fn architecture(name: &str) -> Result<&'static Architecture, ModelError> {
    ARCHITECTURES.iter().find(|a| a.name == name).ok_or_else(|| ModelError::UnsupportedArchitecture {
        name: name.to_string(),
        supported: ARCHITECTURES.iter().map(|a| a.name.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_unknown_ones_are_refused_with_the_list() {
        for (i, a) in ARCHITECTURES.iter().enumerate() {
            assert!(ARCHITECTURES[..i].iter().all(|b| b.name != a.name), "{} twice", a.name);
            assert_eq!(architecture(a.name), Ok(a));
        }
        let Err(ModelError::UnsupportedArchitecture { name, supported }) = architecture("bert") else { panic!("bert accepted") };
        assert_eq!((name.as_str(), supported.len()), ("bert", ARCHITECTURES.len()));
    }
}
