// Lets this crate's own tests and examples find a libktq installed outside
// the system library path (the prefix pkg-config found for ktq-sys).
fn main() {
    if let Ok(dir) = std::env::var("DEP_KTQ_LIBDIR") {
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{dir}");
        println!("cargo:rustc-link-arg-examples=-Wl,-rpath,{dir}");
    }
}
