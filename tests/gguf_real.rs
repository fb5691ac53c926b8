//! The GGUF reader on the real default model, cross-checked against the `gguf` Python
//! package (golden: tests/goldens/smollm2_tensors.json, made by dump_gguf_directory.py).

use hearth::gguf::{self, Event, Header, Reader};
use std::path::PathBuf;
use std::time::Instant;

fn model_path() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models/cache/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `make models` to fetch the test model",
        path.display()
    );
    path
}

fn golden() -> serde_json::Value {
    let text = include_str!("goldens/smollm2_tensors.json");
    serde_json::from_str(text).expect("golden JSON")
}

fn check_against_golden(h: &Header) {
    let g = golden();
    assert_eq!(u64::from(h.version), g["version"].as_u64().unwrap());
    assert_eq!(h.metadata.len() as u64, g["n_kv"].as_u64().unwrap());
    assert_eq!(h.alignment, g["alignment"].as_u64().unwrap());
    assert_eq!(h.data_offset, g["data_offset"].as_u64().unwrap());
    assert_eq!(h.architecture(), g["architecture"].as_str());
    let tensors = g["tensors"].as_array().unwrap();
    assert_eq!(h.tensors.len(), tensors.len());
    for (t, gt) in h.tensors.iter().zip(tensors) {
        assert_eq!(t.name, gt["name"].as_str().unwrap());
        assert_eq!(t.ty.name(), gt["type"].as_str().unwrap(), "{}", t.name);
        assert_eq!(
            u64::from(t.ty.id()),
            gt["type_id"].as_u64().unwrap(),
            "{}",
            t.name
        );
        let dims: Vec<u64> = gt["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(t.dims, dims, "{}", t.name);
        assert_eq!(t.offset, gt["offset"].as_u64().unwrap(), "{}", t.name);
        assert_eq!(t.n_bytes, gt["n_bytes"].as_u64().unwrap(), "{}", t.name);
    }
}

#[test]
fn real_model_header_matches_gguf_py() {
    let bytes = std::fs::read(model_path()).unwrap();
    let start = Instant::now();
    let h = gguf::parse_header(&bytes).unwrap();
    println!(
        "parse_header: {:?} for {} header bytes",
        start.elapsed(),
        h.data_offset
    );
    check_against_golden(&h);
    assert_eq!(h.version, 3);
    assert_eq!(h.architecture(), Some("llama"));
    assert_eq!(h.tensors.len(), 272);
    let n_vocab = 49152;
    assert_eq!(
        h.metadata
            .get_array("tokenizer.ggml.tokens")
            .map(<[_]>::len),
        Some(n_vocab)
    );
    assert_eq!(
        h.metadata
            .get_array("tokenizer.ggml.token_type")
            .map(<[_]>::len),
        Some(n_vocab)
    );
    assert_eq!(h.metadata.get_u64("llama.embedding_length"), Some(576));
    h.check_file_len(bytes.len() as u64).unwrap();
    assert!(h.data_offset + h.data_len() <= bytes.len() as u64);
    // A prefix ending inside the header asks for more, and for no more than the header.
    match gguf::parse_header(&bytes[..1 << 20]) {
        Err(gguf::Error::Truncated { needed }) => {
            assert!(needed > 1 << 20 && needed <= h.data_offset)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn real_model_streams_in_chunks() {
    let bytes = std::fs::read(model_path()).unwrap();
    let h = gguf::parse_header(&bytes).unwrap();
    // The header one byte at a time (linear, not quadratic), the rest in 1 MiB chunks.
    let mut r = Reader::new();
    let mut events = Vec::new();
    let header_end = h.data_offset as usize;
    let start = Instant::now();
    for b in bytes[..header_end].chunks(1) {
        events.extend(r.feed(b).unwrap());
    }
    println!("header fed byte by byte: {:?}", start.elapsed());
    assert!(r.header().is_some());
    for chunk in bytes[header_end..].chunks(1 << 20) {
        events.extend(r.feed(chunk).unwrap());
    }
    r.finish().unwrap();
    let Some(Event::Header(streamed)) = events.first() else {
        panic!("header first")
    };
    assert_eq!(**streamed, h);
    let mut seen = vec![false; h.tensors.len()];
    let mut last_offset = 0;
    for e in &events[1..] {
        let Event::Tensor { index, bytes: data } = e else {
            panic!("one header event")
        };
        let t = &h.tensors[*index];
        assert!(
            !seen[*index] && t.offset >= last_offset,
            "{} out of file order",
            t.name
        );
        seen[*index] = true;
        last_offset = t.offset;
        let range = h.tensor_range(t).unwrap();
        assert!(
            *data == bytes[range.start as usize..range.end as usize],
            "{}",
            t.name
        );
    }
    assert!(seen.iter().all(|&s| s));
}

#[test]
fn real_model_read_file() {
    let mut count = 0;
    let h = gguf::read_file(&model_path(), |_, t, data| {
        count += 1;
        if data.len() as u64 == t.n_bytes {
            Ok(())
        } else {
            Err(format!("{}: {} bytes", t.name, data.len()))
        }
    })
    .unwrap();
    assert_eq!(count, h.tensors.len());
    check_against_golden(&h);
}
