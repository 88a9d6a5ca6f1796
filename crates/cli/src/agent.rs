//! `edgetrace agent`: one process of a colo. It connects out to NATS (no inbound port),
//! announces itself, and runs the jobs sent to its colo with its own engine and sockets.

use crate::traceroute::{EnrichArgs, warn_without_asn_db};
use anyhow::Context;
use edgetrace_fleet::LocalColo;
use edgetrace_fleet::nats::{check_colo_name, check_nats_url, run_agent};
use edgetrace_net::{Sockets, drop_privileges};
use edgetrace_probe::report::Colo;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Several agents may serve one colo: they share its jobs (a NATS queue group), so a colo scales by
adding processes. The agent announces its colo, city and version every second; a server started
with --min-agent-version refuses older agents (the agent then exits with status 1).

Examples:
  edgetrace agent --colo sin01 --city 'Singapore, SG' --nats nats://nats.example.net:4222
  edgetrace agent --colo den01 --nats nats://10.0.0.5:4222,nats://10.0.0.6:4222 --no-dns")]
pub struct Args {
    /// Name of the colo this agent serves: 1-32 characters of a-z, 0-9, '-', '_' (e.g. sin01).
    #[arg(long, value_name = "NAME")]
    colo: String,
    /// City of the colo, e.g. "Singapore, SG".
    #[arg(long, value_name = "CITY", default_value = "")]
    city: String,
    /// NATS server(s): nats://HOST:PORT, comma-separated for a cluster.
    #[arg(long, value_name = "URL")]
    nats: String,
    #[command(flatten)]
    enrich: EnrichArgs,
}

pub fn run(args: Args) -> ExitCode {
    match agent(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgetrace: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn agent(args: Args) -> anyhow::Result<()> {
    check_colo_name(&args.colo).map_err(|e| anyhow::anyhow!("--colo {:?}: {e}", args.colo))?;
    check_nats_url(&args.nats)?;
    // Privileged sockets first, then every capability goes, before any thread starts.
    let sockets = match Sockets::open() {
        Ok(s) => Some(s),
        Err(e) if e.is_not_permitted() => {
            eprintln!(
                "edgetrace: no CAP_NET_RAW: ICMP and UDP traces use unprivileged sockets; TCP and GRE answer Code 4 ({e})"
            );
            None
        }
        Err(e) => return Err(e).context("cannot open the probing sockets"),
    };
    drop_privileges().context("cannot drop privileges")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let enricher = args.enrich.build(runtime.handle().clone())?;
    warn_without_asn_db(&enricher);
    let colo = Colo {
        name: args.colo,
        city: args.city,
    };
    let local = LocalColo::with_enricher(colo, sockets, enricher)
        .context("cannot start the probing thread")?;
    runtime.block_on(async move {
        run_agent(
            &args.nats,
            Arc::new(local),
            env!("CARGO_PKG_VERSION"),
            crate::serve::shutdown_signal(),
        )
        .await?;
        eprintln!("edgetrace: agent stopped");
        Ok(())
    })
}
