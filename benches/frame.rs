//! Encoding one event into its SSE frame, as one chunk of the chunked body: ringcast's
//! two-step `Draft` against a naive encoder that formats every line with `format!`, one
//! criterion group per payload.
//!
//! Both sides produce the same bytes (checked outside the timed part); each timed
//! closure asserts the frame's length. Throughput is the payload's bytes.
//!
//! Run: `cargo bench --bench frame`.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringcast::broadcast::frame::Draft;

/// A realistic id: ringcast seeds its sequence from the clock (16 digits).
const ID: u64 = 1_795_290_326_632_788;

/// What a user would write first: a `String` built with one `format!` per line, then
/// wrapped in its chunk (the body is chunked, one chunk per frame) by one more. It
/// splits on LF only, which is enough for the payloads here (they hold no CR).
fn naive(id: u64, data: &str) -> Vec<u8> {
    let mut frame = format!("id: {id}\n");
    for line in data.split('\n') {
        if line.is_empty() {
            frame.push_str("data:\n");
        } else {
            frame.push_str(&format!("data: {line}\n"));
        }
    }
    frame.push('\n');
    format!("{:x}\r\n{frame}\r\n", frame.len()).into_bytes()
}

fn ringcast(id: u64, data: &[u8]) -> bytes::Bytes {
    Draft::new(None, data).finish(id)
}

/// A JSON-ish line of `len` bytes.
fn line(seed: usize, len: usize) -> String {
    let mut s = String::with_capacity(len + 32);
    let mut i = seed;
    while s.len() < len {
        let _ = write!(s, "{{\"k{i}\":{}}},", i * 7919);
        i += 1;
    }
    s.truncate(len);
    s
}

fn bench_payload(c: &mut Criterion, name: &str, data: &str) {
    // Outside the timed part: both encoders agree byte for byte.
    let ours = ringcast(ID, data.as_bytes());
    let theirs = naive(ID, data);
    assert_eq!(&ours[..], &theirs[..], "{name}: encoders disagree");
    let len = ours.len();

    let mut group = c.benchmark_group(format!("frame/{name}"));
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("ringcast", |b| {
        b.iter(|| {
            let frame = ringcast(black_box(ID), black_box(data.as_bytes()));
            assert_eq!(frame.len(), len);
            frame
        })
    });
    group.bench_function("naive_format", |b| {
        b.iter(|| {
            let frame = naive(black_box(ID), black_box(data));
            assert_eq!(frame.len(), len);
            frame
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_payload(c, "single_line_64B", &line(0, 64));
    let ten: Vec<String> = (0..10).map(|i| line(i * 100, 60)).collect();
    bench_payload(c, "ten_lines_600B", &ten.join("\n"));
    bench_payload(c, "single_line_4KiB", &line(0, 4096));
}

criterion_group!(frame_benches, benches);
criterion_main!(frame_benches);
