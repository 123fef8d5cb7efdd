// Lets the tests find a libktq installed outside the system library path
// (the prefix pkg-config found for ktq-sys), as the ktq crate's build script
// does for its own tests.
fn main() {
    if let Ok(dir) = std::env::var("DEP_KTQ_LIBDIR") {
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{dir}");
    }
}
