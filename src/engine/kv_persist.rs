//! Exporting and restoring a prompt prefix's KV cache ([`super::kv_snapshot`]) on a session.

use super::kv_snapshot::{self, SnapshotError, SnapshotKey};
use super::{block_on_ready, EngineError, Session};
use crate::backend::Backend;
use crate::template::ChatMessage;

impl<B: Backend> Session<B> {
    /// The tokens of a chat's reusable prefix: its first `n_messages` messages as the template
    /// renders them without a generation prompt, cut to what they share with the whole chat's
    /// tokens (a template may render a cut conversation differently at its end) and to one
    /// token less than the whole (the last prompt token must run to give logits). Empty when
    /// nothing is shared. This is what a persisted prompt cache stores and looks up.
    pub fn chat_prefix_tokens(&self, messages: &[ChatMessage], n_messages: usize) -> Result<Vec<u32>, EngineError> {
        let full = self.chat_tokens(messages)?;
        let n = n_messages.min(messages.len());
        if n == 0 {
            return Ok(Vec::new());
        }
        let tpl = self.template().map_err(|e| EngineError::BadRequest(e.to_string()))?;
        let text = tpl.render(&messages[..n], false).map_err(|e| EngineError::BadRequest(e.to_string()))?;
        // BOS as `chat_tokens` decides it: not when the template writes it itself.
        let bos_in_text = self.tokenizer.bos().and_then(|b| self.tokenizer.token_piece(b)).is_some_and(|p| !p.is_empty() && text.starts_with(p));
        let prefix = self.tokenizer.encode(&text, !bos_in_text, true)?;
        let shared = prefix.iter().zip(&full).take_while(|(a, b)| a == b).count().min(full.len().saturating_sub(1));
        Ok(full[..shared].to_vec())
    }

    /// Prefills `prefix` alone (reusing what the KV cache shares with it) and returns how many of
    /// its tokens were reused. The browser's prompt cache computes a missed prefix this way on
    /// WebGPU, in the batches a restore of it gives (its batched and one-token kernels may round
    /// differently, which could flip a near-tie greedy token); on the CPU backend a token's result
    /// does not depend on the split, and a miss prefills its whole prompt at once.
    pub fn prefill_prefix(&mut self, prefix: &[u32]) -> Result<usize, EngineError> {
        self.prefill_reusing(prefix).map(|(_, shared)| shared)
    }

    /// Whether the KV cache holds `prefix` now (its first tokens are these), so restoring a
    /// snapshot of it would change nothing.
    pub fn holds_prefix(&self, prefix: &[u32]) -> bool {
        !prefix.is_empty() && self.cached.starts_with(prefix)
    }

    /// What a snapshot made by this session is keyed by (see [`kv_snapshot`]).
    fn snapshot_key<'a>(&self, model_id: &'a str, backend: &'a str) -> SnapshotKey<'a> {
        let cfg = self.model.config();
        SnapshotKey {
            model_id,
            backend,
            n_layer: self.model.kv_cache().len(),
            kv_dim: cfg.kv_dim(),
            n_vocab: cfg.n_vocab,
            n_ctx: self.model.n_ctx(),
            fingerprint: kv_snapshot::config_fingerprint(cfg),
        }
    }

    /// Exports the KV cache of `prefix` (which must be the first tokens the cache holds, at
    /// least one) as a snapshot for [`Session::restore_prefix`]; `model_id` names the model
    /// file (its sha256). Reads back from the backend asynchronously (the browser's GPU);
    /// natively see [`Session::export_prefix_blocking`].
    pub async fn export_prefix(&mut self, prefix: &[u32], model_id: &str) -> Result<Vec<u8>, EngineError> {
        if prefix.is_empty() || !self.cached.starts_with(prefix) {
            return Err(EngineError::BadRequest(format!(
                "the KV cache does not hold this {}-token prefix (it holds {} tokens)",
                prefix.len(),
                self.cached.len()
            )));
        }
        let backend = self.backend.describe();
        let key = self.snapshot_key(model_id, &backend);
        let len = prefix.len() * key.kv_dim;
        let mut out = kv_snapshot::begin(&key, prefix)?;
        let layers: Vec<(B::Tensor, B::Tensor)> = self.model.kv_cache().into_iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (k, v) in &layers {
            for t in [k, v] {
                let rows = self.backend.read_async(t, 0, len).await?;
                kv_snapshot::push_rows(&mut out, &rows);
            }
        }
        Ok(kv_snapshot::finish(out))
    }

    /// [`Session::export_prefix`] for backends that never suspend (the CPU, native GPUs).
    pub fn export_prefix_blocking(&mut self, prefix: &[u32], model_id: &str) -> Result<Vec<u8>, EngineError> {
        block_on_ready(self.export_prefix(prefix, model_id))?
    }

    /// Restores a snapshot made by [`Session::export_prefix`] for the same model file
    /// (`model_id`), backend, hyper-parameters and context; returns how many tokens it holds.
    /// The next request that starts with them prefills only what follows. Every field, the
    /// length and the checksum are checked before anything is written: a corrupted, truncated
    /// or mismatched snapshot fails with [`EngineError::Snapshot`] and leaves the cache as it
    /// was.
    pub fn restore_prefix(&mut self, bytes: &[u8], model_id: &str) -> Result<usize, EngineError> {
        let backend = self.backend.describe();
        let key = self.snapshot_key(model_id, &backend);
        let snap = kv_snapshot::parse(bytes, &key)?;
        let n = snap.tokens.len();
        if self.cached.starts_with(&snap.tokens) {
            // Already there (same prefix computed in this page): nothing to write.
            return Ok(n);
        }
        let layers: Vec<(B::Tensor, B::Tensor)> = self.model.kv_cache().into_iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        // From here the cache changes: forget it first, so a failing write leaves no claim.
        self.cached.clear();
        for (il, (k, v)) in layers.iter().enumerate() {
            self.backend.write(k, 0, &snap.rows(il, 0))?;
            self.backend.write(v, 0, &snap.rows(il, 1))?;
        }
        self.cached = snap.tokens;
        Ok(n)
    }
}

impl From<SnapshotError> for EngineError {
    fn from(e: SnapshotError) -> Self {
        EngineError::Snapshot(e)
    }
}
