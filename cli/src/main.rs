//! The `kiln` command line: the same library calls the Lambdas make, one
//! file per group of commands.

mod args;
mod audit;
mod build;
mod channels;
mod guard;
mod images;
mod import;
mod ops;
mod output;
mod rollout;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use args::Output;

/// Kiln builds, tests and promotes golden Ubuntu AMIs with no SSH.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about)]
struct Cli {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Build(build::Command),
    #[command(flatten)]
    Channels(channels::Command),
    #[command(flatten)]
    Images(images::Command),
    /// Hands-off releases: where a recipe's stand, and a hand on them.
    Rollout {
        #[command(subcommand)]
        action: rollout::Command,
    },
    Audit(audit::Audit),
    /// Only kiln images launch: EC2's Allowed AMIs setting, compiled from
    /// the recipes.
    Guard {
        #[command(subcommand)]
        action: guard::Command,
    },
    Sweep(ops::SweepArgs),
    /// Come from another tool: a recipe from its template.
    Import {
        #[command(subcommand)]
        action: import::Command,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("KILN_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let done = match &cli.command {
        Command::Build(command) => build::run(cli.output, command).await,
        Command::Channels(command) => channels::run(cli.output, command).await,
        Command::Images(command) => images::run(cli.output, command).await,
        Command::Rollout { action } => rollout::run(cli.output, action).await,
        Command::Audit(audit) => audit::run(cli.output, audit).await,
        Command::Guard { action } => guard::run(cli.output, action).await,
        Command::Sweep(sweep) => ops::sweep(cli.output, sweep).await,
        Command::Import { action } => import::run(cli.output, action),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            output::report(cli.output, &err);
            ExitCode::FAILURE
        }
    }
}
