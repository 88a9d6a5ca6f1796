//! `edgetrace`: self-hosted edge diagnostics.

mod admin;
mod agent;
mod serve;
mod traceroute;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "edgetrace", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server: Cloudflare-compatible traceroute, edge configuration and request
    /// trace API, with SQLite in the data directory and this machine as the colo; with
    /// --proxy-listen, the edge proxy too.
    ///
    /// Needs CAP_NET_RAW for TCP and GRE traces (root, or `setcap cap_net_raw+ep`); it is
    /// dropped as soon as the sockets are open.
    Serve(Box<serve::Args>),
    /// Run one process of a colo: connect out to NATS, announce the colo, run the traceroutes
    /// the servers send it (with this machine's sockets).
    ///
    /// Needs CAP_NET_RAW for TCP and GRE traces; it is dropped as soon as the sockets are open.
    Agent(agent::Args),
    /// Trace the path to up to 10 targets at once (ICMP, UDP, TCP SYN, GRE; IPv4 and IPv6).
    ///
    /// Probes keep one flow per trace (Paris traceroute), so load balancers send every TTL of a
    /// trace down the same path. Needs CAP_NET_RAW (root, or `setcap cap_net_raw+ep`); it is
    /// dropped as soon as the sockets are open.
    Traceroute(traceroute::Args),
    /// Manage accounts in a data directory.
    Account {
        #[command(flatten)]
        dir: admin::DataDir,
        #[command(subcommand)]
        command: admin::Account,
    },
    /// Manage API tokens in a data directory.
    Token {
        #[command(flatten)]
        dir: admin::DataDir,
        #[command(subcommand)]
        command: admin::Token,
    },
    /// Manage global API keys (legacy X-Auth-Email + X-Auth-Key) in a data directory.
    Key {
        #[command(flatten)]
        dir: admin::DataDir,
        #[command(subcommand)]
        command: admin::Key,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Agent(args) => agent::run(args),
        Command::Traceroute(args) => traceroute::run(args),
        Command::Account { dir, command } => admin::account(dir, command),
        Command::Token { dir, command } => admin::token(dir, command),
        Command::Key { dir, command } => admin::key(dir, command),
    }
}
