//! Allocations per decoded message, counted by a global allocator (this file is its own test
//! binary so nothing else allocates on the counted thread between the counter reads).
//!
//! The bounds are the ones the codec achieves; a change that adds an allocation on the hot path
//! fails here. EVENT and PUBLISH are boxed variants of `Message` (it stays small to move), so
//! each decode allocates that box once. Frames are `Bytes` that are already shared (as frames sliced out of a transport's
//! read buffer are), so slicing the payload out of them is a reference-count increment.

use bytes::Bytes;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use switchyard::codec::{self, Message, Serializer};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCS.with(Cell::get);
    let r = f();
    let after = ALLOCS.with(Cell::get);
    (r, after - before)
}

/// A frame in shared form: cloning or slicing it never allocates.
fn shared(bytes: Vec<u8>) -> Bytes {
    let b = Bytes::from(bytes);
    drop(b.clone()); // promotes a `Vec`-backed `Bytes` to its shared form once
    b
}

/// `[EVENT, 5512315355, 4429313566, {}, [<64-byte string>]]` in MessagePack.
fn msgpack_event() -> Bytes {
    let mut f = vec![0x95, 0x24];
    f.extend([0xcf, 0, 0, 0, 1, 0x48, 0x8f, 0x41, 0xdb]);
    f.extend([0xce, 0x08, 0x01, 0x02, 0x03]);
    f.push(0x80);
    f.extend([0x91, 0xd9, 64]);
    f.extend([b'x'; 64]);
    shared(f)
}

/// `[PUBLISH, 239714735, {}, "com.myapp.mytopic1", [<64-byte string>]]` in MessagePack.
fn msgpack_publish() -> Bytes {
    msgpack_publish_to(b"com.myapp.mytopic1")
}

/// The same PUBLISH to an 18-byte topic of the caller's choice.
fn msgpack_publish_to(topic: &[u8; 18]) -> Bytes {
    let mut f = vec![0x95, 0x10, 0xce, 0x0e, 0x49, 0xc1, 0xaf, 0x80, 0xb2];
    f.extend(topic);
    f.extend([0x91, 0xd9, 64]);
    f.extend([b'x'; 64]);
    shared(f)
}

fn json_event() -> Bytes {
    shared(format!("[36,5512315355,4429313566,{{}},[\"{}\"]]", "x".repeat(64)).into_bytes())
}

fn json_publish() -> Bytes {
    shared(
        format!(
            "[16,239714735,{{}},\"com.myapp.mytopic1\",[\"{}\"]]",
            "x".repeat(64)
        )
        .into_bytes(),
    )
}

fn count_decode(ser: Serializer, frame: &Bytes) -> usize {
    // Warm up anything lazily initialised, then count a steady-state decode.
    codec::decode(ser, frame).expect("decodes");
    let (m, n) = allocations(|| codec::decode(ser, frame));
    let m = m.expect("decodes");
    assert!(matches!(m, Message::Event(_) | Message::Publish(_)));
    n
}

#[test]
fn msgpack_event_decode_allocates_only_the_box() {
    assert_eq!(count_decode(Serializer::MsgPack, &msgpack_event()), 1);
}

#[test]
fn msgpack_publish_decode_allocates_only_the_box_for_a_recent_topic() {
    // The topic URI is one `Arc<str>`, shared with the warm-up decode's (`Uri::decoded`).
    assert_eq!(count_decode(Serializer::MsgPack, &msgpack_publish()), 1);
}

#[test]
fn msgpack_publish_decode_allocates_the_box_and_a_new_topic() {
    // A topic this thread has not decoded (recently): its `Arc<str>` is allocated once.
    codec::decode(Serializer::MsgPack, &msgpack_publish()).expect("decodes"); // warm-up
    let fresh = msgpack_publish_to(b"com.myapp.newtopic");
    let (m, n) = allocations(|| codec::decode(Serializer::MsgPack, &fresh));
    assert!(matches!(m.expect("decodes"), Message::Publish(_)));
    assert_eq!(n, 2);
}

#[test]
fn json_event_decode_allocations() {
    assert_eq!(count_decode(Serializer::Json, &json_event()), 1);
}

#[test]
fn json_publish_decode_allocations() {
    assert_eq!(count_decode(Serializer::Json, &json_publish()), 1);
}

#[test]
fn msgpack_event_encode_allocations() {
    let m = codec::decode(Serializer::MsgPack, &msgpack_event()).unwrap();
    // The first encode on a thread sizes that thread's scratch buffer.
    codec::encode(Serializer::MsgPack, &m);
    let (out, n) = allocations(|| codec::encode(Serializer::MsgPack, &m));
    assert_eq!(out, msgpack_event());
    // The output buffer only, at its exact size (no `Bytes` shared header).
    assert_eq!(n, 1);
    let mut buf = Vec::with_capacity(256);
    let ((), n) = allocations(|| codec::encode_into(Serializer::MsgPack, &m, &mut buf));
    assert_eq!(n, 0, "encode_into a buffer with room must not allocate");
}

#[test]
fn allocation_counter_counts() {
    // The counter itself works: a Vec with capacity is one allocation.
    let (v, n) = allocations(|| Vec::<u8>::with_capacity(10));
    drop(v);
    assert_eq!(n, 1);
}
