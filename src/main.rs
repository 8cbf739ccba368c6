//! The `kiln` command line: the same library calls the Lambdas make.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use kiln::Error;
use kiln::audit;
use kiln::aws::{Context, Settings};
use kiln::execution::{self, Progress};
use kiln::promotion::{self, Moved, Why};
use kiln::recipe::Recipe;
use kiln::retention;
use kiln::rollout;
use kiln::state::{BuildInput, BuildState, Channel, Reason, RecipeName};

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
    #[value(alias = "table")]
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
    /// List a recipe's images: age, stage, channels, and what uses each.
    Images {
        /// The recipe (its name, or its directory).
        recipe: String,
    },
    /// Point a channel at an image: deploy tools resolving the channel's
    /// parameter (/kiln/<recipe>/<channel>) launch it from then on.
    Promote {
        /// The recipe (its name, or its directory).
        recipe: String,
        /// The image (ami-…), built and tested by this recipe.
        image: String,
        #[command(flatten)]
        mv: MoveArgs,
        /// Promote an image that has not passed its test (say why in --reason).
        #[arg(long)]
        force: bool,
    },
    /// Point a channel back at the image its current one replaced; again to
    /// walk further back.
    Rollback {
        /// The recipe (its name, or its directory).
        recipe: String,
        #[command(flatten)]
        mv: MoveArgs,
    },
    /// Remove a channel: its parameter is deleted, so launches resolving it
    /// fail until the next promotion.
    Demote {
        /// The recipe (its name, or its directory).
        recipe: String,
        #[command(flatten)]
        mv: MoveArgs,
    },
    /// Every move of a channel: when, which image, what, why, who.
    History {
        /// The recipe (its name, or its directory).
        recipe: String,
        /// The channel.
        #[arg(long)]
        channel: String,
    },
    /// Deregister a recipe's old images and delete their snapshots, keeping the
    /// newest N and anything on a channel, previous on one, or used.
    Prune {
        /// The recipe (its name, or its directory).
        recipe: String,
        /// How many of the newest images to keep whatever else holds them.
        #[arg(long)]
        keep: usize,
        /// Only report what would go, and why each kept image stays.
        #[arg(long)]
        dry_run: bool,
    },
    /// Bring a recipe's image tags in line with its channel pointers (after an
    /// interrupted promotion, or tags edited by hand).
    Doctor {
        /// The recipe (its name, or its directory).
        recipe: String,
    },
    /// Remove what ended builds left behind: instances, untested images and
    /// their snapshots, unused kiln security groups (never tested or promoted
    /// images, never anything without kiln's tags).
    Sweep {
        /// Only list what would go.
        #[arg(long)]
        dry_run: bool,
        /// The build state machine (tells running builds from ended ones).
        #[arg(long, env = "KILN_STATE_MACHINE_ARN")]
        state_machine: String,
    },
    /// Which images the fleet runs, against each recipe's channel pointer:
    /// how much is on the promoted image and who is behind. Exits 1 when part
    /// of the fleet could not be audited (the rest is still reported).
    Audit {
        /// A region to audit (repeatable); none means the configured region.
        #[arg(long = "region", value_name = "REGION", conflicts_with = "all_regions")]
        regions: Vec<String>,
        /// Audit every region enabled in each account.
        #[arg(long)]
        all_regions: bool,
        /// A role to assume in another account (repeatable); the current
        /// account is always audited.
        #[arg(long = "account-role", value_name = "ARN")]
        account_roles: Vec<String>,
        /// The channel instances are compared against.
        #[arg(long, default_value = audit::DEFAULT_CHANNEL)]
        channel: String,
        /// The instance tag that names services.
        #[arg(long, default_value = audit::DEFAULT_SERVICE_TAG)]
        service_tag: String,
        /// Regions and accounts audited at once.
        #[arg(long, default_value_t = audit::DEFAULT_CONCURRENCY)]
        concurrency: usize,
        /// Also write the report as a self-contained HTML page to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Hands-off releases: where a recipe's stand, and a hand on them.
    Rollout {
        #[command(subcommand)]
        action: Rollout,
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

#[derive(Debug, Subcommand)]
enum Rollout {
    /// Every channel's pointer; every opted-in Auto Scaling group with its
    /// wave, the image it launches and its newest refresh; the hold; the
    /// releases running.
    Status {
        /// The recipe (its name, or its directory).
        recipe: String,
    },
    /// Release a tested image by hand (every build starts a release of the
    /// image it tested).
    Start {
        /// The recipe (its name, or its directory).
        recipe: String,
        /// The image (ami-…).
        #[arg(long)]
        image: String,
        /// Seconds between two checks of alarms, soak and refreshes.
        #[arg(long, default_value_t = rollout::DEFAULT_CHECK_SECONDS)]
        check_seconds: u32,
    },
    /// Hold the recipe's releases before their next promotion or wave
    /// (soaks, running refreshes and gates go on: an alarm still rolls back).
    Pause {
        /// The recipe (its name, or its directory).
        recipe: String,
        /// Why: shown by status and in the releases' messages.
        #[arg(long)]
        reason: String,
        /// Who.
        #[arg(long, env = "KILN_ACTOR", default_value_t = default_actor())]
        actor: String,
    },
    /// Lift the hold: releases go on at their next check.
    Resume {
        /// The recipe (its name, or its directory).
        recipe: String,
    },
    /// Stop the recipe's running releases and cancel its groups' running
    /// refreshes. Pointers stay: kiln rollback moves one back.
    Abort {
        /// The recipe (its name, or its directory).
        recipe: String,
        /// Why: the stopped executions' cause.
        #[arg(long)]
        reason: String,
    },
}

/// Which channel moves, why, and who moves it.
#[derive(Debug, clap::Args)]
struct MoveArgs {
    /// The channel (prod, staging, ...).
    #[arg(long)]
    channel: String,
    /// Why: recorded in the channel's history.
    #[arg(long)]
    reason: String,
    /// Who: recorded with the reason (SSM also records the AWS identity).
    #[arg(long, env = "KILN_ACTOR", default_value_t = default_actor())]
    actor: String,
}

impl MoveArgs {
    fn why(&self) -> Why<'_> {
        Why {
            reason: &self.reason,
            actor: &self.actor,
        }
    }

    fn channel(&self) -> Result<Channel, Error> {
        self.channel.parse()
    }
}

fn default_actor() -> String {
    std::env::var("USER").unwrap_or_else(|_| "unknown".into())
}

/// A recipe given by name or by its directory (`images/ubuntu-base/`).
fn recipe_name(arg: &str) -> Result<RecipeName, Error> {
    let name = std::path::Path::new(arg)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(arg);
    name.parse()
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
        Command::Build {
            recipe,
            force,
            follow,
            state_machine,
            wait_seconds,
            source_parameter,
        } => {
            let recipe = Recipe::load(recipe)?;
            let (config, ctx) = context(source_parameter).await;
            let sfn = aws_sdk_sfn::Client::new(&config);
            let source = kiln::source::resolve(&ctx, &recipe, *force).await?;
            let input = BuildInput {
                recipe: recipe.name.clone(),
                reason: Some(Reason::Manual),
                force: Some(*force),
                wait_seconds: Some(*wait_seconds),
            };
            let name = execution::name(&recipe, &source, *force);
            let started = execution::start(&sfn, state_machine, &name, &input).await?;
            if cli.output == Output::Text {
                let verb = if started.existing {
                    "already started (same recipe and inputs)"
                } else {
                    "started"
                };
                println!("build {} {verb}\n  {}", started.name, started.arn);
            }
            if !*follow {
                if cli.output == Output::Json {
                    println!(
                        "{}",
                        serde_json::json!({"build": started.name, "arn": started.arn, "existing": started.existing})
                    );
                }
                return Ok(());
            }
            // An existing build's steps are history: show only how it ended.
            let text = cli.output == Output::Text && !started.existing;
            let ended = execution::follow(&sfn, &started.arn, Duration::from_secs(1), |progress| {
                if text {
                    show(&progress);
                }
            })
            .await?;
            return finish(cli.output, &started, &ended);
        }
        Command::Status {
            build,
            follow,
            state_machine,
        } => {
            let sfn = aws_sdk_sfn::Client::new(&aws_config::load_from_env().await);
            let arn = execution::arn_of(state_machine, build)?;
            let name = arn.rsplit(':').next().unwrap_or_default().to_owned();
            let started = execution::Started {
                arn,
                name,
                existing: false,
            };
            let text = cli.output == Output::Text && *follow;
            let interval = Duration::from_secs(1);
            // Without --follow, a running build is reported as it stands now.
            let ended = if *follow {
                execution::follow(&sfn, &started.arn, interval, |p| {
                    if text {
                        show(&p)
                    }
                })
                .await?
            } else {
                execution::describe(&sfn, &started.arn).await?
            };
            return finish(cli.output, &started, &ended);
        }
        Command::Images { recipe } => {
            let ctx = Context::from_env().await;
            let images = retention::images(&ctx, &recipe_name(recipe)?).await?;
            print(cli.output, &images, || images_table(&images));
        }
        Command::Promote {
            recipe,
            image,
            mv,
            force,
        } => {
            let ctx = Context::from_env().await;
            let image = image.parse()?;
            let moved = promotion::promote(
                &ctx,
                &recipe_name(recipe)?,
                &mv.channel()?,
                &image,
                mv.why(),
                *force,
            )
            .await?;
            print(cli.output, &moved, || moved_text(&moved));
        }
        Command::Rollback { recipe, mv } => {
            let ctx = Context::from_env().await;
            let moved =
                promotion::rollback(&ctx, &recipe_name(recipe)?, &mv.channel()?, mv.why()).await?;
            print(cli.output, &moved, || moved_text(&moved));
        }
        Command::Demote { recipe, mv } => {
            let ctx = Context::from_env().await;
            let moved =
                promotion::demote(&ctx, &recipe_name(recipe)?, &mv.channel()?, mv.why()).await?;
            print(cli.output, &moved, || moved_text(&moved));
        }
        Command::History { recipe, channel } => {
            let ctx = Context::from_env().await;
            let versions =
                promotion::history(&ctx, &recipe_name(recipe)?, &channel.parse()?).await?;
            print(cli.output, &versions, || {
                let mut lines = vec![format!(
                    "{:<4} {:<22} {:<22} {:<9} {:<16} {}",
                    "VER", "WHEN", "IMAGE", "ACTION", "ACTOR", "REASON"
                )];
                lines.extend(versions.iter().map(|v| {
                    let (action, actor, reason) = v.record.as_ref().map_or(
                        ("?".to_owned(), "-", "(not written by kiln)"),
                        |r| {
                            let action = if r.forced {
                                format!("{} (forced)", r.action)
                            } else {
                                r.action.to_string()
                            };
                            (action, r.actor.as_str(), r.reason.as_str())
                        },
                    );
                    format!(
                        "{:<4} {:<22} {:<22} {:<9} {:<16} {}",
                        v.version,
                        v.at.as_deref().unwrap_or("-"),
                        v.image_id,
                        action,
                        actor,
                        reason
                    )
                }));
                if versions.is_empty() {
                    lines.push(format!("{channel} has no pointer"));
                }
                lines.join("\n")
            });
        }
        Command::Prune {
            recipe,
            keep,
            dry_run,
        } => {
            let ctx = Context::from_env().await;
            let pruning = retention::prune(&ctx, &recipe_name(recipe)?, *keep, *dry_run).await?;
            print(cli.output, &pruning, || {
                let verb = if pruning.dry_run {
                    "would go"
                } else {
                    "removed"
                };
                let mut lines: Vec<String> = pruning
                    .pruned
                    .iter()
                    .map(|p| {
                        format!(
                            "{verb:<10} {} {} ({} snapshot(s))",
                            p.image_id,
                            p.name,
                            p.snapshots.len()
                        )
                    })
                    .collect();
                lines.extend(pruning.kept.iter().map(|k| {
                    let why: Vec<String> = k.why.iter().map(ToString::to_string).collect();
                    format!(
                        "{:<10} {} {}: {}",
                        "kept",
                        k.image_id,
                        k.name,
                        why.join("; ")
                    )
                }));
                if lines.is_empty() {
                    lines.push(format!("recipe {} has no images", pruning.recipe));
                }
                lines.join("\n")
            });
        }
        Command::Doctor { recipe } => {
            let ctx = Context::from_env().await;
            let recipe = recipe_name(recipe)?;
            let changes = promotion::sync_tags(&ctx, &recipe).await?;
            print(cli.output, &changes, || {
                if changes.is_empty() {
                    return format!("recipe {recipe}: every tag agrees with the pointers");
                }
                tag_lines(&changes).join("\n")
            });
        }
        Command::Sweep {
            dry_run,
            state_machine,
        } => {
            let config = aws_config::load_from_env().await;
            let settings = Settings {
                state_machine_arn: Some(state_machine.clone()),
                ..Settings::from_env()
            };
            let swept = kiln::sweep::sweep(&Context::new(&config, settings), *dry_run).await?;
            print(cli.output, &swept, || sweep_text(&swept));
        }
        Command::Audit {
            regions,
            all_regions,
            account_roles,
            channel,
            service_tag,
            concurrency,
            html,
        } => {
            let scope = audit::Request {
                regions: regions.clone(),
                all_regions: *all_regions,
                account_roles: account_roles.clone(),
                channel: channel.parse()?,
                service_tag: service_tag.clone(),
                concurrency: *concurrency,
            }
            .scope()?;
            let report = audit::audit(&aws_config::load_from_env().await, &scope).await;
            if let Some(file) = html {
                std::fs::write(file, audit::html::render(&report)).map_err(|err| {
                    Error::InvalidInput(format!("cannot write {}: {err}", file.display()))
                })?;
            }
            print(cli.output, &report, || report.table());
            let parts = report.incomplete();
            if parts > 0 {
                return Err(Error::AuditIncomplete { parts });
            }
        }
        Command::Rollout { action } => rollout_command(cli.output, action).await?,
        Command::Builds {
            recipe,
            limit,
            state_machine,
        } => {
            let sfn = aws_sdk_sfn::Client::new(&aws_config::load_from_env().await);
            let builds = execution::list(&sfn, state_machine, recipe.as_deref(), *limit).await?;
            print(cli.output, &builds, || {
                let mut lines = vec![format!(
                    "{:<40} {:<10} {:<22} {}",
                    "BUILD", "STATUS", "STARTED", "ENDED"
                )];
                lines.extend(builds.iter().map(|b| {
                    format!(
                        "{:<40} {:<10} {:<22} {}",
                        b.name,
                        b.status,
                        b.started,
                        b.stopped.as_deref().unwrap_or("-")
                    )
                }));
                lines.join("\n")
            });
        }
    }
    Ok(())
}

async fn context(source_parameter: &Option<String>) -> (aws_config::SdkConfig, Context) {
    let config = aws_config::load_from_env().await;
    let settings = Settings {
        source_parameter: source_parameter.clone(),
        ..Settings::from_env()
    };
    let ctx = Context::new(&config, settings);
    (config, ctx)
}

fn show(progress: &Progress) {
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

fn finish(
    output: Output,
    started: &execution::Started,
    ended: &execution::Ended,
) -> Result<(), Error> {
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
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"build": started.name, "arn": started.arn, "status": ended.status,
                "image_id": image, "skipped": skipped, "error": ended.error, "cause": ended.cause})
        ),
        Output::Text => match (ended.status.as_str(), image) {
            ("RUNNING", _) => println!(
                "build {} is running; kiln status {} --follow waits for it",
                started.name, started.name
            ),
            ("SUCCEEDED", Some(image)) if skipped => {
                println!(
                    "up to date: {image} was built and tested from the same inputs; nothing to do"
                )
            }
            ("SUCCEEDED", Some(image)) => println!("built and tested {image}"),
            (status, _) => {
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
    if matches!(ended.status.as_str(), "SUCCEEDED" | "RUNNING") {
        Ok(())
    } else {
        Err(Error::BuildFailed {
            build: started.name.clone(),
            status: ended.status.clone(),
            error: ended.error.clone().unwrap_or_default(),
        })
    }
}

fn images_table(images: &[retention::ImageInfo]) -> String {
    let mut lines = vec![format!(
        "{:<22} {:<11} {:>4} {:<10} {:<16} {:<16} {}",
        "IMAGE", "CREATED", "AGE", "STAGE", "CHANNELS", "PREVIOUS", "INSTANCES"
    )];
    let join = |set: &std::collections::BTreeSet<Channel>| {
        let names: Vec<&str> = set.iter().map(Channel::as_str).collect();
        if names.is_empty() {
            "-".to_owned()
        } else {
            names.join(",")
        }
    };
    lines.extend(images.iter().map(|i| {
        format!(
            "{:<22} {:<11} {:>4} {:<10} {:<16} {:<16} {}",
            i.image_id,
            i.created
                .as_deref()
                .map_or("-", |c| c.get(..10).unwrap_or(c)),
            i.age_days.map_or("-".to_owned(), |d| format!("{d}d")),
            i.stage.as_deref().unwrap_or("-"),
            join(&i.standing.channels),
            join(&i.standing.previous),
            i.instances.len()
        )
    }));
    if images.is_empty() {
        lines.push("no images".into());
    }
    lines.join("\n")
}

fn sweep_text(swept: &kiln::sweep::Sweep) -> String {
    let verb = if swept.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut lines = Vec::new();
    for build in &swept.builds {
        let r = &build.removed;
        let mut what: Vec<String> = r.terminated.iter().map(ToString::to_string).collect();
        what.extend(r.deregistered.iter().map(ToString::to_string));
        what.extend(r.deleted_snapshots.iter().cloned());
        lines.push(format!(
            "build {} ({}): {verb} {}",
            build.build_id,
            build.why,
            what.join(", ")
        ));
    }
    if !swept.security_groups.is_empty() {
        lines.push(format!(
            "unused kiln security groups: {verb} {}",
            swept.security_groups.join(", ")
        ));
    }
    if !swept.running.is_empty() {
        let running: Vec<&str> = swept.running.iter().map(|b| b.as_str()).collect();
        lines.push(format!("left alone, still running: {}", running.join(", ")));
    }
    if !swept.unknown.is_empty() {
        let unknown: Vec<&str> = swept.unknown.iter().map(|b| b.as_str()).collect();
        lines.push(format!(
            "left alone, no execution here but younger than their longest build (another kiln's?): {}",
            unknown.join(", ")
        ));
    }
    if lines.is_empty() {
        lines.push("nothing to sweep".into());
    }
    lines.join("\n")
}

async fn rollout_command(output: Output, action: &Rollout) -> Result<(), Error> {
    let ctx = Context::from_env().await;
    match action {
        Rollout::Status { recipe } => {
            let overview = rollout::control::overview(&ctx, &recipe_name(recipe)?).await?;
            print(output, &overview, || overview_text(&overview));
        }
        Rollout::Start {
            recipe,
            image,
            check_seconds,
        } => {
            let image = image.parse()?;
            let arn = rollout::control::start(&ctx, &recipe_name(recipe)?, &image, *check_seconds)
                .await?;
            print(
                output,
                &serde_json::json!({"release": image, "arn": arn}),
                || format!("release of {image} started\n  {arn}"),
            );
        }
        Rollout::Pause {
            recipe,
            reason,
            actor,
        } => {
            let recipe = recipe_name(recipe)?;
            let hold = rollout::gates::Hold {
                actor: actor.clone(),
                reason: reason.clone(),
            };
            rollout::gates::set_hold(&ctx, &recipe, Some(&hold)).await?;
            print(
                output,
                &serde_json::json!({"recipe": recipe, "hold": hold}),
                || {
                    format!(
                        "releases of {recipe} paused: no promotion and no new wave until kiln rollout resume {recipe}"
                    )
                },
            );
        }
        Rollout::Resume { recipe } => {
            let recipe = recipe_name(recipe)?;
            rollout::gates::set_hold(&ctx, &recipe, None).await?;
            print(
                output,
                &serde_json::json!({"recipe": recipe, "hold": null}),
                || format!("releases of {recipe} go on at their next check"),
            );
        }
        Rollout::Abort { recipe, reason } => {
            let recipe = recipe_name(recipe)?;
            let aborted = rollout::control::abort(&ctx, &recipe, reason).await?;
            print(output, &aborted, || {
                format!(
                    "releases stopped: {}\nrefreshes cancelled: {}\npointers unchanged (kiln rollback moves one back)",
                    list_or_none(&aborted.stopped),
                    list_or_none(&aborted.cancelled)
                )
            });
        }
    }
    Ok(())
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn overview_text(overview: &rollout::control::Overview) -> String {
    let mut lines = vec![format!("recipe {}", overview.recipe)];
    lines.push(format!("{:<16} {:<22} {}", "CHANNEL", "IMAGE", "VERSION"));
    lines.extend(
        overview
            .pointers
            .iter()
            .map(|p| format!("{:<16} {:<22} {}", p.channel, p.image_id, p.version)),
    );
    lines.push(match &overview.hold {
        Some(hold) => format!("hold: paused by {}: {}", hold.actor, hold.reason),
        None => "hold: none".to_owned(),
    });
    lines.push(format!(
        "{:<24} {:<10} {:>4} {:<28} {:<32} {:>9}  {}",
        "GROUP", "CHANNEL", "WAVE", "TEMPLATE", "IMAGE", "INSTANCES", "REFRESH"
    ));
    for group in &overview.groups {
        let image = group.image_id.as_deref().unwrap_or("-");
        let image = if group.current {
            format!("{image} (current)")
        } else {
            image.to_owned()
        };
        let refresh = match (&group.problem, &group.refresh) {
            (Some(problem), _) => format!("cannot be rolled: {problem}"),
            (None, Some(r)) => format!("{} {}%", r.status, r.percent.unwrap_or_default()),
            (None, None) => "-".to_owned(),
        };
        lines.push(format!(
            "{:<24} {:<10} {:>4} {:<28} {:<32} {:>9}  {refresh}",
            group.name,
            group.channel.as_ref().map_or("-", Channel::as_str),
            group.wave,
            group.template.as_deref().unwrap_or("-"),
            image,
            group.instances,
        ));
    }
    lines.push(match &overview.releases {
        None => "releases running: unknown (set KILN_RELEASE_STATE_MACHINE_ARN)".to_owned(),
        Some(running) if running.is_empty() => "releases running: none".to_owned(),
        Some(running) => format!(
            "releases running: {}",
            running
                .iter()
                .map(|r| format!("{} (since {})", r.name, r.started))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    lines.join("\n")
}

fn moved_text(moved: &Moved) -> String {
    let mut lines = vec![moved.message.clone()];
    lines.extend(tag_lines(&moved.tags));
    lines.join("\n")
}

fn tag_lines(changes: &[promotion::TagChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| {
            format!(
                "  tag {} {}: {} -> {}",
                c.image_id,
                c.key,
                c.from.as_deref().unwrap_or("(none)"),
                c.to.as_deref().unwrap_or("(none)")
            )
        })
        .collect()
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
        // The build's or audit's own JSON document already said how it ended.
        Output::Json
            if matches!(
                err,
                Error::BuildFailed { .. } | Error::AuditIncomplete { .. }
            ) => {}
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
