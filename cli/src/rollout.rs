//! Hands-off releases: where a recipe's stand, and a hand on them.

use clap::Subcommand;
use kiln::Error;
use kiln::channels::rollout::{self, control, gates};
use kiln::ids::Channel;

use crate::args::{Output, context, default_actor, recipe_name};
use crate::output::{list_or_none, print, table};

#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// Release it over a running release of a newer image (which then
        /// stops where it stands); needs --reason.
        #[arg(long, requires = "reason")]
        force: bool,
        /// Why it is forced: recorded in the release and its events.
        #[arg(long, requires = "force")]
        reason: Option<String>,
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

pub async fn run(output: Output, command: &Command) -> Result<(), Error> {
    let ctx = context(|_| {}).await;
    match command {
        Command::Status { recipe } => {
            let overview = control::overview(&ctx, &recipe_name(recipe)?).await?;
            print(output, &overview, || overview_text(&overview));
        }
        Command::Start {
            recipe,
            image,
            check_seconds,
            force: _,
            reason,
        } => {
            let image = image.parse()?;
            let recipe = recipe_name(recipe)?;
            let forced = reason.as_deref();
            let arn = control::start(&ctx, &recipe, &image, *check_seconds, forced).await?;
            print(
                output,
                &serde_json::json!({"release": image, "arn": arn}),
                || format!("release of {image} started\n  {arn}"),
            );
        }
        Command::Pause {
            recipe,
            reason,
            actor,
        } => {
            let recipe = recipe_name(recipe)?;
            let hold = gates::Hold {
                actor: actor.clone(),
                reason: reason.clone(),
            };
            gates::set_hold(&ctx, &recipe, Some(&hold)).await?;
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
        Command::Resume { recipe } => {
            let recipe = recipe_name(recipe)?;
            gates::set_hold(&ctx, &recipe, None).await?;
            print(
                output,
                &serde_json::json!({"recipe": recipe, "hold": null}),
                || format!("releases of {recipe} go on at their next check"),
            );
        }
        Command::Abort { recipe, reason } => {
            let aborted = control::abort(&ctx, &recipe_name(recipe)?, reason).await?;
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

fn overview_text(overview: &control::Overview) -> String {
    let mut lines = vec![format!("recipe {}", overview.recipe)];
    lines.push(table(
        &["CHANNEL", "IMAGE", "VERSION"],
        &overview.pointers,
        |p| {
            vec![
                p.channel.to_string(),
                p.image_id.clone(),
                p.version.to_string(),
            ]
        },
    ));
    lines.push(match &overview.hold {
        Some(hold) => format!("hold: paused by {}: {}", hold.actor, hold.reason),
        None => "hold: none".to_owned(),
    });
    let header = [
        "GROUP",
        "REGION",
        "CHANNEL",
        "WAVE",
        "TEMPLATE",
        "IMAGE",
        "INSTANCES",
        "REFRESH",
    ];
    lines.push(table(&header, &overview.groups, |group| {
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
        vec![
            group.name.clone(),
            group.region.clone().unwrap_or_else(|| "home".into()),
            group
                .channel
                .as_ref()
                .map_or("-", Channel::as_str)
                .to_owned(),
            group.wave.to_string(),
            group.template.clone().unwrap_or_else(|| "-".into()),
            image,
            group.instances.to_string(),
            refresh,
        ]
    }));
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
