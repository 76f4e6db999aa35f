//! Frame codec cost: encoding and decoding output frames of typical sizes, and a small control frame.

#![allow(missing_docs)] // criterion_group! generates undocumented functions.
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgeshell_core::protocol::Frame;

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for size in [64usize, 4096, 32 * 1024] {
        let frame = Frame::Output { offset: 123_456_789, data: vec![0x41; size] };
        let bytes = frame.encode();
        group.throughput(Throughput::Bytes(size as u64));
        group
            .bench_with_input(BenchmarkId::new("encode_output", size), &frame, |b, f| b.iter(|| black_box(f).encode()));
        group.bench_with_input(BenchmarkId::new("decode_output", size), &bytes, |b, bytes| {
            b.iter(|| Frame::decode(black_box(bytes)).unwrap())
        });
    }
    let ack = Frame::Ack { offset: 42 }.encode();
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_ack", |b| b.iter(|| Frame::decode(black_box(&ack)).unwrap()));
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
