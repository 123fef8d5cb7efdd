//! Generates the systest from ktq-sys's own source, in the spirit of ctest:
//! - a C file, compiled against the real header, that (a) assigns every
//!   declared function to a pointer of the type the Rust declaration spells
//!   out (a mismatch is a compile error under -Werror), and (b) tabulates
//!   sizeof/alignof/offsetof of every struct, offset and size of every field, the value of every
//!   constant;
//! - a Rust file tabulating the same quantities on the Rust side, which the
//!   test compares entry by entry;
//! - and it fails the build if the header declares a function that
//!   ktq-sys does not.
use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

fn c_type(rust: &str) -> String {
    let t = rust.trim().trim_end_matches(',');
    if let Some(rest) = t.strip_prefix("*const ") {
        return format!("const {}*", c_type(rest));
    }
    if let Some(rest) = t.strip_prefix("*mut ") {
        return format!("{}*", c_type(rest));
    }
    match t {
        "c_int" => "int".into(),
        "c_uint" => "unsigned".into(),
        "c_char" => "char".into(),
        "c_void" => "void".into(),
        "usize" => "size_t".into(),
        "u64" => "uint64_t".into(),
        "i64" => "int64_t".into(),
        "i32" => "int32_t".into(),
        "f32" => "float".into(),
        "f64" => "double".into(),
        other => other.into(), // ktq_* typedefs have the same name in C
    }
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let sys_src = manifest.join("../src/lib.rs");
    // The installed headers (from ktq-sys's pkg-config probe), else the source tree's.
    let include = env::var("DEP_KTQ_INCLUDE")
        .ok()
        .map(PathBuf::from)
        .filter(|p| p.join("ktq/ktq.h").exists())
        .unwrap_or_else(|| manifest.join("../../../../include"));
    if let Ok(dir) = env::var("DEP_KTQ_LIBDIR") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
    }
    println!("cargo:rerun-if-changed={}", sys_src.display());
    let src = fs::read_to_string(&sys_src).unwrap();

    let mut c = String::from("#include <stddef.h>\n#include <stdint.h>\n#include <ktq/ktq.h>\n");
    c.push_str("struct ktq_systest_entry { const char *name; long long value; };\n");
    let mut table = String::new();
    let mut rust = String::from("pub fn rust_entries() -> Vec<(&'static str, i64)> {\n    vec![\n");
    let mut rust_fns = BTreeSet::new();

    // Structs with public fields.
    let mut lines = src.lines().peekable();
    while let Some(line) = lines.next() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("pub struct ") {
            let name = rest.trim_end_matches(" {").trim();
            let mut fields = Vec::new();
            for f in lines.by_ref() {
                let f = f.trim();
                if f == "}" {
                    break;
                }
                if let Some(field) = f.strip_prefix("pub ") {
                    fields.push(field.split(':').next().unwrap().trim().to_string());
                }
            }
            if fields.is_empty() {
                continue; // opaque handle
            }
            writeln!(table, "  {{\"sizeof {name}\", (long long)sizeof({name})}},").unwrap();
            writeln!(table, "  {{\"alignof {name}\", (long long)_Alignof({name})}},").unwrap();
            writeln!(rust, "        (\"sizeof {name}\", core::mem::size_of::<ktq_sys::{name}>() as i64),").unwrap();
            writeln!(rust, "        (\"alignof {name}\", core::mem::align_of::<ktq_sys::{name}>() as i64),").unwrap();
            for f in fields {
                writeln!(table, "  {{\"offsetof {name}.{f}\", (long long)offsetof({name}, {f})}},").unwrap();
                writeln!(rust, "        (\"offsetof {name}.{f}\", core::mem::offset_of!(ktq_sys::{name}, {f}) as i64),").unwrap();
                // The field's own size: a pointer declared as an int moves no offset when it is last.
                writeln!(table, "  {{\"sizeof {name}.{f}\", (long long)sizeof((({name} *)0)->{f})}},").unwrap();
                writeln!(rust, "        (\"sizeof {name}.{f}\", field_size(|s: &ktq_sys::{name}| &s.{f}) as i64),").unwrap();
            }
        } else if let Some(rest) = l.strip_prefix("pub const ") {
            let name = rest.split(':').next().unwrap().trim();
            writeln!(table, "  {{\"const {name}\", (long long)({name})}},").unwrap();
            writeln!(rust, "        (\"const {name}\", ktq_sys::{name} as i64),").unwrap();
        }
    }

    // Functions: join each declaration onto one line, then map its types.
    let mut decl = String::new();
    for line in src.lines() {
        let l = line.trim();
        if l.starts_with("pub fn ") || !decl.is_empty() {
            decl.push_str(l);
            decl.push(' ');
            if l.ends_with(';') {
                let d = std::mem::take(&mut decl);
                let name = d["pub fn ".len()..d.find('(').unwrap()].to_string();
                let params = &d[d.find('(').unwrap() + 1..d.rfind(')').unwrap()];
                let ret = d.rsplit_once("->").map(|(_, r)| c_type(r.trim_end_matches(|c| c == ';' || c == ' ')))
                    .unwrap_or_else(|| "void".into());
                let mut c_params = Vec::new();
                for p in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    c_params.push(c_type(p.split_once(':').unwrap().1));
                }
                if c_params.is_empty() {
                    c_params.push("void".into());
                }
                writeln!(c, "typedef {ret} (*ktq_systest_fn_{name})({});", c_params.join(", ")).unwrap();
                writeln!(c, "ktq_systest_fn_{name} ktq_systest_ptr_{name} = {name};").unwrap();
                rust_fns.insert(name);
            }
        }
    }
    c.push_str("const struct ktq_systest_entry ktq_systest_entries[] = {\n");
    c.push_str(&table);
    c.push_str("  {0, 0}\n};\n");
    rust.push_str("    ]\n}\n");

    // Every function the header exports must be declared in ktq-sys.
    let mut missing = Vec::new();
    for entry in fs::read_dir(include.join("ktq")).unwrap() {
        let path = entry.unwrap().path();
        println!("cargo:rerun-if-changed={}", path.display());
        let text = fs::read_to_string(&path).unwrap();
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for part in flat.split("KTQ_API ").skip(1) {
            if let Some(paren) = part.find('(') {
                let head = &part[..paren];
                if let Some(name) = head.split(|c: char| c == ' ' || c == '*').filter(|s| !s.is_empty()).last() {
                    if name.starts_with("ktq_") && !rust_fns.contains(name) {
                        missing.push(name.to_string());
                    }
                }
            }
        }
    }
    if !missing.is_empty() {
        panic!("functions in include/ktq/*.h missing from ktq-sys: {missing:?}");
    }

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    fs::write(out.join("systest.c"), c).unwrap();
    fs::write(out.join("rust_entries.rs"), rust).unwrap();
    cc::Build::new()
        .file(out.join("systest.c"))
        .include(&include)
        .std("c11")
        .flag("-Werror=incompatible-pointer-types")
        .flag("-Werror=int-conversion")
        .flag("-Werror")
        .flag("-Wall")
        .compile("ktq_systest");
    println!("cargo:rustc-env=KTQ_SYSTEST_FUNCTIONS={}", rust_fns.len());
}
