//! The `kiln` command line: the same library calls the Lambdas make.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kiln::Error;
use kiln::aws::{Context, Settings};
use kiln::recipe::Recipe;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// For people.
    Text,
    /// For scripts.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a recipe directory and report every problem, touching nothing in AWS.
    Validate {
        /// The recipe directory (holding recipe.toml).
        recipe: PathBuf,
    },
    /// Find the source image and fingerprint, and whether a build would be skipped.
    Resolve {
        /// The recipe directory (holding recipe.toml).
        recipe: PathBuf,
        /// Report what a forced build would do (never skip).
        #[arg(long)]
        force: bool,
        /// Read the source image id from this SSM parameter instead of the recipe's.
        #[arg(long, env = "KILN_SOURCE_PARAMETER")]
        source_parameter: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("KILN_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(cli.output, &err);
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> Result<(), Error> {
    match &cli.command {
        Command::Validate { recipe } => {
            let recipe = Recipe::load(recipe)?;
            let file = &recipe.file;
            print(
                cli.output,
                &serde_json::json!({"valid": true, "recipe": recipe.name, "file": file}),
                || {
                    let steps: Vec<_> = file.steps.iter().map(|s| s.name.as_str()).collect();
                    format!(
                        "recipe {} is valid: {} step(s) ({}), test {}, builder {}",
                        recipe.name,
                        steps.len(),
                        steps.join(", "),
                        file.test.script,
                        file.builder.instance_types.join(" > "),
                    )
                },
            );
        }
        Command::Resolve {
            recipe,
            force,
            source_parameter,
        } => {
            let recipe = Recipe::load(recipe)?;
            let config = aws_config::load_from_env().await;
            let settings = Settings {
                source_parameter: source_parameter.clone(),
                ..Settings::from_env()
            };
            let ctx = Context::new(&config, settings);
            let source = kiln::source::resolve(&ctx, &recipe, *force).await?;
            print(cli.output, &source, || {
                let verdict = match &source.existing_image_id {
                    Some(image) => {
                        format!("up to date: {image} was built from the same inputs (skip)")
                    }
                    None => "a build is needed".to_owned(),
                };
                format!(
                    "source      {} ({})\nfingerprint {}\n{verdict}",
                    source.source_ami, source.source_name, source.fingerprint
                )
            });
        }
    }
    Ok(())
}

fn print<T: serde::Serialize>(output: Output, value: &T, text: impl FnOnce() -> String) {
    match output {
        Output::Json => match serde_json::to_string_pretty(value) {
            Ok(json) => println!("{json}"),
            Err(err) => eprintln!("cannot encode the result as JSON: {err}"),
        },
        Output::Text => println!("{}", text()),
    }
}

fn report(output: Output, err: &Error) {
    match output {
        Output::Json => {
            let problems = match err {
                Error::InvalidRecipe { problems, .. } => {
                    serde_json::to_value(problems).unwrap_or_default()
                }
                _ => serde_json::Value::Null,
            };
            let json = serde_json::json!({"error": err.name(), "message": err.to_string(), "problems": problems});
            println!("{json}");
        }
        Output::Text => eprintln!("error[{}]: {err}", err.name()),
    }
}
