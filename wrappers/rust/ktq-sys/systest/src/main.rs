//! Compares every struct size, alignment, field offset and size and constant of
//! ktq-sys with what the C compiler sees in include/ktq/*.h. Function
//! signatures were already checked when build.rs compiled the C side.
use std::ffi::{c_char, c_longlong, CStr};

#[repr(C)]
struct Entry {
    name: *const c_char,
    value: c_longlong,
}

extern "C" {
    static ktq_systest_entries: [Entry; 0];
}

/// Size of the field `f` selects, without making a value of `T`.
fn field_size<T, F>(_f: fn(&T) -> &F) -> usize {
    std::mem::size_of::<F>()
}

include!(concat!(env!("OUT_DIR"), "/rust_entries.rs"));

fn c_entries() -> Vec<(String, i64)> {
    let mut out = Vec::new();
    unsafe {
        let mut p = ktq_systest_entries.as_ptr();
        while !(*p).name.is_null() {
            out.push((CStr::from_ptr((*p).name).to_string_lossy().into_owned(), (*p).value));
            p = p.add(1);
        }
    }
    out
}

fn main() {
    let c = c_entries();
    let r = rust_entries();
    assert_eq!(c.len(), r.len(), "C and Rust tables differ in length");
    let mut failures = 0;
    for ((cn, cv), (rn, rv)) in c.iter().zip(r.iter()) {
        assert_eq!(cn, rn);
        if cv != rv {
            eprintln!("MISMATCH {cn}: C {cv}, Rust {rv}");
            failures += 1;
        }
    }
    // Touch the library so the link is real.
    let v = unsafe { ktq_sys::ktq_version_number() };
    assert_eq!(v, ktq_sys::KTQ_VERSION_NUMBER, "header and loaded library versions differ");
    if failures > 0 {
        panic!("{failures} layout/constant mismatches");
    }
    println!(
        "systest: {} layouts and constants match, {} function signatures checked by the C compiler",
        c.len(),
        env!("KTQ_SYSTEST_FUNCTIONS")
    );
}
