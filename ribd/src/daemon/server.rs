//! The control API over HTTP: a Unix socket (mode 0660) and optionally TCP with a bearer token.
//! Handlers only parse and validate; every answer comes from the core task through a channel.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};

use super::core::{Core, IpFamily, PeerAction, Request, RequestKind, Response, rib_path};
use crate::api::{self, ErrorBody, RibQuery};
use crate::config::ApiConfig;

#[derive(Clone)]
struct AppState {
    core: mpsc::Sender<Request>,
    /// Required bearer token (TCP endpoint only).
    token: Option<String>,
}

/// Running API servers; dropping this stops them.
pub struct Servers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    socket: std::path::PathBuf,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/summary", get(summary))
        .route("/v1/counters", get(counters))
        .route("/v1/peers", get(peers))
        .route("/v1/peers/{name}", get(peer))
        .route("/v1/peers/{name}/{action}", post(peer_action))
        .route("/v1/rib/{afi}", get(rib))
        .route("/v1/route/{prefix}", get(route))
        .route("/v1/fib", get(fib))
        .route("/v1/lookup/{addr}", get(lookup))
        .route("/v1/dataplane/stats", get(stats))
        .route("/v1/fib/check", get(check))
        .route("/v1/flowspec", get(flowspec))
        .route("/v1/acl", get(acl))
        .route("/v1/reload", post(reload))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            error(
                404,
                "no such endpoint; see the API table in ribd::api".into(),
            )
        })
        .with_state(state)
}

/// Binds the Unix socket (and TCP when configured) and serves until dropped.
pub async fn start(cfg: &ApiConfig, core: mpsc::Sender<Request>) -> Result<Servers> {
    let mut tasks = Vec::new();
    if let Some(dir) = cfg.socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    remove_stale_socket(&cfg.socket)?;
    let unix = tokio::net::UnixListener::bind(&cfg.socket)
        .with_context(|| format!("binding the API socket {}", cfg.socket.display()))?;
    std::fs::set_permissions(&cfg.socket, std::fs::Permissions::from_mode(0o660))?;
    let app = router(AppState {
        core: core.clone(),
        token: None,
    });
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(unix, app).await {
            tracing::error!(error = %e, "API server (Unix socket) stopped");
        }
    }));
    if let Some(addr) = cfg.tcp {
        let token = match &cfg.token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("reading the API token {}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the API on {addr}"))?;
        let app = router(AppState {
            core,
            token: token.or_else(|| Some(String::new())),
        });
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(tcp, app).await {
                tracing::error!(error = %e, "API server (TCP) stopped");
            }
        }));
    }
    tracing::info!(socket = %cfg.socket.display(), tcp = ?cfg.tcp, "control API listening");
    Ok(Servers {
        tasks,
        socket: cfg.socket.clone(),
    })
}

/// A socket file left by a crashed daemon is removed; one that answers means ribd is already running.
fn remove_stale_socket(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!("another ribd is already serving {}", path.display());
    }
    std::fs::remove_file(path)
        .with_context(|| format!("removing the stale socket {}", path.display()))
}

fn error(status: u16, message: String) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(ErrorBody { error: message })).into_response()
}

async fn ask(state: &AppState, headers: &HeaderMap, kind: RequestKind) -> HttpResponse {
    if let Some(token) = &state.token {
        let ok = !token.is_empty()
            && headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|t| t == token);
        if !ok && !matches!(kind, RequestKind::Metrics) {
            return error(
                401,
                "missing or wrong bearer token (Authorization: Bearer <token-file contents>)"
                    .into(),
            );
        }
    }
    let (tx, rx) = oneshot::channel();
    if state.core.send(Request { kind, reply: tx }).await.is_err() {
        return error(503, "ribd is shutting down".into());
    }
    match rx.await {
        Ok(Response::Json(v)) => axum::Json(v).into_response(),
        Ok(Response::Text(t)) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], t).into_response()
        }
        Ok(Response::Error(code, msg)) => error(code, msg),
        Err(_) => error(503, "ribd is shutting down".into()),
    }
}

async fn summary(State(s): State<AppState>, h: HeaderMap) -> HttpResponse {
    ask(&s, &h, RequestKind::Summary).await
}

async fn counters(State(s): State<AppState>, h: HeaderMap) -> HttpResponse {
    ask(&s, &h, RequestKind::Counters).await
}

async fn peers(State(s): State<AppState>, h: HeaderMap) -> HttpResponse {
    ask(&s, &h, RequestKind::Peers(None)).await
}

async fn peer(
    State(s): State<AppState>,
    h: HeaderMap,
    UrlPath(name): UrlPath<String>,
) -> HttpResponse {
    ask(&s, &h, RequestKind::Peers(Some(name))).await
}

async fn peer_action(
    State(s): State<AppState>,
    h: HeaderMap,
    UrlPath((name, action)): UrlPath<(String, String)>,
) -> HttpResponse {
    let a = match action.as_str() {
        "enable" => PeerAction::Enable,
        "disable" => PeerAction::Disable,
        "reset" => PeerAction::Reset,
        "refresh" => PeerAction::Refresh,
        other => {
            return error(
                400,
                format!("unknown peer action {other:?}: enable, disable, reset or refresh"),
            );
        }
    };
    ask(&s, &h, RequestKind::PeerAction(name, a)).await
}

async fn rib(
    State(s): State<AppState>,
    h: HeaderMap,
    UrlPath(afi): UrlPath<String>,
    q: Result<Query<RibQuery>, axum::extract::rejection::QueryRejection>,
) -> HttpResponse {
    let fam = match afi.as_str() {
        "ipv4" => IpFamily::V4,
        "ipv6" => IpFamily::V6,
        other => {
            return error(
                400,
                format!("unknown address family {other:?}: ipv4 or ipv6"),
            );
        }
    };
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return error(400, format!("bad query: {e}")),
    };
    ask(&s, &h, RequestKind::Rib(fam, q)).await
}

fn parse_prefix(text: &str) -> Result<IpNet, Box<HttpResponse>> {
    let t = api::prefix_from_path(text);
    let net: IpNet = t
        .parse()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            error(
                400,
                format!("{t:?} is not a prefix (e.g. 192.0.2.0/24 or 2001:db8::/32)"),
            )
        })?;
    Ok(net.trunc())
}

async fn route(
    State(s): State<AppState>,
    h: HeaderMap,
    UrlPath(p): UrlPath<String>,
) -> HttpResponse {
    match parse_prefix(&p) {
        Ok(net) => ask(&s, &h, RequestKind::Route(net)).await,
        Err(r) => *r,
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct FibQuery {
    prefix: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

async fn fib(
    State(s): State<AppState>,
    h: HeaderMap,
    q: Result<Query<FibQuery>, axum::extract::rejection::QueryRejection>,
) -> HttpResponse {
    let Ok(Query(q)) = q else {
        return error(400, "bad query: prefix, limit, after".into());
    };
    let prefix = match q.prefix.as_deref().map(parse_prefix).transpose() {
        Ok(p) => p,
        Err(r) => return *r,
    };
    ask(
        &s,
        &h,
        RequestKind::Fib(prefix, q.limit.unwrap_or(1000).clamp(1, 100_000), q.after),
    )
    .await
}

async fn lookup(
    State(s): State<AppState>,
    h: HeaderMap,
    UrlPath(a): UrlPath<String>,
    q: Result<Query<api::FlowQuery>, axum::extract::rejection::QueryRejection>,
) -> HttpResponse {
    let Ok(Query(q)) = q else {
        return error(
            400,
            "bad query: src (address), proto (0-255), sport, dport (0-65535)".into(),
        );
    };
    match a.parse::<IpAddr>() {
        Ok(addr) => {
            if q.src.is_some_and(|s| s.is_ipv4() != addr.is_ipv4()) {
                return error(
                    400,
                    "src and the looked-up address must be of the same family".into(),
                );
            }
            ask(&s, &h, RequestKind::Lookup(addr, q)).await
        }
        Err(_) => error(400, format!("{a:?} is not an IP address")),
    }
}

async fn stats(State(s): State<AppState>, h: HeaderMap) -> HttpResponse {
    ask(&s, &h, RequestKind::Stats).await
}

async fn check(State(s): State<AppState>, h: HeaderMap) -> HttpResponse {
    ask(&s, &h, RequestKind::Check).await
}

async fn acl(State(s): State<AppState>, h: HeaderMap) -> HttpResponse {
    ask(&s, &h, RequestKind::Acl).await
}

async fn flowspec(State(s): State<AppState>, h: HeaderMap) -> HttpResponse {
    ask(&s, &h, RequestKind::FlowSpec).await
}

async fn reload(State(s): State<AppState>, h: HeaderMap) -> HttpResponse {
    ask(&s, &h, RequestKind::Reload).await
}

async fn metrics(State(s): State<AppState>, h: HeaderMap) -> HttpResponse {
    ask(&s, &h, RequestKind::Metrics).await
}

/// One prefix of the RIB in the API's form (only best paths when `best_only`).
pub fn rib_route(core: &Core, prefix: IpNet, best_only: bool) -> Option<api::RibRoute> {
    let entry = match prefix {
        IpNet::V4(n) => core.rib().ipv4().get(&n),
        IpNet::V6(n) => core.rib().ipv6().get(&n),
    }?;
    let mp = entry.multipath();
    let paths = entry
        .iter()
        .enumerate()
        .filter(|(i, _)| !best_only || *i == 0)
        .map(|(i, p)| {
            rib_path(
                &core.peer_name_of(p.peer),
                p.path_id,
                i == 0 && mp > 0,
                i < mp,
                p.flags & crate::rib::table::flags::ANY_STALE != 0,
                p.attrs,
            )
        })
        .collect();
    Some(api::RibRoute {
        prefix: prefix.to_string(),
        paths,
    })
}

/// A page of the RIB with the query's filters applied.
pub fn rib_page(core: &Core, fam: IpFamily, q: &RibQuery) -> Result<api::RibPage, String> {
    let prefix: Option<IpNet> = match &q.prefix {
        Some(p) => Some(
            p.parse::<IpNet>()
                .map_err(|_| format!("prefix {p:?} is not a prefix"))?
                .trunc(),
        ),
        None => None,
    };
    if let Some(p) = prefix
        && p.addr().is_ipv4() != (fam == IpFamily::V4)
    {
        return Err(format!(
            "prefix {p} is not in the {} table",
            if fam == IpFamily::V4 { "ipv4" } else { "ipv6" }
        ));
    }
    let mode = q.match_.as_deref().unwrap_or("exact");
    if !matches!(mode, "exact" | "longer" | "shorter") {
        return Err(format!("match={mode:?}: expected exact, longer or shorter"));
    }
    let community = match &q.community {
        Some(c) => Some(crate::policy::community::parse_community(c)?),
        None => None,
    };
    let as_path = match &q.as_path {
        Some(re) => Some(crate::policy::compile_as_path_regex(re)?),
        None => None,
    };
    let after: Option<IpNet> = match &q.after {
        Some(a) => Some(
            a.parse()
                .map_err(|_| format!("after={a:?} is not a prefix"))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(1000).clamp(1, 100_000);
    let (keys, total): (Vec<IpNet>, u64) = match fam {
        IpFamily::V4 => (
            core.rib()
                .ipv4()
                .sorted_keys()
                .into_iter()
                .map(IpNet::V4)
                .collect(),
            core.rib().ipv4().len() as u64,
        ),
        IpFamily::V6 => (
            core.rib()
                .ipv6()
                .sorted_keys()
                .into_iter()
                .map(IpNet::V6)
                .collect(),
            core.rib().ipv6().len() as u64,
        ),
    };
    let mut matched = 0u64;
    let mut routes = Vec::new();
    let mut next = None;
    for k in keys {
        let ok_prefix = match (prefix, mode) {
            (None, _) => true,
            (Some(p), "exact") => k == p,
            (Some(p), "longer") => p.contains(&k),
            (Some(p), _) => k.contains(&p),
        };
        if !ok_prefix {
            continue;
        }
        // Without path filters a prefix matches as it is: count it without building it, and build only
        // the prefixes of this page.
        let path_filters = q.peer.is_some() || community.is_some() || as_path.is_some();
        let before_page = after.is_some_and(|a| k <= a);
        if !path_filters && (before_page || routes.len() >= limit) {
            matched += 1;
            if !before_page && next.is_none() {
                next = routes.last().map(|r: &api::RibRoute| r.prefix.clone());
            }
            continue;
        }
        let Some(mut r) = rib_route(core, k, q.best.unwrap_or(false)) else {
            continue;
        };
        if let Some(peer) = &q.peer {
            r.paths.retain(|p| &p.peer == peer);
        }
        if let Some(c) = community {
            let text = crate::policy::community::format_community(c);
            r.paths.retain(|p| p.communities.contains(&text));
        }
        if let Some(re) = &as_path {
            r.paths.retain(|p| re.is_match(&p.as_path));
        }
        if r.paths.is_empty() {
            continue;
        }
        matched += 1;
        if before_page {
            continue;
        }
        if routes.len() < limit {
            routes.push(r);
        } else if next.is_none() {
            next = routes.last().map(|r: &api::RibRoute| r.prefix.clone());
        }
    }
    Ok(api::RibPage {
        afi: if fam == IpFamily::V4 {
            "ipv4".into()
        } else {
            "ipv6".into()
        },
        total,
        matched,
        routes,
        next,
    })
}
