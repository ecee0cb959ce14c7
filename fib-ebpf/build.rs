//! Compiles every `bpf/*.bpf.c` into a BPF object in `OUT_DIR` with clang, so the crate can embed it.
//!
//! The compiler is `clang-19` (Debian package `clang-19`) unless `CLANG` names another; the headers come
//! from `libbpf-dev`. When either is missing the build stops with a message naming the package to install:
//! there is never a stub object that would only fail at run time.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALL_HINT: &str = "install them with: apt-get install -y clang-19 llvm-19 libbpf-dev \
     (or run `testbed/run setup`, which installs everything the project needs)";

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bpf_dir = manifest.join("bpf");
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-changed={}", bpf_dir.display());

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang-19".to_string());
    check_clang(&clang);
    let multiarch = multiarch_include();
    check_headers(&multiarch);

    let mut sources = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&bpf_dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", bpf_dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if let Some(stem) = name.strip_suffix(".bpf.c") {
            sources.push((stem.to_string(), path.clone()));
        }
    }
    if sources.is_empty() {
        panic!("no *.bpf.c sources in {}", bpf_dir.display());
    }

    for (stem, src) in &sources {
        let obj = out.join(format!("{stem}.bpf.o"));
        let mut cmd = Command::new(&clang);
        cmd.args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg("-D__TARGET_ARCH_x86")
            .arg(format!("-I{}", bpf_dir.display()))
            .arg(format!("-I{}", multiarch.display()))
            .arg("-c")
            .arg(src)
            .arg("-o")
            .arg(&obj);
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("failed to run {clang}: {e}; {INSTALL_HINT}"));
        if !status.success() {
            panic!("{clang} failed to compile {} ({status})", src.display());
        }
    }

    // A small C program that prints sizeof/offsetof of every shared struct as the C compiler sees them.
    // The Rust mirrors are checked against its output in a unit test, so the ABI cannot drift silently.
    let layout_src = bpf_dir.join("layout.c.in");
    if layout_src.exists() {
        let layout_bin = out.join("abi-layout");
        let status = Command::new(&clang)
            .arg("-x")
            .arg("c")
            .arg(format!("-I{}", bpf_dir.display()))
            .arg(format!("-I{}", multiarch.display()))
            .arg(&layout_src)
            .arg("-o")
            .arg(&layout_bin)
            .status()
            .unwrap_or_else(|e| panic!("failed to run {clang}: {e}; {INSTALL_HINT}"));
        if !status.success() {
            panic!("{clang} failed to compile {}", layout_src.display());
        }
        let output = Command::new(&layout_bin)
            .output()
            .unwrap_or_else(|e| panic!("failed to run {}: {e}", layout_bin.display()));
        std::fs::write(out.join("abi-layout.txt"), output.stdout).expect("write abi-layout.txt");
    }
}

fn check_clang(clang: &str) {
    match Command::new(clang).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "\n\nfib-ebpf: the BPF compiler `{clang}` was not found.\n\
             The XDP forwarder is C compiled with clang for the BPF target; {INSTALL_HINT}.\n\
             Set CLANG=/path/to/clang to use another clang (version 16 or newer).\n\n"
        ),
    }
}

fn multiarch_include() -> PathBuf {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let triple = match arch.as_str() {
        "aarch64" => "aarch64-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    PathBuf::from("/usr/include").join(triple)
}

fn check_headers(multiarch: &Path) {
    let helpers = Path::new("/usr/include/bpf/bpf_helpers.h");
    if !helpers.exists() {
        panic!(
            "\n\nfib-ebpf: {} is missing: the BPF helper headers come from libbpf; {INSTALL_HINT}.\n\n",
            helpers.display()
        );
    }
    let asm_types = multiarch.join("asm/types.h");
    if !asm_types.exists() {
        panic!(
            "\n\nfib-ebpf: {} is missing (kernel UAPI headers); install linux-libc-dev and libc6-dev; {INSTALL_HINT}.\n\n",
            asm_types.display()
        );
    }
}
