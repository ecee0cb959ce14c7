//! ribctl: the operator's command line for ribd. It talks to the daemon's control API only, and links
//! only the API model of `ribd` (`ribd::api`, built with default features off).
//!
//! ```text
//!   argv ─► args (clap) ─► commands::run ─► validate (prefix, address, community, AS-path regex)
//!                               │
//!                               ├─► client: HTTP/1.1 over the Unix socket (or TCP + bearer token)
//!                               │           GET/POST /v1/... ─► JSON ─► ribd::api types
//!                               └─► render + table: aligned tables (colours on a TTY) | --json lines
//!   exit code ◄─ error::Error (1 negative, 2 usage, 3 unreachable, 4 permission, 5 API)
//! ```

pub mod args;
pub mod client;
pub mod commands;
pub mod error;
pub mod render;
pub mod table;
pub mod validate;
