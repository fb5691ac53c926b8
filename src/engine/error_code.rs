//! The stable error codes of engine errors, as JS sees them (`www/src/errors.ts`).

use super::EngineError;
use crate::model::ModelError;

impl EngineError {
    /// The stable JS error code of this error (the JS `HearthError` codes, set at the wasm
    /// boundary): `INVALID_MODEL` for a malformed file
    /// (bad GGUF bytes, hyper-parameters that break a rule, tensors that do not match them, a
    /// hostile or broken chat template at load), `UNSUPPORTED_MODEL` for a well-formed file
    /// Hearth does not run (GGUF version, tensor type, architecture, tokenizer kind).
    pub fn code(&self) -> &'static str {
        use crate::backend::BackendError as BE;
        use crate::gguf::Error as GE;
        use crate::template::TemplateError as TE;
        use crate::tokenizer::TokenizerError as KE;
        match self {
            EngineError::Gguf(GE::UnsupportedVersion(_) | GE::UnknownTensorType { .. }) => "UNSUPPORTED_MODEL",
            EngineError::Gguf(_) => "INVALID_MODEL",
            EngineError::Tokenizer(KE::Unsupported { .. } | KE::UnsupportedPre { .. }) => "UNSUPPORTED_MODEL",
            EngineError::Tokenizer(KE::InvalidToken { .. } | KE::Encode(_)) => "BAD_REQUEST",
            EngineError::Tokenizer(_) => "INVALID_MODEL",
            // At load: a template that does not parse or fails the probe render. At request time
            // (`Session::render_chat`) template errors arrive as `BadRequest`.
            EngineError::Template(TE::NoTemplate | TE::Raised(_)) => "BAD_REQUEST",
            EngineError::Template(_) => "INVALID_MODEL",
            EngineError::Model(ModelError::ContextOverflow { .. }) | EngineError::ContextOverflow { .. } => "CONTEXT_OVERFLOW",
            EngineError::Model(ModelError::Backend(BE::DeviceLost(_))) | EngineError::Backend(BE::DeviceLost(_)) => "DEVICE_LOST",
            EngineError::Model(ModelError::Backend(BE::OutOfMemory { .. })) | EngineError::Backend(BE::OutOfMemory { .. }) => "QUOTA",
            EngineError::Model(ModelError::UnsupportedArchitecture { .. } | ModelError::Unsupported { .. } | ModelError::UnusedTensor(_)) => "UNSUPPORTED_MODEL",
            EngineError::Model(ModelError::Backend(BE::UnsupportedType { .. } | BE::Quant(_))) => "UNSUPPORTED_MODEL",
            EngineError::Model(_) => "INVALID_MODEL",
            EngineError::Backend(BE::UnsupportedType { .. }) | EngineError::Backend(BE::Quant(_)) => "UNSUPPORTED_MODEL",
            EngineError::Backend(_) => "INTERNAL",
            EngineError::BadRequest(_) | EngineError::Snapshot(_) => "BAD_REQUEST",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::TemplateError;

    #[test]
    fn malformed_files_are_invalid_and_unsupported_ones_unsupported() {
        let invalid = ModelError::Invalid { key: "llama.block_count".into(), value: "0".into(), rule: "r".into() };
        assert_eq!(EngineError::Model(invalid).code(), "INVALID_MODEL");
        assert_eq!(EngineError::Model(ModelError::MissingTensor("x".into())).code(), "INVALID_MODEL");
        assert_eq!(EngineError::Gguf(crate::gguf::Error::BadMagic(vec![0])).code(), "INVALID_MODEL");
        assert_eq!(EngineError::Gguf(crate::gguf::Error::HeaderMemory { limit: 1 }).code(), "INVALID_MODEL");
        assert_eq!(EngineError::Gguf(crate::gguf::Error::UnsupportedVersion(1)).code(), "UNSUPPORTED_MODEL");
        let arch = ModelError::UnsupportedArchitecture { name: "bert".into(), supported: vec![] };
        assert_eq!(EngineError::Model(arch).code(), "UNSUPPORTED_MODEL");
        assert_eq!(EngineError::Template(TemplateError::Limit("x".into())).code(), "INVALID_MODEL");
        assert_eq!(EngineError::Template(TemplateError::Syntax("x".into())).code(), "INVALID_MODEL");
        // Request-time template errors come from `Session::render_chat` as BadRequest.
        assert_eq!(EngineError::BadRequest("chat template".into()).code(), "BAD_REQUEST");
        assert_eq!(EngineError::Template(TemplateError::NoTemplate).code(), "BAD_REQUEST");
    }
}
