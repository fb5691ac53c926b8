//! Stop strings over streamed text: text that could still become a stop string is held
//! back, so a caller never sees the beginning of a stop string it asked to cut.

pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
    hit: bool,
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> StopMatcher {
        StopMatcher { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), pending: String::new(), hit: false }
    }

    /// Adds decoded text; returns the text safe to emit and whether a stop string matched
    /// (in which case the text before it is returned and the rest dropped).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        if self.hit {
            return (String::new(), true);
        }
        self.pending.push_str(piece);
        if let Some(at) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            self.hit = true;
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return (out, true);
        }
        let keep = self.held_back();
        let cut = self.pending.len() - keep;
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        (out, false)
    }

    /// Length in bytes of the longest suffix of `pending` that starts some stop string.
    fn held_back(&self) -> usize {
        let mut best = 0;
        for s in &self.stops {
            for (i, _) in self.pending.char_indices() {
                let suffix = &self.pending[i..];
                if suffix.len() > best && s.starts_with(suffix) {
                    best = suffix.len();
                }
            }
        }
        best
    }

    /// Whether a stop string matched.
    pub fn hit(&self) -> bool {
        self.hit
    }

    /// Releases everything held back plus `tail` (end of generation without a match).
    pub fn finish(&mut self, tail: &str) -> String {
        let (mut out, hit) = self.push(tail);
        if !hit {
            out.push_str(&std::mem::take(&mut self.pending));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for p in pieces {
            let (o, hit) = m.push(p);
            out.push_str(&o);
            if hit {
                return (out, true);
            }
        }
        out.push_str(&m.finish(""));
        (out, false)
    }

    #[test]
    fn cuts_at_stop_split_across_pieces() {
        assert_eq!(run(&["\nUser:"], &["Hello", "\nUs", "er: hi"]), ("Hello".into(), true));
    }

    #[test]
    fn releases_held_text_when_no_stop_follows() {
        assert_eq!(run(&["STOP"], &["ab", "ST", "x"]), ("abSTx".into(), false));
        assert_eq!(run(&["STOP"], &["ab", "ST"]), ("abST".into(), false));
    }

    #[test]
    fn earliest_of_several_stops_wins_and_multibyte_is_safe() {
        assert_eq!(run(&["é!", "b"], &["aé", "!b"]), ("a".into(), true));
    }
}
