//! `kms-gateway policy …`: the policy authors' test kit, offline. `check`
//! says what the upload endpoint would say of a component; `test` runs it
//! against fixture cases and exits non-zero on a mismatch.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use kms_gateway::policy::engine::{Limits, PolicyEngine};
use kms_gateway::policy::kit::{self, Fixtures};

#[derive(Args)]
pub(crate) struct PolicyArgs {
    /// Deadline of one call, as `--policy-timeout-ms` of the gateway
    #[arg(long, default_value_t = 50)]
    timeout_ms: u64,
    /// Memory cap of a pure policy instance
    #[arg(long, default_value_t = 16)]
    memory_mib: usize,
    /// Memory cap of an instance that embeds a language runtime
    #[arg(long, default_value_t = 128)]
    runtime_memory_mib: usize,
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// What the upload endpoint would say of POLICY (JSON on stdout)
    Check { policy: PathBuf },
    /// Run POLICY against the cases of FIXTURES (JSON); exit 1 on a mismatch
    Test {
        policy: PathBuf,
        fixtures: PathBuf,
        /// Print the results as JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(args: PolicyArgs) -> anyhow::Result<std::process::ExitCode> {
    let limits = Limits {
        deadline: Duration::from_millis(args.timeout_ms.max(1)),
        memory_bytes: args.memory_mib << 20,
        runtime_memory_bytes: args.runtime_memory_mib << 20,
        ..Limits::default()
    };
    let engine = PolicyEngine::new(limits)?;
    let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    match args.command {
        PolicyCommand::Check { policy } => {
            let (_, report) = kit::check(&engine, &limits, &read(&policy)?).context("the upload endpoint would refuse it")?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(std::process::ExitCode::SUCCESS)
        }
        PolicyCommand::Test { policy, fixtures, json } => {
            let (prepared, _) = kit::check(&engine, &limits, &read(&policy)?).context("the upload endpoint would refuse it")?;
            let cases: Fixtures = serde_json::from_slice(&read(&fixtures)?)
                .with_context(|| format!("{} is not a fixture file", fixtures.display()))?;
            let results = kit::run(&engine, &prepared, &cases);
            let failed = results.iter().filter(|r| !r.passed).count();
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                println!("| case | result | µs | answer |");
                println!("|---|---|---|---|");
                for r in &results {
                    let verdict = if r.passed { "pass" } else { "FAIL" };
                    println!("| {} | {verdict} | {:.0} | {} |", r.name, r.micros, r.got);
                }
                println!("{} passed, {failed} failed ({})", results.len() - failed, policy.display());
            }
            Ok(if failed == 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
        }
    }
}
