//! Runs one parsed command: validate input, call the API (page by page for tables), print.
//!
//! ```text
//!   Cli ──validate──► Client::get/post (ribd::api paths) ──► render::* (tables) | JSON (--json)
//!                                                       └──► exit code (0, 1 negative, errors by kind)
//! ```

use std::io::{self, IsTerminal, Write};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ribd::api::{
    ActionResult, CheckReport, DataplaneStats, FibPage, Lookup, Peer, RibPage, RouteDetail, Summary,
};
use serde::Serialize;

use crate::args::{Afi, Cli, ColorChoice, Command, Fib, GlobalOpts, RibArgs, Show};
use crate::client::{Client, Target, encode, with_query};
use crate::error::{EXIT_NEGATIVE, EXIT_OK, Error};
use crate::render;
use crate::table::Style;
use crate::validate;

/// Why a command stopped: an operator-facing error, or stdout went away.
#[derive(Debug)]
pub enum Failure {
    Error(Error),
    Output(io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

type Outcome = Result<i32, Failure>;

/// Colours: on only for `--color always`, or `auto` with stdout a terminal and NO_COLOR unset/empty.
pub fn style_for(choice: ColorChoice, stdout_is_tty: bool, no_color: Option<&str>) -> Style {
    let color = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout_is_tty && no_color.is_none_or(str::is_empty),
    };
    Style { color }
}

/// Builds the API target from the global options (--url/--token/--token-file, else --socket).
pub fn target(g: &GlobalOpts) -> Result<Target, Error> {
    match &g.url {
        Some(url) => {
            let token = match (&g.token, &g.token_file) {
                (Some(t), _) => Some(t.trim().to_string()),
                (None, Some(f)) => Some(read_token(f)?),
                (None, None) => None,
            };
            Target::from_url(url, token)
        }
        None => {
            if g.token_file.is_some() {
                return Err(Error::Usage(
                    "--token-file is for the TCP API: give --url http://HOST:PORT too (the Unix \
                     socket is guarded by its file mode, not a token)"
                        .to_string(),
                ));
            }
            Ok(Target::Unix(g.socket.clone()))
        }
    }
}

fn read_token(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let err = format!("cannot read the token file {}: {e}", path.display());
        if e.kind() == io::ErrorKind::PermissionDenied {
            Error::Permission {
                target: path.display().to_string(),
                detail: err,
            }
        } else {
            Error::Usage(err)
        }
    })?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(Error::Usage(format!(
            "the token file {} is empty",
            path.display()
        )));
    }
    Ok(token)
}

/// Runs the command; output goes to `out`. Returns the exit code for a completed command.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Outcome {
    let style = style_for(
        cli.global.color,
        io::stdout().is_terminal(),
        std::env::var("NO_COLOR").ok().as_deref(),
    );
    // Offline commands first: they never need the daemon.
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = crate::args::command();
            clap_complete::generate(*shell, &mut cmd, "ribctl", out);
            return Ok(EXIT_OK);
        }
        Command::Man => {
            clap_mangen::Man::new(crate::args::command()).render(out)?;
            return Ok(EXIT_OK);
        }
        _ => {}
    }
    let client = Client::new(
        target(&cli.global)?,
        Duration::from_secs(cli.global.timeout.max(1)),
    );
    let ctx = Ctx {
        client: &client,
        json: cli.global.json,
        style,
    };
    ctx.dispatch(&cli.command, out)
}

struct Ctx<'a> {
    client: &'a Client,
    json: bool,
    style: Style,
}

fn json_line<T: Serialize>(out: &mut dyn Write, v: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(io::Error::other)?;
    writeln!(out)
}

impl Ctx<'_> {
    fn dispatch(&self, cmd: &Command, out: &mut dyn Write) -> Outcome {
        match cmd {
            Command::Show(s) => self.show(s, out),
            Command::Lookup {
                address,
                src,
                proto,
                sport,
                dport,
            } => {
                let a = validate::address(address)?;
                let mut query = Vec::new();
                if let Some(s) = src {
                    let s = validate::address(s)?;
                    if s.is_ipv4() != a.is_ipv4() {
                        return Err(Error::Usage(format!(
                            "--src {s} and {a} are of different families"
                        ))
                        .into());
                    }
                    query.push(format!("src={}", encode(&s.to_string())));
                }
                for (k, v) in [
                    ("proto", proto.map(u32::from)),
                    ("sport", sport.map(u32::from)),
                    ("dport", dport.map(u32::from)),
                ] {
                    if let Some(v) = v {
                        query.push(format!("{k}={v}"));
                    }
                }
                let q = if query.is_empty() {
                    String::new()
                } else {
                    format!("?{}", query.join("&"))
                };
                let l: Lookup = self
                    .client
                    .get(&format!("/v1/lookup/{}{q}", encode(&a.to_string())))?;
                if self.json {
                    json_line(out, &l)?;
                } else {
                    render::lookup(out, &l, self.style)?;
                }
                Ok(EXIT_OK)
            }
            Command::Fib(Fib::Check) => {
                let c: CheckReport = self.client.get("/v1/fib/check")?;
                if self.json {
                    json_line(out, &c)?;
                } else {
                    render::check(out, &c, self.style)?;
                }
                Ok(if c.ok { EXIT_OK } else { EXIT_NEGATIVE })
            }
            Command::Peer { action, peer } => {
                let name = self.peer_name(peer)?;
                let r: ActionResult = self.client.post(&format!(
                    "/v1/peers/{}/{}",
                    encode(&name),
                    action.as_str()
                ))?;
                self.action(out, &format!("{} {name}", action.as_str()), &r)
            }
            Command::Reload => {
                let r: ActionResult = self.client.post("/v1/reload")?;
                self.action(out, "reload", &r)
            }
            Command::Completions { .. } | Command::Man => Ok(EXIT_OK),
        }
    }

    fn action(&self, out: &mut dyn Write, what: &str, r: &ActionResult) -> Outcome {
        if self.json {
            json_line(out, r)?;
        } else {
            render::action(out, what, r, self.style)?;
        }
        Ok(if r.ok { EXIT_OK } else { EXIT_NEGATIVE })
    }

    /// A neighbour given by name passes through; one given by address is looked up in `/v1/peers`.
    fn peer_name(&self, peer: &str) -> Result<String, Error> {
        let peer = validate::peer(peer)?;
        let Ok(addr) = peer.parse::<IpAddr>() else {
            return Ok(peer);
        };
        let peers: Vec<Peer> = self.client.get("/v1/peers")?;
        peers
            .iter()
            .find(|p| p.address == addr)
            .map(|p| p.name.clone())
            .ok_or_else(|| {
                let known: Vec<String> = peers
                    .iter()
                    .map(|p| format!("{} ({})", p.name, p.address))
                    .collect();
                Error::NotFound(format!(
                    "no neighbour with address {addr}; configured: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
            })
    }

    fn show(&self, s: &Show, out: &mut dyn Write) -> Outcome {
        match s {
            Show::Summary => {
                let sum: Summary = self.client.get("/v1/summary")?;
                if self.json {
                    json_line(out, &sum)?;
                } else {
                    let peers: Vec<Peer> = self.client.get("/v1/peers")?;
                    render::summary(out, &sum, &peers, self.style)?;
                }
            }
            Show::Neighbors { peer: None } => {
                let peers: Vec<Peer> = self.client.get("/v1/peers")?;
                if self.json {
                    json_line(out, &peers)?;
                } else {
                    render::neighbors(out, &peers, self.style)?;
                }
            }
            Show::Neighbors { peer: Some(p) } => {
                let name = self.peer_name(p)?;
                let peer: Peer = self.client.get(&format!("/v1/peers/{}", encode(&name)))?;
                if self.json {
                    json_line(out, &peer)?;
                } else {
                    render::neighbor_detail(out, &peer, self.style)?;
                }
            }
            Show::Rib(a) => return self.rib(a, out),
            Show::Route { prefix } => {
                let p = validate::prefix(prefix)?;
                let r: RouteDetail = self.client.get(&format!(
                    "/v1/route/{}",
                    encode(&ribd::api::prefix_to_path(&p.to_string()))
                ))?;
                if self.json {
                    json_line(out, &r)?;
                } else {
                    render::route_detail(out, &r, self.style)?;
                }
            }
            Show::Fib { prefix, page_size } => {
                let prefix = prefix
                    .as_deref()
                    .map(validate::prefix)
                    .transpose()?
                    .map(|p| p.to_string());
                return self.fib(prefix, *page_size, out);
            }
            Show::Stats { watch, count } => return self.stats(*watch, *count, out),
            Show::Acl => {
                let t: ribd::api::AclTable = self.client.get("/v1/acl")?;
                if self.json {
                    json_line(out, &t)?;
                } else {
                    render::acl(out, &t, self.style)?;
                }
            }
            Show::Flowspec => {
                let t: ribd::api::FlowSpecTable = self.client.get("/v1/flowspec")?;
                if self.json {
                    json_line(out, &t)?;
                } else {
                    render::flowspec(out, &t, self.style)?;
                    let peers: Vec<ribd::api::Peer> = self.client.get("/v1/peers")?;
                    render::flowspec_peers(out, &peers, self.style)?;
                }
            }
        }
        Ok(EXIT_OK)
    }

    fn rib(&self, a: &RibArgs, out: &mut dyn Write) -> Outcome {
        let prefix = a.prefix.as_deref().map(validate::prefix).transpose()?;
        let community = a
            .community
            .as_deref()
            .map(validate::community)
            .transpose()?;
        let as_path = a.as_path.as_deref().map(validate::as_path).transpose()?;
        let afis: Vec<Afi> = match (&prefix, a.afi) {
            (Some(p), Some(f)) if p.afi() != f => {
                return Err(Error::Usage(format!(
                    "{p} is an {} prefix but --afi {} was given",
                    p.afi().as_str(),
                    f.as_str()
                ))
                .into());
            }
            (Some(p), _) => vec![p.afi()],
            (None, Some(f)) => vec![f],
            (None, None) => vec![Afi::Ipv4, Afi::Ipv6],
        };
        let peer = match a.peer.as_deref() {
            Some(p) => {
                // ribd filters by name and answers an unknown one with an empty table: ask first,
                // so a typo is "unknown peer" (exit 1) instead of "no routes".
                let name = self.peer_name(p)?;
                let _: Peer = self.client.get(&format!("/v1/peers/{}", encode(&name)))?;
                Some(name)
            }
            None => None,
        };
        let match_ = prefix.as_ref().map(|_| {
            if a.longer {
                "longer"
            } else if a.shorter {
                "shorter"
            } else {
                "exact"
            }
        });
        let mut shown = 0u64;
        for (i, afi) in afis.iter().enumerate() {
            let mut table = render::RibTable::new(self.style);
            let mut json = JsonPages::new("routes");
            let mut after: Option<String> = None;
            if i > 0 && !self.json {
                writeln!(out)?;
            }
            if i == 0 && !self.json {
                writeln!(out, "{}", render::RIB_LEGEND)?;
            }
            loop {
                let path = with_query(
                    &format!("/v1/rib/{}", afi.as_str()),
                    &[
                        ("prefix", prefix.as_ref().map(ToString::to_string)),
                        ("match", match_.map(str::to_string)),
                        ("peer", peer.clone()),
                        ("community", community.clone()),
                        ("as-path", as_path.clone()),
                        ("best", a.best.then(|| "true".to_string())),
                        ("limit", Some(a.page_size.to_string())),
                        ("after", after.clone()),
                    ],
                );
                let page: RibPage = self.client.get(&path)?;
                shown += page.routes.len() as u64;
                if self.json {
                    json.page(
                        out,
                        &[
                            ("afi", serde_json::to_string(&page.afi)),
                            ("total", serde_json::to_string(&page.total)),
                            ("matched", serde_json::to_string(&page.matched)),
                        ],
                        &page.routes,
                    )?;
                } else {
                    table.page(out, &page)?;
                }
                match next_cursor(&after, &page.next, page.routes.is_empty())? {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            if self.json {
                json.finish(out)?;
            } else {
                table.finish(out)?;
            }
        }
        // An exact prefix that matched nothing is a negative answer, like `show route` of an unknown one.
        if shown == 0 && prefix.is_some() && match_ == Some("exact") {
            if !self.json {
                writeln!(
                    out,
                    "no route for {}",
                    prefix.map(|p| p.to_string()).unwrap_or_default()
                )?;
            }
            return Ok(EXIT_NEGATIVE);
        }
        Ok(EXIT_OK)
    }

    fn fib(&self, prefix: Option<String>, page_size: u32, out: &mut dyn Write) -> Outcome {
        let mut table = render::FibTable::new(self.style);
        let mut json = JsonPages::new("routes");
        let mut after: Option<String> = None;
        let mut shown = 0u64;
        loop {
            let path = with_query(
                "/v1/fib",
                &[
                    ("prefix", prefix.clone()),
                    ("limit", Some(page_size.to_string())),
                    ("after", after.clone()),
                ],
            );
            let page: FibPage = self.client.get(&path)?;
            shown += page.routes.len() as u64;
            if self.json {
                json.page(
                    out,
                    &[("total", serde_json::to_string(&page.total))],
                    &page.routes,
                )?;
            } else {
                table.page(out, &page)?;
            }
            match next_cursor(&after, &page.next, page.routes.is_empty())? {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        if self.json {
            json.finish(out)?;
        } else {
            table.finish(out)?;
        }
        if shown == 0 && prefix.is_some() {
            if !self.json {
                writeln!(out, "no FIB route for {}", prefix.unwrap_or_default())?;
            }
            return Ok(EXIT_NEGATIVE);
        }
        Ok(EXIT_OK)
    }

    fn stats(&self, watch: Option<f64>, count: Option<u64>, out: &mut dyn Write) -> Outcome {
        let Some(every) = watch else {
            let s: DataplaneStats = self.client.get("/v1/dataplane/stats")?;
            if self.json {
                json_line(out, &s)?;
            } else {
                render::stats(out, &s, None, self.style)?;
            }
            return Ok(EXIT_OK);
        };
        if !every.is_finite() || every < 0.1 {
            return Err(Error::Usage(format!(
                "--watch {every}: the interval must be at least 0.1 s"
            ))
            .into());
        }
        let clear = self.style.color && !self.json;
        let mut prev: Option<(DataplaneStats, Instant)> = None;
        let mut n = 0u64;
        loop {
            let s: DataplaneStats = self.client.get("/v1/dataplane/stats")?;
            let at = Instant::now();
            n += 1;
            if self.json {
                json_line(out, &s)?;
            } else {
                if clear {
                    write!(out, "\x1b[H\x1b[2J")?;
                } else if n > 1 {
                    writeln!(out)?;
                }
                let p = prev.as_ref().map(|(p, t)| render::Previous {
                    stats: p,
                    secs: at.duration_since(*t).as_secs_f64(),
                });
                match &p {
                    Some(p) => writeln!(out, "sample {n}, rates over the last {:.1} s", p.secs)?,
                    None => writeln!(out, "sample {n} (rates from the next sample on)")?,
                }
                render::stats(out, &s, p, self.style)?;
            }
            out.flush()?;
            if count.is_some_and(|c| n >= c) {
                return Ok(EXIT_OK);
            }
            prev = Some((s, at));
            std::thread::sleep(Duration::from_secs_f64(every));
        }
    }
}

/// The next `after=` cursor, or `None` at the end; a cursor that does not move is an API error (it
/// would loop forever).
fn next_cursor(
    after: &Option<String>,
    next: &Option<String>,
    empty: bool,
) -> Result<Option<String>, Error> {
    match next {
        None => Ok(None),
        Some(_) if empty => Ok(None),
        Some(n) if after.as_ref() == Some(n) => Err(Error::Api(format!(
            "pagination does not advance (next={n} again)"
        ))),
        Some(n) => Ok(Some(n.clone())),
    }
}

/// Writes a paged answer as one JSON document of the page type, with the list field streamed across
/// pages and `next` null: `{"afi":..,"total":..,"matched":..,"routes":[...],"next":null}`.
pub struct JsonPages {
    list: &'static str,
    open: bool,
    first: bool,
}

impl JsonPages {
    pub fn new(list: &'static str) -> JsonPages {
        JsonPages {
            list,
            open: false,
            first: true,
        }
    }

    pub fn page<T: Serialize>(
        &mut self,
        out: &mut dyn Write,
        head: &[(&str, serde_json::Result<String>)],
        items: &[T],
    ) -> io::Result<()> {
        if !self.open {
            self.open = true;
            write!(out, "{{")?;
            for (k, v) in head {
                let v = v.as_ref().map_err(|e| io::Error::other(e.to_string()))?;
                write!(out, "\"{k}\":{v},")?;
            }
            write!(out, "\"{}\":[", self.list)?;
        }
        for it in items {
            if !self.first {
                write!(out, ",")?;
            }
            self.first = false;
            serde_json::to_writer(&mut *out, it).map_err(io::Error::other)?;
        }
        Ok(())
    }

    pub fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.open {
            writeln!(out, "],\"next\":null}}")?;
        }
        Ok(())
    }
}
