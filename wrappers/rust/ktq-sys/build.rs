// Finds the installed libktq with pkg-config (`ktq.pc`), as git2-rs and
// zstd-sys find their libraries. Set PKG_CONFIG_PATH to a non-standard
// install prefix's lib/pkgconfig.
fn main() {
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let lib = pkg_config::Config::new()
        .atleast_version("0.1")
        .probe("ktq")
        .unwrap_or_else(|e| panic!("libktq not found with pkg-config ({e}); install it and set PKG_CONFIG_PATH"));
    // Published to dependents' build scripts as DEP_KTQ_LIBDIR / DEP_KTQ_INCLUDE.
    if let Some(dir) = lib.link_paths.first() {
        println!("cargo:libdir={}", dir.display());
    }
    if let Some(dir) = lib.include_paths.first() {
        println!("cargo:include={}", dir.display());
    }
}
