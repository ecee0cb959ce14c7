//! Human tables against golden files, rendered from fixture JSON that is built from the `ribd::api`
//! types (tests/fixtures/*.json; `UPDATE_GOLDEN=1` rewrites fixtures and goldens). The JSON documents
//! ribctl streams for paged answers parse back into the API types.

mod common;

use common::*;
use ribctl::commands::{JsonPages, style_for};
use ribctl::render;
use ribctl::table::Style;
use ribd::api::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Writes `tests/fixtures/NAME.json` from the builder (when updating), checks the stored file is
/// exactly the builder's value, and returns it as parsed from the file.
fn fixture<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, v: T) -> T {
    let path = dir("fixtures").join(format!("{name}.json"));
    if updating() {
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed: T = serde_json::from_str(&text).unwrap();
    assert_eq!(
        parsed,
        v,
        "{} is out of date (UPDATE_GOLDEN=1)",
        path.display()
    );
    parsed
}

fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    f(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

const PLAIN: Style = Style::PLAIN;

#[test]
fn summary_table_golden() {
    let s = fixture("summary", summary());
    let p = fixture("peers", peers());
    let out = render(|o| render::summary(o, &s, &p, PLAIN));
    golden("summary.txt", &normalise(&out));
    // The uptime is there before normalisation, in vtysh's form.
    assert!(out.contains("up 1d02h03m"), "{out}");
}

#[test]
fn summary_shows_dataplane_error() {
    let mut s = summary();
    s.dataplane.enabled = false;
    s.dataplane.interfaces.clear();
    s.dataplane.error = Some("bpffs is not mounted at /sys/fs/bpf".to_string());
    let out = render(|o| render::summary(o, &s, &[], PLAIN));
    golden("summary-dataplane-error.txt", &normalise(&out));
}

#[test]
fn neighbors_table_golden() {
    let p = fixture("peers", peers());
    let out = render(|o| render::neighbors(o, &p, PLAIN));
    golden("neighbors.txt", &normalise(&out));
}

#[test]
fn neighbor_detail_golden() {
    let p = fixture("peers", peers());
    let mut all = String::new();
    for peer in &p {
        all.push_str(&render(|o| render::neighbor_detail(o, peer, PLAIN)));
        all.push('\n');
    }
    golden("neighbor-detail.txt", &normalise(&all));
}

#[test]
fn rib_table_streams_pages_golden() {
    let pages = fixture("rib-pages", rib_pages());
    let out = render(|o| {
        let mut t = render::RibTable::new(PLAIN);
        for p in &pages {
            t.page(o, p)?;
        }
        t.finish(o)
    });
    golden("rib.txt", &out);
    // The header is printed once, whatever the number of pages.
    assert_eq!(out.matches("PREFIX").count(), 1, "{out}");
}

#[test]
fn rib_table_empty_answer() {
    let page = RibPage {
        afi: "ipv6".to_string(),
        total: 3,
        matched: 0,
        routes: vec![],
        next: None,
    };
    let out = render(|o| {
        let mut t = render::RibTable::new(PLAIN);
        t.page(o, &page)?;
        t.finish(o)
    });
    assert_eq!(out, "Table ipv6: 3 prefixes, 0 matching\n");
}

#[test]
fn route_detail_golden() {
    let r = fixture("route", route_detail());
    let out = render(|o| render::route_detail(o, &r, PLAIN));
    golden("route.txt", &out);
}

#[test]
fn route_detail_not_in_fib() {
    let mut r = route_detail();
    r.fib = None;
    r.candidates.truncate(1);
    let out = render(|o| render::route_detail(o, &r, PLAIN));
    assert!(out.starts_with("1.0.0.0/24: 1 candidate path\n"), "{out}");
    assert!(out.ends_with("\nFIB: not installed\n"), "{out}");
}

#[test]
fn fib_table_streams_pages_golden() {
    let pages = fixture("fib-pages", fib_pages());
    let out = render(|o| {
        let mut t = render::FibTable::new(PLAIN);
        for p in &pages {
            t.page(o, p)?;
        }
        t.finish(o)
    });
    golden("fib.txt", &out);
    // The IPv6 route on page 2 needs wider columns: the header is repeated with the new widths.
    assert_eq!(out.matches("PREFIX").count(), 2, "{out}");
}

#[test]
fn lookup_golden() {
    let l = fixture("lookup", lookup());
    let n = fixture("lookup-none", lookup_none());
    let out = render(|o| {
        render::lookup(o, &l, PLAIN)?;
        render::lookup(o, &n, PLAIN)
    });
    golden("lookup.txt", &out);
}

#[test]
fn stats_golden_with_rates() {
    let a = fixture("stats-1", stats(1));
    let b = fixture("stats-2", stats(3));
    let out = render(|o| {
        render::stats(o, &a, None, PLAIN)?;
        writeln!(o)?;
        render::stats(
            o,
            &b,
            Some(render::Previous {
                stats: &a,
                secs: 2.0,
            }),
            PLAIN,
        )
    });
    golden("stats.txt", &out);
    // forwarded: 2,000,000 packets more in 2 s = 1.00M/s; 3 GB more = 12 Gbit/s.
    let line = out.lines().rfind(|l| l.starts_with("forwarded")).unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cells,
        ["forwarded", "3000000", "4500000000", "1.00M", "12.0G"]
    );
}

#[test]
fn stats_without_dataplane() {
    let empty = DataplaneStats {
        reasons: vec![],
        nexthops: vec![],
    };
    let out = render(|o| render::stats(o, &empty, None, PLAIN));
    assert_eq!(
        out,
        "no dataplane counters (the dataplane is not programmed)\n"
    );
}

#[test]
fn stats_rates_never_negative_after_counter_reset() {
    let before = stats(3);
    let after = stats(1);
    let out = render(|o| {
        render::stats(
            o,
            &after,
            Some(render::Previous {
                stats: &before,
                secs: 1.0,
            }),
            PLAIN,
        )
    });
    let line = out.lines().find(|l| l.starts_with("forwarded")).unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[3..], ["0", "0"], "{line:?}");
}

#[test]
fn check_and_action_golden() {
    let ok = fixture("check-ok", check_ok());
    let bad = fixture("check-fail", check_fail());
    let out = render(|o| {
        render::check(o, &ok, PLAIN)?;
        render::check(o, &bad, PLAIN)?;
        render::check(
            o,
            &CheckReport {
                ok: true,
                checked: 0,
                differences: vec!["dataplane not programmed: nothing to compare".to_string()],
            },
            PLAIN,
        )?;
        render::action(
            o,
            "disable transit1",
            &ActionResult {
                ok: true,
                message: "session shut down (Cease/Administrative Shutdown)".to_string(),
            },
            PLAIN,
        )?;
        render::action(
            o,
            "refresh rr1",
            &ActionResult {
                ok: false,
                message: "neighbour did not negotiate route refresh".to_string(),
            },
            PLAIN,
        )
    });
    golden("check-action.txt", &out);
}

#[test]
fn durations_and_rates_read_like_vtysh() {
    assert_eq!(render::duration(0), "00:00:00");
    assert_eq!(render::duration(3723), "01:02:03");
    assert_eq!(render::duration(86_399), "23:59:59");
    assert_eq!(render::duration(93_784), "1d02h03m");
    assert_eq!(render::duration(1_300_000), "2w1d01h");
    assert_eq!(render::rate(0.0), "0");
    assert_eq!(render::rate(-3.0), "0");
    assert_eq!(render::rate(f64::NAN), "0");
    assert_eq!(render::rate(950.4), "950");
    assert_eq!(render::rate(1234.0), "1.23k");
    assert_eq!(render::rate(45_600_000.0), "45.6M");
    assert_eq!(render::rate(789e9), "789G");
}

#[test]
fn colours_do_not_move_columns() {
    let p = peers();
    let colour = Style { color: true };
    let plain = render(|o| render::neighbors(o, &p, PLAIN));
    let painted = render(|o| render::neighbors(o, &p, colour));
    assert!(painted.contains("\x1b[32mEstablished\x1b[0m"), "{painted}");
    assert_eq!(strip_ansi(&painted), plain);
    let pages = rib_pages();
    let painted = render(|o| {
        let mut t = render::RibTable::new(colour);
        t.page(o, &pages[0])
    });
    let plain = render(|o| {
        let mut t = render::RibTable::new(PLAIN);
        t.page(o, &pages[0])
    });
    assert_eq!(strip_ansi(&painted), plain);
}

#[test]
fn colour_only_on_a_tty_and_never_with_no_color() {
    use ribctl::args::ColorChoice::*;
    assert!(style_for(Auto, true, None).color);
    assert!(
        style_for(Auto, true, Some("")).color,
        "empty NO_COLOR is unset"
    );
    assert!(!style_for(Auto, true, Some("1")).color);
    assert!(!style_for(Auto, false, None).color);
    assert!(!style_for(Never, true, None).color);
    assert!(style_for(Always, false, Some("1")).color);
}

/// Paged answers are printed as one document of the page type; it parses back into `RibPage` /
/// `FibPage` with every route of every page, in order, and `next` null.
#[test]
fn streamed_json_parses_back_into_api_types() {
    let pages = rib_pages();
    let mut out = Vec::new();
    let mut j = JsonPages::new("routes");
    for p in &pages {
        j.page(
            &mut out,
            &[
                ("afi", serde_json::to_string(&p.afi)),
                ("total", serde_json::to_string(&p.total)),
                ("matched", serde_json::to_string(&p.matched)),
            ],
            &p.routes,
        )
        .unwrap();
    }
    j.finish(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 1, "one line per document");
    let back: RibPage = serde_json::from_str(&text).unwrap();
    assert_eq!(back.afi, "ipv4");
    assert_eq!(back.total, 513_042);
    assert_eq!(back.next, None);
    let all: Vec<RibRoute> = pages.iter().flat_map(|p| p.routes.clone()).collect();
    assert_eq!(back.routes, all);

    let pages = fib_pages();
    let mut out = Vec::new();
    let mut j = JsonPages::new("routes");
    for p in &pages {
        j.page(
            &mut out,
            &[("total", serde_json::to_string(&p.total))],
            &p.routes,
        )
        .unwrap();
    }
    j.finish(&mut out).unwrap();
    let back: FibPage = serde_json::from_slice(&out).unwrap();
    let all: Vec<FibRoute> = pages.iter().flat_map(|p| p.routes.clone()).collect();
    assert_eq!(back.routes, all);
    assert_eq!(back.total, 4);
}

use std::io::Write as _;

#[test]
fn flowspec_peers_golden() {
    let p = fixture("peers", peers());
    let out = render(|o| render::flowspec_peers(o, &p, PLAIN));
    golden("flowspec-peers.txt", &out);
    // Only peers with a FlowSpec family are listed; the RFC 7606 error is spelled out.
    assert!(
        !out.contains("ix-v6") && out.contains("invalid network field"),
        "{out}"
    );
    // No FlowSpec peer: nothing at all.
    assert!(render(|o| render::flowspec_peers(o, &p[1..], PLAIN)).is_empty());
}
