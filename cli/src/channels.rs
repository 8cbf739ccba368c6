//! The channels: promote, roll back, demote, their history, and the tags
//! brought back in line with the pointers.

use clap::Subcommand;
use kiln::Error;
use kiln::channels::pointers;
use kiln::channels::promotion::{self, Moved, Synced};

use crate::args::{MoveArgs, Output, context, recipe_name};
use crate::output::{print, table};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Point a channel at an image: deploy tools resolving the channel's
    /// parameter (`/kiln/<recipe>/<channel>`) launch it from then on.
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
    /// Bring a recipe's image tags in line with its channel pointers (after an
    /// interrupted promotion, or tags edited by hand).
    Doctor {
        /// The recipe (its name, or its directory).
        recipe: String,
    },
}

pub async fn run(output: Output, command: &Command) -> Result<(), Error> {
    let ctx = context(|_| {}).await;
    match command {
        Command::Promote {
            recipe,
            image,
            mv,
            force,
        } => {
            let image = image.parse()?;
            let (recipe, channel) = (recipe_name(recipe)?, mv.channel()?);
            let moved =
                promotion::promote(&ctx, &recipe, &channel, &image, mv.why(), *force).await?;
            print(output, &moved, || moved_text(&moved));
        }
        Command::Rollback { recipe, mv } => {
            let moved =
                promotion::rollback(&ctx, &recipe_name(recipe)?, &mv.channel()?, mv.why()).await?;
            print(output, &moved, || moved_text(&moved));
        }
        Command::Demote { recipe, mv } => {
            let moved =
                promotion::demote(&ctx, &recipe_name(recipe)?, &mv.channel()?, mv.why()).await?;
            print(output, &moved, || moved_text(&moved));
        }
        Command::History { recipe, channel } => {
            let versions =
                pointers::history(&ctx, &recipe_name(recipe)?, &channel.parse()?).await?;
            print(output, &versions, || {
                if versions.is_empty() {
                    return format!("{channel} has no pointer");
                }
                let header = ["VER", "WHEN", "IMAGE", "ACTION", "ACTOR", "REASON"];
                table(&header, &versions, |v| {
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
                    vec![
                        v.version.to_string(),
                        v.at.clone().unwrap_or_else(|| "-".into()),
                        v.image_id.clone(),
                        action,
                        actor.to_owned(),
                        reason.to_owned(),
                    ]
                })
            });
        }
        Command::Doctor { recipe } => {
            let recipe = recipe_name(recipe)?;
            let synced = promotion::sync(&ctx, &recipe).await?;
            print(output, &synced, || {
                if synced.tags.is_empty() && synced.regional.is_empty() {
                    return format!(
                        "recipe {recipe}: every regional pointer and tag agrees with the pointers"
                    );
                }
                synced_lines(&synced).join("\n")
            });
        }
    }
    Ok(())
}

fn moved_text(moved: &Moved) -> String {
    let mut lines = vec![moved.message.clone()];
    lines.extend(synced_lines(&moved.synced));
    lines.join("\n")
}

pub fn synced_lines(synced: &Synced) -> Vec<String> {
    let pointers = synced.regional.iter().map(|m| {
        let to = m.to.as_ref().map_or("(none)", |id| id.as_str());
        let place = match &m.account {
            Some(account) => format!("{} account {account}", m.region),
            None => m.region.clone(),
        };
        match &m.problem {
            Some(problem) => {
                let left = m
                    .from
                    .as_deref()
                    .map_or("as it was".into(), |f| format!("at {f}"));
                format!("  {place} {}: left {left}: {problem}", m.parameter)
            }
            None => {
                let from = m.from.as_deref().unwrap_or("(none)");
                format!("  {place} {}: {from} -> {to}", m.parameter)
            }
        }
    });
    let region = |r: &Option<String>| r.as_deref().map(|r| format!("{r} ")).unwrap_or_default();
    let tags = synced.tags.iter().map(|c| {
        format!(
            "  tag {}{} {}: {} -> {}",
            region(&c.region),
            c.image_id,
            c.key,
            c.from.as_deref().unwrap_or("(none)"),
            c.to.as_deref().unwrap_or("(none)")
        )
    });
    let protection = synced.protection.iter().map(|c| {
        let now = if c.protected {
            "protected from deregistration"
        } else {
            "no longer protected (on no channel, previous on none)"
        };
        format!("  {}{} {now}", region(&c.region), c.image_id)
    });
    pointers.chain(tags).chain(protection).collect()
}
