//! Command line grammar (clap derive). Parsing only: checks that need more than clap can express
//! (prefix syntax, community syntax, AS-path regex) live in [`crate::validate`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit codes, as listed in `ribctl --help` and the README.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  negative answer: `fib check` found differences, the peer/prefix/route is
     unknown (HTTP 404), or the daemon refused an action (HTTP 409/422, e.g.
     refresh of a peer that is down, reload of a config with errors)
  2  usage: bad arguments, malformed prefix/address/community/regex (checked
     before calling ribd), or a request ribd rejected as malformed (HTTP 400)
  3  ribd unreachable: no socket, nobody listening, connection refused, timeout
  4  permission denied: the control socket's mode/group, or a missing or wrong
     bearer token (HTTP 401/403)
  5  API error: ribd answered with a server error or something ribctl cannot read

Environment: RIBCTL_SOCKET, RIBCTL_URL, RIBCTL_TOKEN; NO_COLOR turns colours off.";

#[derive(Debug, Parser)]
#[command(
    name = "ribctl",
    version,
    about = "Inspect and operate ribd, the BGP speaker with the XDP dataplane",
    long_about = "Inspect and operate ribd, the BGP speaker with the XDP dataplane.\n\n\
                  ribctl talks to the daemon's control API over its Unix socket (or over TCP with \
                  a bearer token) and prints aligned tables, or the API's JSON model with --json.",
    after_help = EXIT_CODES,
    after_long_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Control socket of the daemon.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "RIBCTL_SOCKET",
        default_value = ribd::api::DEFAULT_SOCKET
    )]
    pub socket: PathBuf,

    /// Talk to the daemon's TCP listener instead of the socket (http://HOST:PORT).
    #[arg(long, global = true, value_name = "URL", env = "RIBCTL_URL")]
    pub url: Option<String>,

    /// Bearer token for --url.
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "RIBCTL_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,

    /// Read the bearer token for --url from this file (first line).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Print the API's JSON model (one document per line) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Colours: auto (only when stdout is a terminal and NO_COLOR is unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Seconds to wait for the daemon's answer.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show daemon, neighbour, RIB, FIB and dataplane state.
    #[command(subcommand)]
    Show(Show),

    /// What the dataplane does with a packet to ADDRESS (longest match, group, next-hops) and the RIB's view.
    Lookup {
        /// Destination address (IPv4 or IPv6).
        address: String,
        /// Source address of a flow: also show the bucket and next-hop this flow takes.
        #[arg(long)]
        src: Option<String>,
        /// IP protocol number of the flow (6 TCP, 17 UDP, ...; default TCP with ports, else ICMP).
        #[arg(long)]
        proto: Option<u8>,
        /// Source port of the flow.
        #[arg(long)]
        sport: Option<u16>,
        /// Destination port of the flow.
        #[arg(long)]
        dport: Option<u16>,
    },

    /// Dataplane consistency.
    #[command(subcommand)]
    Fib(Fib),

    /// Act on one neighbour.
    Peer {
        #[arg(value_enum)]
        action: PeerAction,
        /// Neighbour name (as in the config) or address.
        peer: String,
    },

    /// Re-read the configuration file (changes only what changed).
    Reload,

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff) to stdout.
    Man,
}

#[derive(Debug, Subcommand)]
pub enum Show {
    /// Daemon, table sizes, dataplane and a one-line-per-neighbour summary.
    Summary,

    /// Neighbours; with PEER, everything about that one.
    #[command(alias = "neighbours", alias = "peers")]
    Neighbors {
        /// Neighbour name or address.
        peer: Option<String>,
    },

    /// RIB routes, streamed page by page.
    Rib(RibArgs),

    /// One prefix: every candidate path, the best marked, why each other one lost, and the FIB entry.
    Route {
        /// The prefix (e.g. 192.0.2.0/24, 2001:db8::/32).
        prefix: String,
    },

    /// FIB as the dataplane holds it: kind, path-list/group ids, next-hops, weights, buckets, MACs.
    Fib {
        /// Only this prefix.
        prefix: Option<String>,
        /// Routes per API request (ribd walks its table for every page: fewer, larger pages are faster).
        #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        page_size: u32,
    },

    /// FlowSpec rules in the order the XDP classifier applies them: peer, actions, feasibility,
    /// whether installed, and per-rule packet/byte/drop counters.
    #[command(alias = "flow")]
    Flowspec,

    /// Config ACL rules in the order the XDP classifier applies them (before FlowSpec), with
    /// per-rule packet/byte/drop counters.
    Acl,

    /// Dataplane counters per reason, interface and next-hop.
    Stats {
        /// Sample every SECS seconds (default 1) and print rates between samples.
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1")]
        watch: Option<f64>,
        /// With --watch: stop after this many samples.
        #[arg(long, value_name = "N", requires = "watch")]
        count: Option<u64>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct RibArgs {
    /// Only this prefix (exact unless --longer/--shorter).
    pub prefix: Option<String>,
    /// The prefix and every more specific one.
    #[arg(long, requires = "prefix", conflicts_with = "shorter")]
    pub longer: bool,
    /// The prefix and every covering (less specific) one.
    #[arg(long, requires = "prefix")]
    pub shorter: bool,
    /// Only paths from this neighbour (name or address).
    #[arg(long, value_name = "PEER")]
    pub peer: Option<String>,
    /// Only paths carrying this standard community (65000:100 or a well-known name such as
    /// no-export).
    #[arg(long, value_name = "C")]
    pub community: Option<String>,
    /// Only paths whose AS path matches this regex (`_` matches an AS boundary).
    #[arg(long = "as-path", value_name = "RE")]
    pub as_path: Option<String>,
    /// Only this address family (default: both, or the prefix's).
    #[arg(long, value_enum)]
    pub afi: Option<Afi>,
    /// Only best paths.
    #[arg(long)]
    pub best: bool,
    /// Routes per API request (ribd walks its table for every page: fewer, larger pages are faster).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub page_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Afi {
    Ipv4,
    Ipv6,
}

impl Afi {
    pub fn as_str(self) -> &'static str {
        match self {
            Afi::Ipv4 => "ipv4",
            Afi::Ipv6 => "ipv6",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Fib {
    /// Compare RIB, FIB and the dataplane maps; exit 0 when consistent, 1 when not.
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PeerAction {
    /// Allow the session to come up.
    Enable,
    /// Shut the session down (Cease/Administrative Shutdown) and keep it down.
    Disable,
    /// Drop and re-establish the session.
    Reset,
    /// Ask the neighbour to re-send its routes (route refresh) and re-run import policy.
    Refresh,
}

impl PeerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerAction::Enable => "enable",
            PeerAction::Disable => "disable",
            PeerAction::Reset => "reset",
            PeerAction::Refresh => "refresh",
        }
    }
}

/// The clap command, for completions and the man page.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
