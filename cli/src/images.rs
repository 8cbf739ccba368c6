//! A recipe's images: what each is and what holds it, what changed between
//! two, and retention.

use std::collections::BTreeSet;
use std::time::Duration;

use clap::Subcommand;
use kiln::Error;
use kiln::channels::pointers;
use kiln::channels::retention::{self, ImageInfo, Pruning, Step};
use kiln::ids::{AmiId, Channel};
use kiln::ops::distribute::{self, Distributed};
use kiln::ops::restore::{self, Restored};
use kiln::security::diff::{self, Change, Diff, Side};
use kiln::security::scan::Finding;

use crate::args::{Output, context, recipe_name};
use crate::output::{print, table};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List a recipe's images: age, stage, channels, and what uses each.
    Images {
        /// The recipe (its name, or its directory).
        recipe: String,
    },
    /// Retire a recipe's old images one stage per run (deprecate, then
    /// disable, then deregister with their snapshots after the recipe's grace
    /// period), keeping the newest N and anything on a channel, previous on
    /// one, protected, used, launched lately, or seen by the fleet audit.
    Prune {
        /// The recipe (its name, or its directory).
        recipe: String,
        /// How many of the newest images to keep whatever else holds them.
        #[arg(long)]
        keep: usize,
        /// Only report each image's next step, and why each kept image stays.
        #[arg(long)]
        dry_run: bool,
    },
    /// Bring back an image retention disabled or deprecated (and its copies):
    /// enable it, lift its deprecation, share it again as the recipe says.
    Restore {
        /// The recipe (its name, or its directory).
        recipe: String,
        /// The image.
        image: AmiId,
    },
    /// What changed in the software between two images of a recipe, from
    /// their SBOMs (each checked against the digest tagged on its image):
    /// packages added, removed, upgraded and downgraded.
    Diff {
        /// The first image: its id, or a channel of --recipe (its image now).
        from: String,
        /// The second image: its id, or a channel of --recipe.
        to: String,
        /// The recipe whose channels FROM or TO name.
        #[arg(long)]
        recipe: Option<String>,
        /// The bucket holding the SBOMs (the stack's OutputBucketName;
        /// KILN_OUTPUT_BUCKET otherwise).
        #[arg(long)]
        bucket: Option<String>,
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
    let ctx = context(|settings| {
        if let Command::Diff {
            bucket: Some(bucket),
            ..
        } = command
        {
            settings.output_bucket = Some(bucket.clone());
        }
    })
    .await;
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
            let now = jiff::Timestamp::now();
            let pruning =
                retention::prune(&ctx, &recipe_name(recipe)?, *keep, *dry_run, now).await?;
            print(output, &pruning, || pruning_text(&pruning));
        }
        Command::Restore { recipe, image } => {
            let restored = restore::restore(&ctx, &recipe_name(recipe)?, image).await?;
            print(output, &restored, || restored_text(&restored));
        }
        Command::Diff {
            from, to, recipe, ..
        } => {
            let recipe = recipe.as_deref().map(recipe_name).transpose()?;
            let from_image = pointers::image_named(&ctx, recipe.as_ref(), from).await?;
            let to_image = pointers::image_named(&ctx, recipe.as_ref(), to).await?;
            let diff = diff::diff(
                &ctx,
                recipe.as_ref(),
                (from.as_str(), from_image),
                (to.as_str(), to_image),
            )
            .await?;
            print(output, &diff, || diff_text(&diff));
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

fn diff_text(diff: &Diff) -> String {
    let name = |side: &Side| {
        if side.asked == side.image.as_str() {
            side.image.to_string()
        } else {
            format!("{} ({})", side.image, side.asked)
        }
    };
    let mut lines = vec![
        format!(
            "recipe {}: {} -> {}",
            diff.recipe,
            name(&diff.from),
            name(&diff.to)
        ),
        format!(
            "installed packages: {} -> {}",
            diff.from.packages, diff.to.packages
        ),
    ];
    let mut section = |title: &str, rows: Vec<String>| {
        lines.push(format!("{title} ({}):", rows.len()));
        if rows.is_empty() {
            lines.push("  none".into());
        }
        lines.extend(rows.into_iter().map(|row| format!("  {row}")));
    };
    let package = |p: &diff::Package| format!("{} {} ({})", p.name, p.version, p.arch);
    let change = |c: &Change| format!("{} {} -> {} ({})", c.name, c.from, c.to, c.arch);
    section("added", diff.added.iter().map(package).collect());
    section("removed", diff.removed.iter().map(package).collect());
    section("upgraded", diff.upgraded.iter().map(change).collect());
    section("downgraded", diff.downgraded.iter().map(change).collect());
    match &diff.vulnerabilities {
        Some(cves) => {
            let cve = |f: &Finding| {
                let fix = f
                    .fixed
                    .as_deref()
                    .map_or("no fix".into(), |v| format!("fixed in {v}"));
                let exploit = if f.exploit_available {
                    ", exploit available"
                } else {
                    ""
                };
                format!(
                    "{} {} {} {} ({fix}{exploit})",
                    f.id, f.severity, f.package, f.installed
                )
            };
            section("CVEs fixed", cves.fixed.iter().map(cve).collect());
            section("CVEs introduced", cves.introduced.iter().map(cve).collect());
        }
        None => lines.push(
            "CVEs: not compared (an image has no findings: scanned before kiln scanned SBOMs)"
                .into(),
        ),
    }
    lines.join("\n")
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
        "STATE",
        "PROTECTED",
        "STAGE",
        "CRIT/HIGH",
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
            match (&i.deprecation_time, i.state.as_str()) {
                (Some(at), "available") => format!("deprecated {}", at.get(..10).unwrap_or(at)),
                (_, state) => state.to_owned(),
            },
            if i.protected { "yes" } else { "-" }.to_owned(),
            i.stage.clone().unwrap_or_else(|| "-".into()),
            i.findings
                .map_or("-".to_owned(), |f| format!("{}/{}", f.critical, f.high)),
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
    let verb = |step: Step| match (pruning.dry_run, step) {
        (_, Step::Wait) => "waiting",
        (true, Step::Deprecate) => "would deprecate",
        (true, Step::Disable) => "would disable",
        (true, Step::Deregister) => "would deregister",
        (false, Step::Deprecate) => "deprecated",
        (false, Step::Disable) => "disabled",
        (false, Step::Deregister) => "deregistered",
    };
    let mut lines: Vec<String> = pruning
        .retiring
        .iter()
        .map(|r| {
            let copies: Vec<String> = r
                .copies
                .iter()
                .map(|c| format!(", {} in {}", c.image_id, c.region))
                .collect();
            format!(
                "{:<17} {} {}{}: {}",
                verb(r.step),
                r.image_id,
                r.name,
                copies.concat(),
                r.detail
            )
        })
        .collect();
    lines.extend(pruning.kept.iter().map(|k| {
        let why: Vec<String> = k.why.iter().map(ToString::to_string).collect();
        let note = k
            .note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        format!(
            "{:<17} {} {}: {}{note}",
            "kept",
            k.image_id,
            k.name,
            why.join("; ")
        )
    }));
    if lines.is_empty() {
        lines.push(format!("recipe {} has no images", pruning.recipe));
    }
    if let Some(report) = &pruning.audit.report {
        lines.push(format!("fleet audit read: {report}"));
    }
    lines.join("\n")
}

fn restored_text(restored: &Restored) -> String {
    let mut lines = vec![if restored.changed {
        format!(
            "{} is enabled and no longer deprecated; retention retires it again unless something holds it",
            restored.image_id
        )
    } else {
        format!("{} was neither disabled nor deprecated", restored.image_id)
    }];
    lines.extend(
        restored
            .copies
            .iter()
            .map(|c| format!("  {} {} restored with it", c.region, c.image_id)),
    );
    if !restored.shared_with.is_empty() {
        lines.push(format!(
            "shared again with {}",
            restored.shared_with.join(", ")
        ));
    }
    lines.join("\n")
}
