//! Puts torch's `lib` directory on the binary's rpath, so `spore-eval` runs without
//! `LD_LIBRARY_PATH`, and records the version of the torch it links against (from the pip
//! package's `version.py` beside `lib`). torch-sys publishes the directory (`links = "tch"`).
fn main() {
    println!("cargo::rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let mut version = String::from("unknown");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo::rustc-link-arg=-Wl,-rpath,{lib}");
        let version_py = std::path::Path::new(&lib).join("..").join("version.py");
        if let Ok(text) = std::fs::read_to_string(&version_py) {
            println!("cargo::rerun-if-changed={}", version_py.display());
            if let Some(v) = text.lines().find_map(|l| l.strip_prefix("__version__ = ")) {
                version = v.trim().trim_matches(['\'', '"']).to_string();
            }
        }
    }
    println!("cargo::rustc-env=SPORE_TORCH_VERSION={version}");
}
