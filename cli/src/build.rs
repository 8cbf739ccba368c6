//! Building: check a recipe, resolve its source, start and follow builds.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use clap::Subcommand;
use kiln::Error;
use kiln::aws::executions::{self, Ended, Progress, Started};
use kiln::pipeline::build;
use kiln::pipeline::state::{BuildInput, BuildState, Reason};
use kiln::recipe::Recipe;

use crate::args::{Output, context};
use crate::output::{print, table};

/// How often a followed build is looked at.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Start a build on the build state machine (named from the recipe and its
    /// fingerprint: the same inputs never build twice), and follow it.
    Build {
        /// The recipe directory (holding recipe.toml).
        recipe: PathBuf,
        /// Build even when an image of the same inputs exists.
        #[arg(long)]
        force: bool,
        /// Show each step as it runs, then the image or the failure.
        #[arg(long)]
        follow: bool,
        /// The build state machine.
        #[arg(long, env = "KILN_STATE_MACHINE_ARN")]
        state_machine: String,
        /// Seconds the state machine waits between polls.
        #[arg(long, default_value_t = 30)]
        wait_seconds: u32,
        /// Read the source image id from this SSM parameter instead of the recipe's.
        #[arg(long, env = "KILN_SOURCE_PARAMETER")]
        source_parameter: Option<String>,
    },
    /// How a build stands or ended (its image, or its error); --follow waits for the end.
    Status {
        /// The build's name (or its execution ARN).
        build: String,
        /// Show each step as it runs until the build ends.
        #[arg(long)]
        follow: bool,
        /// The build state machine.
        #[arg(long, env = "KILN_STATE_MACHINE_ARN")]
        state_machine: String,
    },
    /// List the newest builds, of one recipe or of all.
    Builds {
        /// Only builds of this recipe (by name).
        recipe: Option<String>,
        /// How many to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// The build state machine.
        #[arg(long, env = "KILN_STATE_MACHINE_ARN")]
        state_machine: String,
    },
}

pub async fn run(output: Output, command: &Command) -> Result<(), Error> {
    match command {
        Command::Validate { recipe } => {
            let recipe = Recipe::load(recipe)?;
            let file = &recipe.file;
            print(
                output,
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
            let ctx = context(|s| s.source_parameter.clone_from(source_parameter)).await;
            let source = kiln::pipeline::source::resolve(&ctx, &recipe, *force).await?;
            print(output, &source, || {
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
        Command::Build {
            recipe,
            force,
            follow,
            state_machine,
            wait_seconds,
            source_parameter,
        } => {
            let recipe = Recipe::load(recipe)?;
            let ctx = context(|s| {
                s.source_parameter.clone_from(source_parameter);
                s.state_machine_arn = Some(state_machine.clone());
            })
            .await;
            let source = kiln::pipeline::source::resolve(&ctx, &recipe, *force).await?;
            let input = BuildInput::new(&recipe, Reason::Manual, *force, Some(*wait_seconds));
            let name = build::name(&recipe, &source, *force);
            // An existing build of these inputs is reported as it ended, not
            // tried again: a person decides (--force) whether to build again.
            let started = build::start(&ctx, &name, &input).await?;
            if output == Output::Text {
                let verb = if started.existing {
                    "already started (same recipe and inputs)"
                } else {
                    "started"
                };
                println!("build {} {verb}\n  {}", started.name, started.arn);
            }
            if !*follow {
                if output == Output::Json {
                    println!(
                        "{}",
                        serde_json::json!({"build": started.name, "arn": started.arn, "existing": started.existing})
                    );
                }
                return Ok(());
            }
            // An existing build's steps are history: show only how it ended.
            let text = output == Output::Text && !started.existing;
            let ended = executions::follow(ctx.sfn(), &started.arn, FOLLOW_INTERVAL, |progress| {
                if text {
                    show(&progress);
                }
            })
            .await?;
            finish(output, &started, &ended)?;
        }
        Command::Status {
            build,
            follow,
            state_machine,
        } => {
            let ctx = context(|_| {}).await;
            let arn = executions::arn_of(state_machine, build)?;
            let name = arn.rsplit(':').next().unwrap_or_default().to_owned();
            let started = Started {
                arn,
                name,
                existing: false,
            };
            let text = output == Output::Text && *follow;
            // Without --follow, a running build is reported as it stands now.
            let ended = if *follow {
                executions::follow(ctx.sfn(), &started.arn, FOLLOW_INTERVAL, |p| {
                    if text {
                        show(&p);
                    }
                })
                .await?
            } else {
                executions::describe(ctx.sfn(), &started.arn).await?
            };
            finish(output, &started, &ended)?;
        }
        Command::Builds {
            recipe,
            limit,
            state_machine,
        } => {
            let ctx = context(|_| {}).await;
            let prefix = recipe.as_ref().map(|recipe| format!("{recipe}-"));
            let builds =
                executions::list(ctx.sfn(), state_machine, prefix.as_deref(), *limit).await?;
            print(output, &builds, || {
                table(&["BUILD", "STATUS", "STARTED", "ENDED"], &builds, |b| {
                    vec![
                        b.name.clone(),
                        b.status.clone(),
                        b.started.clone(),
                        b.stopped.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
            });
        }
    }
    Ok(())
}

fn show(progress: &Progress<BuildState>) {
    match progress {
        Progress::Entered { state } => println!("  -> {state}"),
        Progress::Exited {
            state,
            seconds,
            output,
        } => {
            let detail = match output.as_deref() {
                Some(BuildState {
                    provision: Some(p),
                    image: None,
                    ..
                }) => {
                    format!(
                        ": step {}/{} {} {}",
                        p.step + 1,
                        p.steps,
                        p.step_name,
                        p.status
                    )
                }
                Some(BuildState { test: Some(t), .. }) => format!(": test {}", t.status),
                Some(BuildState { image: Some(i), .. }) => format!(": {} {}", i.image_id, i.state),
                Some(BuildState {
                    builder: Some(b), ..
                }) => format!(": {}", b.builder_instance_id),
                _ => String::new(),
            };
            println!("  ok {state} ({seconds:.1} s){detail}");
        }
    }
}

fn finish(output: Output, started: &Started, ended: &Ended<BuildState>) -> Result<(), Error> {
    let image = ended.output.as_ref().and_then(|state| {
        let source = state.source.as_ref()?;
        state
            .image
            .as_ref()
            .map(|i| i.image_id.clone())
            .or_else(|| source.existing_image_id.clone())
    });
    let skipped = started.existing
        || ended
            .output
            .as_ref()
            .and_then(|s| s.source.as_ref())
            .is_some_and(|s| s.skip);
    let status = ended.status.as_str();
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"build": started.name, "arn": started.arn, "status": status,
                "image_id": image, "skipped": skipped, "error": ended.error, "cause": ended.cause})
        ),
        Output::Text => match (&ended.status, image) {
            (ExecutionStatus::Running, _) => println!(
                "build {} is running; kiln status {} --follow waits for it",
                started.name, started.name
            ),
            (ExecutionStatus::Succeeded, Some(image)) if skipped => {
                println!(
                    "up to date: {image} was built and tested from the same inputs; nothing to do"
                );
            }
            (ExecutionStatus::Succeeded, Some(image)) => println!("built and tested {image}"),
            _ => {
                println!(
                    "build {status}: {}: {}",
                    ended.error.as_deref().unwrap_or("no error"),
                    ended.cause.as_deref().unwrap_or("no cause")
                );
                if started.existing {
                    println!(
                        "this build of these inputs ran before; build them again with --force"
                    );
                }
            }
        },
    }
    if matches!(
        ended.status,
        ExecutionStatus::Succeeded | ExecutionStatus::Running
    ) {
        Ok(())
    } else {
        Err(Error::BuildFailed {
            build: started.name.clone(),
            status: status.to_owned(),
            error: ended.error.clone().unwrap_or_default(),
        })
    }
}
