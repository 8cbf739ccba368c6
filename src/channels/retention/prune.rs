//! Retention: an image no rule keeps is retired in three runs, never at
//! once. It is deprecated (EC2's deprecation time: still launchable, shown
//! as deprecated); once that time has passed it is disabled (it can neither
//! launch nor be shared, and `EnableImage` brings it back; kiln records when
//! in `kiln:disabled-at`); once the recipe's grace period (`[retention]
//! grace_days`, 14 by default) has passed since, it is deregistered with its
//! snapshots. An image goes with its copies, which follow it stage by stage.
//!
//! An image is kept when it is among the newest `keep`; on a channel, or
//! what a channel would roll back to (read from the pointers, again right
//! before each change); protected from deregistration; used by an instance
//! in any state but terminated; named by any version of any launch template
//! (by its id, or by a pinned version of a kiln pointer); launched within
//! the recipe's window (`used_within_days`, 30 by default, by EC2's
//! `LastLaunchedTime`; kiln's own test launch, before the image was marked
//! tested, does not count); or seen running by the fleet audit's latest report in
//! any audited account or region. The same holds of any of its copies. A
//! kept image that was deprecated has its deprecation lifted; a kept image
//! that is disabled stays so until `kiln restore` (only a person decides to
//! launch a retired image again).

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tracing::{info, instrument};

use super::holds::{self, Audited};
use super::inventory::{CopyInfo, ImageInfo, images};
use crate::aws::Context;
use crate::aws::images as ec2_images;
use crate::channels::pointers;
use crate::error::{Error, Result};
use crate::ids::{AmiId, RecipeName};
use crate::recipe::schema::Retention;
use crate::security;
use crate::tags;

const DAY: i64 = 86_400;

/// Why retention keeps an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, strum::Display)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Keep {
    /// Among the newest `keep` images.
    #[strum(to_string = "among the newest {0}")]
    Newest(usize),
    /// A channel names it.
    #[strum(to_string = "on channel {0}")]
    OnChannel(String),
    /// A channel would roll back to it.
    #[strum(to_string = "previous on channel {0}")]
    Previous(String),
    /// Deregistration protection is on (the sync turns it off once no
    /// channel holds the image).
    #[strum(to_string = "protected from deregistration{0}")]
    Protected(String),
    /// Instances hold it.
    #[strum(to_string = "used by {0}")]
    UsedBy(String),
    /// Launch template versions name it.
    #[strum(to_string = "in launch template {0}")]
    InLaunchTemplate(String),
    /// An instance launched from it within the recipe's window.
    #[strum(to_string = "launched {0}")]
    LaunchedRecently(String),
    /// The fleet audit's latest report saw it running.
    #[strum(to_string = "seen running by the audit: {0}")]
    SeenByAudit(String),
}

/// An image retention keeps, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kept {
    /// The image.
    pub image_id: AmiId,
    /// Its name.
    pub name: String,
    /// Every reason it stays.
    pub why: Vec<Keep>,
    /// What the run did (or would do) about an earlier retirement: a
    /// deprecation lifted, or why a disabled image stays disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The stage a retiring image moves to in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Step {
    /// Given a deprecation time.
    Deprecate,
    /// Disabled.
    Disable,
    /// Deregistered with its snapshots (and its copies with theirs).
    Deregister,
    /// Nothing yet: its deprecation time or grace period has not passed.
    Wait,
}

/// An image on its way out: what this run did to it (or would, dry).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retiring {
    /// The image.
    pub image_id: AmiId,
    /// Its name.
    pub name: String,
    /// When it was made.
    pub created: Option<String>,
    /// Its EC2 state before the run.
    pub state: String,
    /// The step.
    pub step: Step,
    /// Where it stands and why, in words.
    pub detail: String,
    /// Its snapshots.
    pub snapshots: Vec<String>,
    /// Its copies, which take the same step.
    pub copies: Vec<CopyInfo>,
}

/// What a retention run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pruning {
    /// The recipe.
    pub recipe: RecipeName,
    /// Nothing changed: each step is what would happen.
    pub dry_run: bool,
    /// The time the run went by.
    pub at: Timestamp,
    /// The recipe's retention settings.
    pub retention: Retention,
    /// The audit report read, if any.
    pub audit: Audited,
    /// The images on their way out.
    pub retiring: Vec<Retiring>,
    /// The images kept, each with its reasons.
    pub kept: Vec<Kept>,
}

impl Pruning {
    /// The images this run deregistered (or would).
    pub fn deregistered(&self) -> impl Iterator<Item = &Retiring> {
        self.retiring.iter().filter(|r| r.step == Step::Deregister)
    }
}

/// Moves each of `recipe`'s images beyond the newest `keep` that nothing
/// holds one stage further out (see the module), as of `now`. With
/// `dry_run`, only reports.
#[instrument(skip(ctx))]
pub async fn prune(
    ctx: &Context,
    recipe: &RecipeName,
    keep: usize,
    dry_run: bool,
    now: Timestamp,
) -> Result<Pruning> {
    if keep == 0 {
        return Err(Error::InvalidInput(
            "keep at least 1 image: the newest may belong to a build still running".into(),
        ));
    }
    let retention = ctx
        .recipe(recipe)
        .map(|r| r.file.retention)
        .unwrap_or_default();
    let audit = holds::audited(ctx).await?;
    let rules = Rules {
        keep,
        now,
        retention: &retention,
        audit: &audit,
    };
    let mut retiring = Vec::new();
    let mut kept = Vec::new();
    for (rank, mut info) in images(ctx, recipe).await?.into_iter().enumerate() {
        if !dry_run && rules.reasons(&info, rank).is_empty() {
            // A promotion may have moved a pointer since the images were
            // read: read the pointers again right before changing anything.
            info.standing = pointers::channel_map(ctx, recipe)
                .await?
                .images
                .remove(info.image_id.as_str())
                .unwrap_or_default();
        }
        let why = rules.reasons(&info, rank);
        if why.is_empty() {
            retiring.push(retire(ctx, recipe, info, &rules, dry_run).await?);
        } else {
            let note = reinstate(ctx, recipe, &info, dry_run).await?;
            kept.push(Kept {
                image_id: info.image_id,
                name: info.name,
                why,
                note,
            });
        }
    }
    Ok(Pruning {
        recipe: recipe.clone(),
        dry_run,
        at: now,
        retention,
        audit,
        retiring,
        kept,
    })
}

/// What decides whether an image stays.
struct Rules<'a> {
    keep: usize,
    now: Timestamp,
    retention: &'a Retention,
    audit: &'a Audited,
}

impl Rules<'_> {
    fn reasons(&self, info: &ImageInfo, rank: usize) -> Vec<Keep> {
        let mut why = Vec::new();
        if rank < self.keep {
            why.push(Keep::Newest(self.keep));
        }
        let names = |set: &std::collections::BTreeSet<crate::ids::Channel>| {
            set.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        why.extend(
            names(&info.standing.channels)
                .into_iter()
                .map(Keep::OnChannel),
        );
        why.extend(
            names(&info.standing.previous)
                .into_iter()
                .map(Keep::Previous),
        );
        let time = |raw: Option<&str>| raw.and_then(|t| t.parse::<Timestamp>().ok());
        let tested = time(info.staged_at.as_deref());
        let launched = |raw: Option<&str>| time(raw).filter(|at| tested.is_none_or(|t| *at > t));
        let home = Held {
            image_id: info.image_id.as_str(),
            protected: info.protected,
            last_launched: launched(info.last_launched.as_deref()),
            instances: &info.instances,
            templates: &info.launch_templates,
        };
        self.held(&home, "", &mut why);
        for copy in &info.copies {
            let there = format!(" in {}", copy.region);
            why.extend(
                copy.channels
                    .iter()
                    .map(|c| Keep::OnChannel(format!("{c}{there}"))),
            );
            let held = Held {
                image_id: copy.image_id.as_str(),
                protected: copy.protected,
                last_launched: launched(copy.last_launched.as_deref()),
                instances: &copy.instances,
                templates: &copy.launch_templates,
            };
            self.held(&held, &there, &mut why);
        }
        why
    }

    /// The reasons one image (the source, or a copy `there`) gives.
    fn held(&self, image: &Held, there: &str, why: &mut Vec<Keep>) {
        if image.protected {
            why.push(Keep::Protected(there.to_owned()));
        }
        if !image.instances.is_empty() {
            why.push(Keep::UsedBy(format!(
                "{}{there}",
                image.instances.join(", ")
            )));
        }
        if !image.templates.is_empty() {
            why.push(Keep::InLaunchTemplate(format!(
                "{}{there}",
                image.templates.join(", ")
            )));
        }
        let window = SignedDuration::from_secs(i64::from(self.retention.used_within_days) * DAY);
        if let Some(launched) = image.last_launched
            && self.now.duration_since(launched) < window
        {
            why.push(Keep::LaunchedRecently(format!(
                "{launched}{there}, within {} days",
                self.retention.used_within_days
            )));
        }
        for seen in self.audit.seen.get(image.image_id).into_iter().flatten() {
            why.push(Keep::SeenByAudit(format!(
                "{} instance(s) in account {} {}{}",
                seen.instances,
                seen.account,
                seen.region,
                self.audit
                    .generated_at
                    .map(|at| format!(" (report of {at})"))
                    .unwrap_or_default()
            )));
        }
    }
}

/// One image's facts that can hold it.
struct Held<'a> {
    image_id: &'a str,
    protected: bool,
    last_launched: Option<Timestamp>,
    instances: &'a [String],
    templates: &'a [String],
}

/// Takes `info` one stage further out (see the module), or only says which
/// with `dry_run`.
async fn retire(
    ctx: &Context,
    recipe: &RecipeName,
    info: ImageInfo,
    rules: &Rules<'_>,
    dry_run: bool,
) -> Result<Retiring> {
    let now = rules.now;
    let grace = SignedDuration::from_secs(i64::from(rules.retention.grace_days) * DAY);
    let when = |t: Timestamp| t.strftime("%Y-%m-%d %H:%M UTC").to_string();
    let time = |raw: Option<&str>| raw.and_then(|t| t.parse::<Timestamp>().ok());
    let (step, detail) = if info.state == "disabled" {
        match time(info.disabled_at.as_deref()) {
            None => (
                Step::Disable,
                "disabled outside retention: its grace period starts now".to_owned(),
            ),
            Some(at) if now >= at + grace => (
                Step::Deregister,
                format!(
                    "disabled {} ({} days' grace passed)",
                    when(at),
                    rules.retention.grace_days
                ),
            ),
            Some(at) => (
                Step::Wait,
                format!(
                    "disabled {}; deregistered from {} (`kiln restore {recipe} {}` until then)",
                    when(at),
                    when(at + grace),
                    info.image_id
                ),
            ),
        }
    } else {
        match time(info.deprecation_time.as_deref()) {
            None => (
                Step::Deprecate,
                format!(
                    "past the newest {} and nothing holds it: deprecated now, disabled next run, \
                     deregistered {} days after that",
                    rules.keep, rules.retention.grace_days
                ),
            ),
            Some(at) if at > now => (
                Step::Wait,
                format!("deprecated from {}; disabled after that", when(at)),
            ),
            Some(at) => (
                Step::Disable,
                format!(
                    "deprecated since {}; deregistered from {} unless restored",
                    when(at),
                    when(now + grace)
                ),
            ),
        }
    };
    if !dry_run {
        apply(ctx, &info, step, now).await?;
        info!(image = %info.image_id, %step, copies = info.copies.len(), "retired");
    }
    Ok(Retiring {
        image_id: info.image_id,
        name: info.name,
        created: info.created,
        state: info.state,
        step,
        detail,
        snapshots: info.snapshots,
        copies: info.copies,
    })
}

/// Takes `step` on the image and its copies (the copies first: a run stopped
/// halfway leaves the source a stage behind, found again next time).
async fn apply(ctx: &Context, info: &ImageInfo, step: Step, now: Timestamp) -> Result<()> {
    // EC2 refuses a deprecation time in the past and rounds to the minute.
    let deprecate_at = Timestamp::from_second((now.as_second() / 60 + 2) * 60)
        .map_err(|err| Error::InvalidInput(format!("no deprecation time after {now}: {err}")))?;
    for copy in &info.copies {
        let there = ctx.in_region(&copy.region);
        let id = copy.image_id.as_str();
        match step {
            Step::Deprecate if copy.deprecation_time.is_none() => {
                ec2_images::deprecate(&there, id, Some(deprecate_at)).await?;
            }
            Step::Disable if copy.state != "disabled" => {
                ec2_images::set_enabled(&there, id, false).await?;
            }
            Step::Deregister => {
                ec2_images::deregister(&there, &copy.image_id, &copy.snapshots).await?;
            }
            _ => {}
        }
    }
    let id = info.image_id.as_str();
    match step {
        Step::Deprecate => ec2_images::deprecate(ctx, id, Some(deprecate_at)).await?,
        Step::Disable => {
            if info.state != "disabled" {
                ec2_images::set_enabled(ctx, id, false).await?;
            }
            let at = now.to_string();
            ec2_images::set_tag(ctx, id, tags::DISABLED_AT, Some(&at)).await?;
        }
        Step::Deregister => {
            ec2_images::deregister(ctx, &info.image_id, &info.snapshots).await?;
            security::forget(ctx, &info.image_id).await?;
        }
        Step::Wait => {}
    }
    Ok(())
}

/// For a kept image that retention had started to retire: lifts its (and
/// its copies') deprecation, so it is not retired by mistake later; a
/// disabled one stays disabled. Returns what it did, in words.
async fn reinstate(
    ctx: &Context,
    recipe: &RecipeName,
    info: &ImageInfo,
    dry_run: bool,
) -> Result<Option<String>> {
    if info.state == "disabled" {
        return Ok(Some(format!(
            "disabled: `kiln restore {recipe} {}` to launch it again",
            info.image_id
        )));
    }
    let deprecated: Vec<(Context, &str)> = info
        .deprecation_time
        .is_some()
        .then(|| (ctx.clone(), info.image_id.as_str()))
        .into_iter()
        .chain(
            info.copies
                .iter()
                .filter(|c| c.deprecation_time.is_some())
                .map(|c| (ctx.in_region(&c.region), c.image_id.as_str())),
        )
        .collect();
    if deprecated.is_empty() {
        return Ok(None);
    }
    if dry_run {
        return Ok(Some("its deprecation would be lifted".into()));
    }
    for (there, id) in deprecated {
        ec2_images::deprecate(&there, id, None).await?;
    }
    Ok(Some("deprecation lifted".into()))
}
