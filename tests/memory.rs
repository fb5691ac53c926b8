//! Peak memory while loading and running the default model stays under 2× the file size
//! (weights stay quantized; the loader holds one tensor at a time).

mod common;

use hearth::backend::cpu::CpuBackend;

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn peak_rss_under_twice_the_file() {
    let file = std::fs::metadata(common::default_model()).unwrap().len();
    let mut s = common::load(CpuBackend::new());
    let p = hearth::engine::GenerateParams { max_tokens: 8, ..Default::default() };
    s.complete("Hello", &p, &mut |_| true).unwrap();
    let peak = peak_rss_bytes();
    eprintln!("peak RSS {} MB for a {} MB model", peak >> 20, file >> 20);
    assert!(peak < 2 * file, "peak RSS {peak} ≥ 2 × {file}");
}
