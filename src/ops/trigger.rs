//! What starts a build without anyone watching: the nightly schedule, a new
//! source release, a security finding.
//!
//! Schedules and releases start a build only when there is something new:
//! the source is resolved first, and an up-to-date recipe starts nothing (a
//! night with nothing new costs the resolve's few API calls, no execution).
//! Otherwise the build is named from the recipe and its fingerprint, so two
//! triggers for the same change start one build; when the build of that name
//! ended without leaving a tested image (it failed, or its image was pruned),
//! the next trigger tries again as `<name>-2`, `-3`, ... A security finding
//! forces a build (the source may be unchanged while its packages are not),
//! named from the recipe and a debounce window, so a storm of findings starts
//! at most one build per recipe per window. A finding whose exploit is
//! available (or scored at least the recipe's `fast_track_cvss`) skips the
//! window once per CVE: its build is named from the recipe and the CVE, and
//! goes on the security fast track (its release soaks each stage's
//! `security_soak_hours`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::info;

use crate::aws::{Context, images};
use crate::error::{Error, Result};
use crate::ids::{AmiId, RecipeName};
use crate::pipeline::state::{BuildInput, Reason};
use crate::pipeline::{build, source};
use crate::recipe::Recipe;
use crate::security::remediation::Exposure;
use crate::tags;

/// The time format of an Inspector finding event's `firstObservedAt`.
const FINDING_TIME: &str = "%b %d, %Y, %-I:%M:%S %p";

/// The debounce window of security builds unless `KILN_SECURITY_WINDOW_SECONDS` says otherwise.
pub const DEFAULT_SECURITY_WINDOW_SECONDS: u64 = 6 * 3600;

/// What a trigger did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Triggered {
    /// The recipe.
    pub recipe: String,
    /// Why.
    pub reason: Reason,
    /// The build started or found; absent when the recipe is up to date.
    pub build: Option<String>,
    /// Its execution.
    pub arn: Option<String>,
    /// True when the build had been started already (same change, or same
    /// security window).
    pub existing: bool,
    /// The image that is already up to date, when nothing was started.
    pub up_to_date: Option<AmiId>,
}

/// What a security finding says about its urgency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Urgency {
    /// The vulnerability (`detail.packageVulnerabilityDetails.vulnerabilityId`).
    pub cve: Option<String>,
    /// `detail.exploitAvailable` is `YES`.
    pub exploit_available: bool,
    /// `detail.inspectorScore`.
    pub score: Option<f64>,
    /// `detail.firstObservedAt` (`Nov 30, 2026, 2:00:00 AM`, UTC, as in
    /// AWS's sample event), else the event's `time`.
    pub first_seen: Option<jiff::Timestamp>,
}

impl Urgency {
    /// The urgency of an Inspector finding's `detail` (Amazon Inspector
    /// User Guide, EventBridge event schema: the finding event).
    pub fn of_finding(event: &Value) -> Self {
        let detail = &event["detail"];
        let observed = detail["firstObservedAt"].as_str().and_then(|at| {
            jiff::fmt::strtime::parse(FINDING_TIME, at)
                .and_then(|t| t.to_datetime())
                .and_then(|t| jiff::tz::TimeZone::UTC.to_timestamp(t))
                .ok()
        });
        let sent = event["time"].as_str().and_then(|t| t.parse().ok());
        Self {
            cve: detail["packageVulnerabilityDetails"]["vulnerabilityId"]
                .as_str()
                .map(str::to_owned),
            exploit_available: detail["exploitAvailable"].as_str() == Some("YES"),
            score: detail["inspectorScore"].as_f64(),
            first_seen: observed.or(sent),
        }
    }

    /// What a security build for this finding remedies: its CVE, when it
    /// names one.
    pub fn exposure(&self) -> Option<Exposure> {
        Some(Exposure {
            cves: vec![self.cve.clone()?],
            first_seen: self.first_seen,
        })
    }

    /// The CVE and why it is on the fast track for `recipe`, when it is:
    /// an exploit is available, or its score reaches the recipe's
    /// `fast_track_cvss`. A finding without a CVE id never is (the fast
    /// track is once per CVE).
    pub fn fast_track(&self, recipe: &Recipe) -> Option<(String, String)> {
        let cve = self.cve.clone()?;
        let threshold = recipe.file.security.fast_track_cvss;
        let why = if self.exploit_available {
            format!("{cve}: an exploit is available")
        } else {
            let (score, threshold) = self.score.zip(threshold)?;
            if score < threshold {
                return None;
            }
            format!("{cve}: Inspector score {score} is at least {threshold}")
        };
        Some((cve, why))
    }
}

/// Starts a build of `recipe` for `reason` on the context's state machine,
/// as the module describes; `now` picks the security debounce window, which
/// a fast-tracked finding (`urgency`) skips.
pub async fn start(
    ctx: &Context,
    recipe: &Recipe,
    reason: Reason,
    wait_seconds: Option<u32>,
    now: jiff::Timestamp,
    urgency: &Urgency,
) -> Result<Triggered> {
    build::state_machine(ctx)?;
    let force = reason == Reason::Security;
    let mut input = BuildInput::new(
        recipe,
        reason,
        force,
        wait_seconds.or(ctx.settings.wait_seconds),
    );
    if force {
        input.exposure = urgency.exposure();
    }
    let fast_track = urgency.fast_track(recipe).filter(|_| force);
    let started = if let Some((cve, why)) = fast_track {
        input.fast_track = Some(why);
        build::start(ctx, &fast_track_name(recipe, &cve), &input).await?
    } else if force {
        let window = ctx
            .settings
            .security_window_seconds
            .unwrap_or(DEFAULT_SECURITY_WINDOW_SECONDS);
        let name = security_name(recipe, window, now);
        build::start(ctx, &name, &input).await?
    } else {
        let source = source::resolve(ctx, recipe, false).await?;
        if let Some(image) = source.existing_image_id {
            info!(recipe = %recipe.name, %image, %reason, "up to date: nothing started");
            return Ok(Triggered {
                recipe: recipe.name.to_string(),
                reason,
                build: None,
                arn: None,
                existing: false,
                up_to_date: Some(image),
            });
        }
        let name = build::name(recipe, &source, false);
        build::start_retrying(ctx, &name, &input).await?
    };
    info!(build = %started.name, existing = started.existing, %reason, "build triggered");
    Ok(Triggered {
        recipe: recipe.name.to_string(),
        reason,
        build: Some(started.name),
        arn: Some(started.arn),
        existing: started.existing,
        up_to_date: None,
    })
}

/// A trigger's input: a schedule's constant input, or an event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledInput {
    /// The recipe.
    pub recipe: RecipeName,
    /// Why: `schedule` (nightly), `release` (the hourly source check),
    /// `security` or `manual`.
    pub reason: Reason,
    /// Seconds before the first poll of each piece of work.
    #[serde(default)]
    pub wait_seconds: Option<u32>,
}

/// The `start-build` Lambda: [`on_input`], now.
pub async fn handle(ctx: &Context, input: Value) -> Result<Vec<Triggered>> {
    on_input(ctx, input, jiff::Timestamp::now()).await
}

/// The detail type of Amazon Inspector's findings.
pub const INSPECTOR_FINDING: &str = "Inspector2 Finding";
/// The detail type of kiln's own security advisory event (`source: kiln`,
/// detail `{"recipe": …}`).
pub const SECURITY_UPDATE: &str = "Security Update Available";

/// Handles what a trigger delivers: a schedule's input
/// (`{"recipe", "reason", "wait_seconds"?}`), an Inspector finding about an
/// instance running kiln images, or kiln's `Security Update Available`
/// event. Returns a result per recipe concerned.
pub async fn on_input(ctx: &Context, input: Value, now: jiff::Timestamp) -> Result<Vec<Triggered>> {
    let Some(detail_type) = input.get("detail-type").and_then(Value::as_str) else {
        let scheduled: ScheduledInput = serde_json::from_value(input)
            .map_err(|err| Error::InvalidInput(format!("trigger input: {err}")))?;
        let recipe = ctx.recipe(&scheduled.recipe)?;
        let urgency = Urgency::default();
        let wait = scheduled.wait_seconds;
        return Ok(vec![
            start(ctx, &recipe, scheduled.reason, wait, now, &urgency).await?,
        ]);
    };
    let urgency = match detail_type {
        INSPECTOR_FINDING => Urgency::of_finding(&input),
        _ => Urgency::default(),
    };
    let recipes = match detail_type {
        INSPECTOR_FINDING => {
            let ids: Vec<String> = input["detail"]["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["details"]["awsEc2Instance"]["imageId"].as_str())
                .map(str::to_owned)
                .collect();
            recipes_of(ctx, &ids).await?
        }
        SECURITY_UPDATE => input["detail"]["recipe"]
            .as_str()
            .map(|r| vec![r.to_owned()])
            .ok_or_else(|| {
                Error::InvalidInput(format!("a {SECURITY_UPDATE:?} event names detail.recipe"))
            })?,
        other => {
            return Err(Error::InvalidInput(format!(
                "a trigger takes {INSPECTOR_FINDING:?} or {SECURITY_UPDATE:?} events, not {other:?}"
            )));
        }
    };
    let mut triggered = Vec::new();
    for name in recipes {
        let recipe = ctx.recipe(&name.parse()?)?;
        triggered.push(start(ctx, &recipe, Reason::Security, None, now, &urgency).await?);
    }
    Ok(triggered)
}

/// `<recipe>-sec-<start of the window>`: one name per recipe and window
/// (at most 79 characters).
fn security_name(recipe: &Recipe, window_seconds: u64, now: jiff::Timestamp) -> String {
    let window = i64::try_from(window_seconds.max(1)).unwrap_or(i64::MAX);
    let start = now.as_second().div_euclid(window) * window;
    format!("{}-sec-{start}", recipe.name)
}

/// `<recipe>-<cve>` (lower case, at most 80 characters, as execution names
/// are): one build per recipe and CVE, whatever the window.
fn fast_track_name(recipe: &Recipe, cve: &str) -> String {
    let cve: String = cve
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut name = format!("{}-{cve}", recipe.name);
    name.truncate(80);
    name
}

/// The recipes whose images `ids` are: a finding names the image an
/// instance runs; only kiln's images (tagged with their recipe) count.
pub async fn recipes_of(ctx: &Context, ids: &[String]) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // A filter, not ImageIds: an id that no longer exists must not fail the rest.
    let found = images::own(ctx, vec![images::filter("image-id", ids.iter().cloned())]).await?;
    let mut recipes: Vec<String> = found
        .iter()
        .filter_map(|i| tags::value(i.tags(), tags::RECIPE).map(str::to_owned))
        .collect();
    recipes.sort();
    recipes.dedup();
    Ok(recipes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_in_one_window_share_a_name_and_the_next_window_does_not() {
        let recipe = Recipe::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("images/ubuntu-base"),
        )
        .expect("recipe");
        let at = |s: i64| jiff::Timestamp::from_second(s).expect("time");
        let window = 3600;
        let first = security_name(&recipe, window, at(7_200));
        assert_eq!(first, "ubuntu-base-sec-7200");
        assert_eq!(security_name(&recipe, window, at(10_799)), first);
        assert_ne!(security_name(&recipe, window, at(10_800)), first);
    }
}
