//! The `ribd` binary's command line: config validation before anything is started.

use std::process::Command;

fn ribd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ribd"))
}

fn tmp(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ribd-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("ribd.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_config_accepts_the_example_and_prints_it_normalized() {
    let out = ribd()
        .args([
            "check-config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ribd.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("valid (3 peers"), "{text}");
    assert!(
        text.contains("[neighbor.transit-a]"),
        "peer groups merged into neighbours:\n{text}"
    );
    assert!(!text.contains("s3cret-md5"), "passwords are never printed");
}

#[test]
fn check_config_reports_every_error_with_file_line_and_field() {
    let p = tmp(
        "bad",
        "router-id = \"192.0.2.1\"\nlocal-as = 65000\n[peer.a]\naddress = \"192.0.2.2\"\nremote-as = 1\nhold-time = 1\n",
    );
    let out = ribd()
        .args(["check-config", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:6: peer.a.hold-time: expected 0 or 3-65535 seconds",
            p.display()
        )),
        "{err}"
    );
    assert!(err.contains("1 error(s)"), "{err}");
}

#[test]
fn an_invalid_config_at_start_exits_before_touching_anything() {
    let p = tmp(
        "start",
        "router-id = \"192.0.2.1\"\nlocal-as = 65000\n[dataplane]\ninstance = \"ribd-cli-never\"\ninterfaces = [\"lo\"]\nbogus = 1\n",
    );
    let out = ribd()
        .args(["--config", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field `bogus`") && err.contains("nothing was started"),
        "{err}"
    );
    assert!(
        !std::path::Path::new("/sys/fs/bpf/ribd-cli-never").exists(),
        "no dataplane was created"
    );
}

#[test]
fn version_is_printed() {
    let out = ribd().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ribd "));
}
