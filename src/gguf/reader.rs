//! The incremental reader: bytes in, header and whole tensors out.

use super::parser::{HeaderParser, Status};
use super::tensor_bytes::TensorBytes;
use super::{Error, Header, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADER_MEMORY};
use std::sync::Arc;

/// What [`Reader::feed`] produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The header is complete (emitted exactly once, before any tensor).
    Header(Arc<Header>),
    /// All bytes of tensor `index` (into `Header::tensors`), in file order of the data.
    Tensor { index: usize, bytes: TensorBytes },
}

/// Parses a GGUF file fed in chunks of any size (one byte works).
///
/// Until the header is complete the reader keeps only the bytes of the item being parsed
/// (a key/value or array element; see `parser`), then it keeps only the tensor being
/// assembled, as pieces of at most [`PIECE`](super::PIECE) bytes (see [`TensorBytes`]):
/// memory is about one tensor plus one chunk, whatever the file size. Tensors
/// are emitted in the order their data is stored, which may differ from directory order;
/// padding and trailing bytes are skipped. After an error every call returns that error.
pub struct Reader {
    state: State,
    bytes_seen: u64,
    failed: Option<Error>,
    /// See [`Reader::whole_tensors_within`].
    whole_within: Option<u64>,
}

enum State {
    Header(Box<HeaderState>),
    Tensors(TensorState),
}

struct HeaderState {
    parser: HeaderParser,
    /// File bytes from `parser.pos()` on that the parser has not consumed.
    window: Vec<u8>,
    /// Do not call the parser before the file holds this many bytes (a lower bound on the
    /// header size it reported): this keeps tiny chunks from causing repeated re-parsing.
    needed: u64,
}

struct TensorState {
    header: Arc<Header>,
    /// Tensor indices sorted by offset (empty tensors first at equal offsets).
    order: Vec<usize>,
    /// Position in `order` of the tensor being assembled.
    next: usize,
    /// Bytes of that tensor received so far.
    current: TensorBytes,
    /// Tensors ending within this many bytes are reserved whole ([`Reader::whole_tensors_within`]).
    whole_within: Option<u64>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

impl Reader {
    /// A reader with the default header limit (512 MiB).
    pub fn new() -> Reader {
        Reader::with_limits(DEFAULT_MAX_HEADER_BYTES)
    }

    /// A reader that fails with [`Error::HeaderTooLarge`] (or a count/length error) when the
    /// header would exceed `max_header_bytes`; pass the file length when it is known.
    /// The memory budget is [`DEFAULT_MAX_HEADER_MEMORY`].
    pub fn with_limits(max_header_bytes: u64) -> Reader {
        Reader::with_budget(max_header_bytes, DEFAULT_MAX_HEADER_MEMORY)
    }

    /// Like [`with_limits`](Self::with_limits), also failing with [`Error::HeaderMemory`] when
    /// the parsed header would take more than `max_header_memory` bytes of memory.
    pub fn with_budget(max_header_bytes: u64, max_header_memory: u64) -> Reader {
        let parser = HeaderParser::new(max_header_bytes, max_header_memory);
        let header = HeaderState {
            parser,
            window: Vec::new(),
            needed: 1,
        };
        Reader {
            state: State::Header(Box::new(header)),
            bytes_seen: 0,
            failed: None,
            whole_within: None,
        }
    }

    /// Assemble each tensor that lies inside the first `file_len` bytes in one allocation of
    /// its size, reserved when its first byte arrives, instead of pieces of at most
    /// [`PIECE`](super::PIECE) (for a backend that keeps weights contiguous, which would
    /// otherwise copy the pieces and leave them behind: in wasm, freed memory stays resident).
    /// `file_len` must be the real file length (a tensor claiming bytes past it keeps the
    /// piecewise bound); call before the first byte.
    pub fn whole_tensors_within(mut self, file_len: u64) -> Reader {
        self.whole_within = Some(file_len);
        self
    }

    /// The header, once it has been parsed.
    pub fn header(&self) -> Option<&Arc<Header>> {
        match &self.state {
            State::Header(_) => None,
            State::Tensors(t) => Some(&t.header),
        }
    }

    /// Total bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.bytes_seen
    }

    /// Feeds the next `chunk` of the file. Returns the events it completed: `Header` once,
    /// then one `Tensor` per tensor whose last byte arrived. A malformed header is an
    /// error, returned again by every later call.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.feed_inner(chunk);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn feed_inner(&mut self, chunk: &[u8]) -> Result<Vec<Event>, Error> {
        let chunk_start = self.bytes_seen;
        self.bytes_seen = self.bytes_seen.saturating_add(chunk.len() as u64);
        let mut events = Vec::new();
        let hs = match &mut self.state {
            State::Tensors(ts) => {
                ts.push(chunk, chunk_start, &mut events)?;
                return Ok(events);
            }
            State::Header(hs) => hs,
        };
        if self.bytes_seen < hs.needed {
            hs.window.extend_from_slice(chunk);
            return Ok(events);
        }
        // Parse straight from the chunk when nothing is pending (the common large-chunk case).
        let pending = std::mem::take(&mut hs.window);
        let (data, base): (&[u8], u64) = if pending.is_empty() {
            (chunk, chunk_start)
        } else {
            hs.window = pending;
            hs.window.extend_from_slice(chunk);
            (&hs.window, hs.parser.pos())
        };
        debug_assert_eq!(base, hs.parser.pos());
        let (consumed, status) = hs.parser.advance(data)?;
        let rest = data.get(consumed..).unwrap_or(&[]);
        let rest_start = hs.parser.pos();
        match status {
            Status::NeedMore { needed } => {
                let rest = rest.to_vec();
                hs.window = rest;
                hs.needed = needed;
                Ok(events)
            }
            Status::Done(header) => {
                let rest = rest.to_vec();
                let header = Arc::new(header);
                events.push(Event::Header(header.clone()));
                let mut ts = TensorState::new(header, self.whole_within);
                ts.push(&rest, rest_start, &mut events)?;
                self.state = State::Tensors(ts);
                Ok(events)
            }
        }
    }

    /// Ends the stream: `Ok` when the header and every tensor were complete, else
    /// [`Error::Truncated`] with the file length needed (or the error `feed` returned).
    pub fn finish(self) -> Result<(), Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.state {
            State::Header(mut hs) => {
                // Bytes held back while waiting for `needed` may hold a malformed item:
                // report that rather than the truncation.
                let needed = hs.needed.max(self.bytes_seen.saturating_add(1));
                match hs.parser.advance(&hs.window)? {
                    (_, Status::NeedMore { needed }) => Err(Error::Truncated { needed }),
                    (_, Status::Done(_)) => {
                        // `needed` is a lower bound on the header size, so the header
                        // cannot end inside the bytes held back.
                        debug_assert!(false, "header completed below its lower bound");
                        Err(Error::Truncated { needed })
                    }
                }
            }
            State::Tensors(ts) if ts.next < ts.order.len() => {
                let h = &ts.header;
                let needed = h
                    .data_offset
                    .checked_add(h.data_len())
                    .ok_or(Error::Overflow("data section end"))?;
                Err(Error::Truncated { needed })
            }
            State::Tensors(_) => Ok(()),
        }
    }
}

impl TensorState {
    fn new(header: Arc<Header>, whole_within: Option<u64>) -> TensorState {
        let mut order: Vec<usize> = (0..header.tensors.len()).collect();
        order.sort_by_key(|&i| header.tensors.get(i).map(|t| (t.offset, t.n_bytes)));
        TensorState {
            header,
            order,
            next: 0,
            current: TensorBytes::default(),
            whole_within,
        }
    }

    /// Takes `data`, the file bytes starting at absolute offset `pos`.
    fn push(
        &mut self,
        mut data: &[u8],
        mut pos: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), Error> {
        while let Some(&index) = self.order.get(self.next) {
            let Some(t) = self.header.tensors.get(index) else {
                break;
            };
            let range = self.header.tensor_range(t)?;
            let at = range.start.saturating_add(self.current.len() as u64);
            if pos < at {
                // Padding (or bytes of no tensor) before this tensor's next byte.
                let skip = (at - pos).min(data.len() as u64) as usize;
                data = data.get(skip..).unwrap_or(&[]);
                pos += skip as u64;
                if pos < at {
                    return Ok(());
                }
            }
            let want = t.n_bytes.saturating_sub(self.current.len() as u64);
            let take = want.min(data.len() as u64) as usize;
            let whole = self.whole_within.is_some_and(|len| range.end <= len);
            self.current.push(data.get(..take).unwrap_or(&[]), want, whole);
            data = data.get(take..).unwrap_or(&[]);
            pos += take as u64;
            if (self.current.len() as u64) < t.n_bytes {
                return Ok(());
            }
            events.push(Event::Tensor {
                index,
                bytes: std::mem::take(&mut self.current),
            });
            self.next += 1;
        }
        Ok(())
    }
}

/// Why [`read_file`] failed.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, thiserror::Error)]
pub enum ReadFileError<E> {
    /// Reading the file failed.
    #[error("reading the GGUF file: {0}")]
    Io(#[from] std::io::Error),
    /// The file is malformed.
    #[error(transparent)]
    Gguf(#[from] Error),
    /// The tensor callback failed.
    #[error("tensor callback: {0}")]
    Callback(E),
}

/// Streams the file at `path` through a [`Reader`] in 4 MiB chunks, calling `on_tensor`
/// with each tensor's index, directory entry and bytes (in data order). Checks every tensor
/// against the file length before the first call. Returns the header.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_file<E>(
    path: &std::path::Path,
    mut on_tensor: impl FnMut(usize, &super::TensorInfo, &[u8]) -> Result<(), E>,
) -> Result<Arc<Header>, ReadFileError<E>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = Reader::with_limits(file_len.min(DEFAULT_MAX_HEADER_BYTES));
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        for event in reader.feed(buf.get(..n).unwrap_or(&[]))? {
            match event {
                Event::Header(h) => h.check_file_len(file_len)?,
                Event::Tensor { index, bytes } => {
                    if let Some(t) = reader.header().and_then(|h| h.tensors.get(index)) {
                        on_tensor(index, t, &bytes.to_vec()).map_err(ReadFileError::Callback)?;
                    }
                }
            }
        }
    }
    let header = reader.header().cloned();
    reader.finish()?;
    header.ok_or(ReadFileError::Gguf(Error::Truncated {
        needed: file_len + 1,
    }))
}
