//! A recipe's images: what each is and what holds it, and retention.

use std::collections::BTreeSet;
use std::time::Duration;

use clap::Subcommand;
use kiln::Error;
use kiln::channels::retention::{self, ImageInfo, Pruning};
use kiln::ids::Channel;
use kiln::ops::distribute::{self, Distributed};

use crate::args::{Output, context, recipe_name};
use crate::output::{print, table};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List a recipe's images: age, stage, channels, and what uses each.
    Images {
        /// The recipe (its name, or its directory).
        recipe: String,
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
    /// Copy the images a recipe's channels name (and would roll back to) to
    /// each of its distribution regions that lacks them, wait for the
    /// copies, share them, and move the regional pointers.
    Distribute {
        /// The recipe (its name, or its directory).
        recipe: String,
    },
}

/// Longest pause between two reads of the copies `kiln distribute` waits for.
const MAX_COPY_POLL: Duration = Duration::from_secs(30);

pub async fn run(output: Output, command: &Command) -> Result<(), Error> {
    let ctx = context(|_| {}).await;
    match command {
        Command::Images { recipe } => {
            let images = retention::images(&ctx, &recipe_name(recipe)?).await?;
            print(output, &images, || images_table(&images));
        }
        Command::Prune {
            recipe,
            keep,
            dry_run,
        } => {
            let pruning = retention::prune(&ctx, &recipe_name(recipe)?, *keep, *dry_run).await?;
            print(output, &pruning, || pruning_text(&pruning));
        }
        Command::Distribute { recipe } => {
            let recipe = ctx.recipe(&recipe_name(recipe)?)?;
            let mut copies = distribute::start(&ctx, &recipe).await?;
            let started = copies.iter().filter(|c| c.started).count();
            eprintln!(
                "{} copies in {} region(s): {started} started now",
                copies.len(),
                recipe.file.distribution.regions.len()
            );
            let mut pause = Duration::from_secs(1);
            loop {
                let pending = distribute::follow(&ctx, &mut copies).await?;
                if pending == 0 {
                    break;
                }
                eprintln!(
                    "{pending} copy(ies) pending; next look in {} s",
                    pause.as_secs()
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_COPY_POLL);
            }
            let done = distribute::finish(&ctx, &recipe, copies).await?;
            print(output, &done, || distributed_text(&done));
        }
    }
    Ok(())
}

fn distributed_text(done: &Distributed) -> String {
    let mut lines: Vec<String> = done
        .copies
        .iter()
        .map(|c| {
            let how = if c.started { "copied" } else { "already there" };
            format!(
                "{} {} -> {} ({how})",
                c.copy.region, c.source, c.copy.image_id
            )
        })
        .collect();
    if lines.is_empty() {
        lines.push("nothing to copy: no channel image, or no distribution region".into());
    }
    if !done.shared_with.is_empty() {
        lines.push(format!("shared with {}", done.shared_with.join(", ")));
    }
    lines.extend(crate::channels::synced_lines(&done.synced));
    lines.join("\n")
}

fn images_table(images: &[ImageInfo]) -> String {
    if images.is_empty() {
        return "no images".into();
    }
    let join = |set: &BTreeSet<Channel>| {
        let names: Vec<&str> = set.iter().map(Channel::as_str).collect();
        if names.is_empty() {
            "-".to_owned()
        } else {
            names.join(",")
        }
    };
    let header = [
        "IMAGE",
        "CREATED",
        "AGE",
        "STAGE",
        "CHANNELS",
        "PREVIOUS",
        "INSTANCES",
        "COPIES",
    ];
    table(&header, images, |i| {
        vec![
            i.image_id.to_string(),
            i.created
                .as_deref()
                .map_or("-", |c| c.get(..10).unwrap_or(c))
                .to_owned(),
            i.age_days.map_or("-".to_owned(), |d| format!("{d}d")),
            i.stage.clone().unwrap_or_else(|| "-".into()),
            join(&i.standing.channels),
            join(&i.standing.previous),
            i.instances.len().to_string(),
            if i.copies.is_empty() {
                "-".to_owned()
            } else {
                i.copies
                    .iter()
                    .map(|c| format!("{} {}", c.region, c.image_id))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ]
    })
}

fn pruning_text(pruning: &Pruning) -> String {
    let verb = if pruning.dry_run {
        "would go"
    } else {
        "removed"
    };
    let mut lines: Vec<String> = pruning
        .pruned
        .iter()
        .map(|p| {
            let copies: Vec<String> = p
                .copies
                .iter()
                .map(|c| format!(", {} in {}", c.image_id, c.region))
                .collect();
            format!(
                "{verb:<10} {} {} ({} snapshot(s)){}",
                p.image_id,
                p.name,
                p.snapshots.len(),
                copies.concat()
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
}
