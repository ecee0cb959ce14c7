//! Errors an operator meets before ribd answers anything: bad arguments (exit 2, checked before any
//! connection), the daemon not running (exit 3, naming the socket), and permission denied on the
//! socket (exit 4, naming its mode and group), run through the real `ribctl` binary.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::process::{Command, Output};

use common::*;

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

/// Runs with a socket that does not exist, so a check that wrongly reached the network shows as 3.
fn offline(args: &[&str]) -> Output {
    let mut all = vec!["--socket", "/nonexistent/ribctl-test.sock"];
    all.extend_from_slice(args);
    ribctl(&all)
}

#[track_caller]
fn usage_error(args: &[&str], needle: &str) {
    let o = offline(args);
    let err = text(&o.stderr);
    assert_eq!(code(&o), 2, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(o.stdout.is_empty(), "{args:?}");
}

#[test]
fn malformed_prefixes_are_refused_before_calling_ribd() {
    usage_error(
        &["show", "route", "10.0.0.1/8"],
        "host bits are set; the prefix is 10.0.0.0/8",
    );
    usage_error(
        &["show", "route", "10.0.0.0/33"],
        "the length must be a number 0-32",
    );
    usage_error(&["show", "route", "2001:db8::/129"], "0-128");
    usage_error(
        &["show", "route", "10.0.0.300/24"],
        "is not an IPv4 or IPv6 address",
    );
    usage_error(&["show", "route", "192.0.2.1"], "ribctl lookup 192.0.2.1");
    usage_error(&["show", "route", "banana"], "expected ADDRESS/LENGTH");
    usage_error(&["show", "rib", "10.1.0.0/8", "--longer"], "host bits");
    usage_error(
        &["show", "fib", "2001:db8::1/32"],
        "the prefix is 2001:db8::/32",
    );
    usage_error(
        &["show", "rib", "10.0.0.0/8", "--afi", "ipv6"],
        "is an ipv4 prefix but --afi ipv6",
    );
}

#[test]
fn malformed_addresses_communities_and_regexes_are_refused() {
    usage_error(&["lookup", "10.0.0.0/8"], "lookup takes an address");
    usage_error(&["lookup", "1.2.3"], "malformed address");
    usage_error(
        &["show", "rib", "--community", "65536:1"],
        "not a number 0-65535",
    );
    usage_error(
        &["show", "rib", "--community", "no-such-name"],
        "malformed community",
    );
    usage_error(&["show", "rib", "--community", "1:2:3:4"], "not ASN:VALUE");
    usage_error(
        &["show", "rib", "--community", "64501:1:2"],
        "cannot be filtered on yet",
    );
    usage_error(
        &["show", "rib", "--as-path", "^(64501_"],
        "malformed AS-path regex",
    );
    usage_error(&["peer", "reset", "a/b"], "malformed neighbour");
}

#[test]
fn clap_usage_errors_exit_2() {
    for args in [
        &["show", "rib", "--longer"][..],
        &["show", "rib", "10.0.0.0/8", "--longer", "--shorter"],
        &["show", "rib", "--afi", "ipx"],
        &["peer", "bounce", "x"],
        &["show", "stats", "--count", "3"],
        &["show", "fib", "--page-size", "0"],
        &["completions", "tcsh"],
        &["--token", "a", "--token-file", "b", "show", "summary"],
        &["frobnicate"],
    ] {
        let o = offline(args);
        assert_eq!(code(&o), 2, "{args:?}: {}", text(&o.stderr));
        assert!(text(&o.stderr).starts_with("error:"), "{args:?}");
    }
    usage_error(
        &["--url", "https://h:1", "show", "summary"],
        "https is not supported",
    );
    usage_error(
        &["--token-file", "/etc/hostname", "show", "summary"],
        "give --url",
    );
    usage_error(&["show", "stats", "--watch", "0.01"], "at least 0.1 s");
}

#[test]
fn help_lists_exit_codes() {
    let o = ribctl(&["--help"]);
    assert_eq!(code(&o), 0);
    let help = text(&o.stdout);
    for needle in [
        "Exit codes:",
        "1  negative answer",
        "2  usage",
        "3  ribd unreachable",
        "4  permission denied",
        "5  API error",
        "RIBCTL_SOCKET",
    ] {
        assert!(
            help.contains(needle),
            "{needle:?} missing from --help:\n{help}"
        );
    }
    assert!(help.contains(ribd::api::DEFAULT_SOCKET));
}

#[test]
fn completions_and_man_page_are_generated() {
    for (shell, needle) in [
        ("bash", "complete -F _ribctl"),
        ("zsh", "#compdef ribctl"),
        ("fish", "complete -c ribctl"),
    ] {
        let o = offline(&["completions", shell]);
        assert_eq!(code(&o), 0);
        let s = text(&o.stdout);
        assert!(s.contains(needle), "{shell}: {s}");
        assert!(s.contains("neighbors") && s.contains("json"), "{shell}");
    }
    let o = offline(&["man"]);
    assert_eq!(code(&o), 0);
    let man = text(&o.stdout);
    assert!(
        man.starts_with(".ie") || man.contains(".TH ribctl"),
        "{man}"
    );
    assert!(man.contains("Exit codes"));
}

#[test]
fn daemon_not_running_names_the_socket_and_how_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ribd.sock");
    let s = sock.to_str().unwrap();
    let o = ribctl(&["--socket", s, "show", "summary"]);
    assert_eq!(code(&o), 3);
    let err = text(&o.stderr);
    assert!(err.contains(s), "{err}");
    assert!(err.contains("ribd is not running"), "{err}");
    assert!(err.contains("ribd --config"), "{err}");

    // The environment variable is honoured, and named in the advice.
    let o = Command::new(ribctl_bin())
        .args(["show", "neighbors"])
        .env("RIBCTL_SOCKET", s)
        .output()
        .unwrap();
    assert_eq!(code(&o), 3);
    assert!(text(&o.stderr).contains(s));
    assert!(text(&o.stderr).contains("RIBCTL_SOCKET"));

    // A socket left behind by a daemon that exited: the file exists, nobody listens.
    drop(UnixListener::bind(&sock).unwrap());
    let o = ribctl(&["--socket", s, "fib", "check"]);
    assert_eq!(code(&o), 3);
    assert!(
        text(&o.stderr).contains("nobody is listening"),
        "{}",
        text(&o.stderr)
    );

    // Not a socket at all.
    let file = dir.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    let o = ribctl(&["--socket", file.to_str().unwrap(), "reload"]);
    assert_eq!(code(&o), 3);
    assert!(
        text(&o.stderr).contains("is not a socket"),
        "{}",
        text(&o.stderr)
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn permission_denied_names_mode_owner_and_group() {
    if !is_root() {
        eprintln!(
            "skipped: needs root to run ribctl as `nobody` against a root-owned socket \
             (as a normal user the test cannot create a socket it may not open)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = ribctl_copy(dir.path());
    let sock = dir.path().join("ribd.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();

    let s = sock.to_str().unwrap();
    let o = as_nobody(&bin, &["--socket", s, "show", "summary"]);
    let err = text(&o.stderr);
    assert_eq!(code(&o), 4, "{err}");
    assert!(err.contains(&format!("permission denied on {s}")), "{err}");
    assert!(err.contains("mode 0600, owner root, group root"), "{err}");
    assert!(err.contains("member of group root"), "{err}");

    // Mode 0000 keeps out everyone but root.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o000)).unwrap();
    let o = as_nobody(&bin, &["--socket", s, "fib", "check"]);
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("mode 0000"), "{}", text(&o.stderr));

    // A directory the user cannot search hides the socket: say so.
    let inner = dir.path().join("private");
    std::fs::create_dir(&inner).unwrap();
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).unwrap();
    let hidden = inner.join("ribd.sock");
    let _l2 = UnixListener::bind(&hidden).unwrap();
    let o = as_nobody(&bin, &["--socket", hidden.to_str().unwrap(), "reload"]);
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(&format!("directory {}", inner.display())),
        "{}",
        text(&o.stderr)
    );
}
