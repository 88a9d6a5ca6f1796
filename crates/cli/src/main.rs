//! `edgetrace`: self-hosted edge diagnostics.

mod traceroute;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "edgetrace", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trace the path to up to 10 targets at once (ICMP, UDP, TCP SYN, GRE; IPv4 and IPv6).
    ///
    /// Probes keep one flow per trace (Paris traceroute), so load balancers send every TTL of a
    /// trace down the same path. Needs CAP_NET_RAW (root, or `setcap cap_net_raw+ep`); it is
    /// dropped as soon as the sockets are open.
    Traceroute(traceroute::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Traceroute(args) => traceroute::run(args),
    }
}
