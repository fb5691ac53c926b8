//! The one validation of sampling requests, shared by the wasm surface and the CLI.
//!
//! Ranges match the TypeScript package's checks (`www/src/chat.ts`), so a request is refused
//! the same way whichever entry point it comes through; NaN and infinities are refused
//! everywhere (a NaN temperature must not silently become a default).

use super::{EngineError, GenerateParams, SamplerParams};

/// Most tokens one request may generate (as `chat.ts`).
pub const MAX_TOKENS_LIMIT: usize = 1 << 20;
/// Highest accepted temperature (OpenAI's range, as `chat.ts`).
pub const MAX_TEMPERATURE: f32 = 2.0;
/// Highest accepted repetition penalty (as `chat.ts`).
pub const MAX_REPEAT_PENALTY: f32 = 10.0;
/// Largest `top_k` and `repeat_last_n`.
pub const MAX_TOP_K: usize = 1 << 20;

fn check_f32(name: &str, v: f32, lo: f32, hi: f32) -> Result<(), EngineError> {
    if !v.is_finite() || v < lo || v > hi {
        return Err(EngineError::BadRequest(format!("{name} {v} is outside {lo}..={hi}")));
    }
    Ok(())
}

impl SamplerParams {
    /// Checks every parameter: `temperature` in 0..=2, `top_p` and `min_p` in 0..=1,
    /// `repeat_penalty` in 0..=10, `top_k` and `repeat_last_n` at most 2^20, all finite.
    /// Fails with [`EngineError::BadRequest`] naming the parameter and its value.
    pub fn validate(&self) -> Result<(), EngineError> {
        check_f32("temperature", self.temperature, 0.0, MAX_TEMPERATURE)?;
        check_f32("top_p", self.top_p, 0.0, 1.0)?;
        check_f32("min_p", self.min_p, 0.0, 1.0)?;
        check_f32("repeat_penalty", self.repeat_penalty, 0.0, MAX_REPEAT_PENALTY)?;
        for (name, v) in [("top_k", self.top_k), ("repeat_last_n", self.repeat_last_n)] {
            if v > MAX_TOP_K {
                return Err(EngineError::BadRequest(format!("{name} {v} is above {MAX_TOP_K}")));
            }
        }
        Ok(())
    }
}

impl GenerateParams {
    /// [`SamplerParams::validate`], and `max_tokens` in 1..=2^20.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.max_tokens == 0 || self.max_tokens > MAX_TOKENS_LIMIT {
            return Err(EngineError::BadRequest(format!("max_tokens {} is outside 1..={MAX_TOKENS_LIMIT}", self.max_tokens)));
        }
        self.sampler.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_every_bad_value_is_a_bad_request() {
        assert!(GenerateParams::default().validate().is_ok());
        assert_eq!(SamplerParams::default().temperature, 0.7, "the API default lives here");
        let d = SamplerParams::default();
        for bad in [
            SamplerParams { temperature: f32::NAN, ..d },
            SamplerParams { temperature: f32::INFINITY, ..d },
            SamplerParams { temperature: -0.1, ..d },
            SamplerParams { temperature: 2.5, ..d },
            SamplerParams { top_p: 1.5, ..d },
            SamplerParams { top_p: f32::NAN, ..d },
            SamplerParams { min_p: -1.0, ..d },
            SamplerParams { repeat_penalty: 11.0, ..d },
            SamplerParams { top_k: usize::MAX, ..d },
        ] {
            let e = bad.validate().expect_err("refused");
            assert!(matches!(e, EngineError::BadRequest(_)), "{e:?}");
        }
        for ok in [0.0, 1.0, 2.0] {
            assert!(SamplerParams { temperature: ok, ..d }.validate().is_ok());
        }
        assert!(GenerateParams { max_tokens: 0, ..Default::default() }.validate().is_err());
    }
}
