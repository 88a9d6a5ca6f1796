//! `edgetrace-netsim`: check a scenario, or run it in a fresh namespace and run a command there.
//!
//! ```text
//! edgetrace-netsim check crates/netsim/scenarios/linear16.toml
//! edgetrace-netsim run crates/netsim/scenarios/linear16.toml -- edgetrace traceroute 198.19.0.1
//! edgetrace-netsim run crates/netsim/scenarios/linear16.toml      # until Ctrl-C; prints the namespace
//! ```

use anyhow::Context;
use clap::{Parser, Subcommand};
use edgetrace_netsim::{Scenario, Simulator};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(version, about = "A simulated internet on a TUN device, for edgetrace")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and validate a scenario file.
    Check { scenario: PathBuf },
    /// Run a scenario in a new network namespace (needs root).
    Run {
        scenario: PathBuf,
        /// Replaces the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// A command to run inside the namespace; the simulation ends with it.
        #[arg(last = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edgetrace-netsim: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { scenario } => {
            let s = Scenario::from_file(&scenario)?;
            println!(
                "{}: {} routers, {} hosts, {} links",
                scenario.display(),
                s.routers.len(),
                s.hosts.len(),
                s.links.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            scenario,
            seed,
            command,
        } => {
            let s = Scenario::from_file(&scenario)?;
            let sim = Simulator::start_seeded("cli", &s, seed.unwrap_or(s.seed))
                .context("starting the simulator (root needed)")?;
            eprintln!("edgetrace-netsim: namespace {}", sim.namespace());
            if command.is_empty() {
                eprintln!(
                    "edgetrace-netsim: running until interrupted (ip netns exec {} ...)",
                    sim.namespace()
                );
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            let out = sim.lab().exec(sim.namespace(), &args)?;
            print!("{}", String::from_utf8_lossy(&out.stdout));
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            sim.settle(Duration::from_secs(1));
            eprintln!("edgetrace-netsim: {:?}", sim.stats());
            Ok(match out.status.code() {
                Some(0) => ExitCode::SUCCESS,
                Some(c) => ExitCode::from(c as u8),
                None => ExitCode::FAILURE,
            })
        }
    }
}
