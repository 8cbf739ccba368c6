//! Proof of remediation: after a security release reaches its last stage,
//! the release state machine watches (a Wait loop calling [`check`]) until
//! Amazon Inspector reports no ACTIVE finding of the CVEs that triggered it
//! on any instance running an image of the recipe, in the build region and
//! every distribution region.
//!
//! Each check lists the findings of those CVEs on EC2 instances, ACTIVE and
//! CLOSED (`ListFindings`, Amazon Inspector API reference: at most 10 values
//! per filter, 100 findings per page), and keeps those whose instance runs
//! one of the recipe's images in that region. Inspector closes the findings
//! of an instance the refresh terminated, and deletes them 3 days later
//! (Amazon Inspector User Guide, "Understanding findings"), so the watch
//! keeps the earliest `firstObservedAt` it has seen itself. A finding
//! closed before that first sight (kept 30 days) is from an earlier
//! exposure to the CVE: it is left out.
//!
//! The watch ends `complete` when no finding is ACTIVE: closed at the latest
//! `updatedAt` of the closed findings (the check's time when there were
//! none), `hours` from first seen to closed, put as the `RemediationHours`
//! metric. It ends `overdue` when findings are still ACTIVE past the
//! recipe's `[security] remediation_deadline_hours` after first seen,
//! naming the instances. Findings of other accounts are seen only from
//! Inspector's delegated administrator account (docs/releases.md).

use std::collections::BTreeSet;

use aws_sdk_inspector2::types::{
    FilterCriteria, Finding, FindingStatus, ResourceType, StringComparison, StringFilter,
};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::aws::sdk::{self, Answer};
use crate::aws::{Context, images};
use crate::error::{Error, Result};
use crate::ids::{AmiId, RecipeName};
use crate::recipe::Recipe;
use crate::tags;

/// The CloudWatch namespace of kiln's security metrics.
pub const NAMESPACE: &str = "Kiln/Security";
/// The metric put when a watch completes: hours from first seen to closed.
pub const METRIC: &str = "RemediationHours";
/// Most instances a watch names (the rest are counted): its document travels
/// through Step Functions and its event through EventBridge, each at most
/// 256 KB.
pub const MAX_NAMED: usize = 50;
/// Most checks of one watch before its deadline: the release's execution
/// history holds at most 25,000 events, a check costs about nine, and the
/// release's own steps came first; so a long deadline is checked less often
/// than the release's interval.
pub const MAX_WATCH_CHECKS: u32 = 500;
/// Most values of one `ListFindings` filter (FilterCriteria: 1 to 10 items).
const VALUES_PER_FILTER: usize = 10;
/// Most findings of one `ListFindings` page.
const FINDINGS_PER_PAGE: i32 = 100;

/// What a security build was started for: the CVEs of the findings that
/// triggered it, and when Inspector first saw them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exposure {
    /// The CVEs (`CVE-2024-6387`).
    pub cves: Vec<String>,
    /// The trigger's `firstObservedAt`, when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Timestamp>,
}

/// How a watch stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Watch {
    /// Findings are still ACTIVE: check again after `wait_seconds`.
    #[default]
    Watching,
    /// No finding of the CVEs is ACTIVE on the recipe's instances.
    Complete,
    /// Findings are still ACTIVE past the deadline.
    Overdue,
}

/// An instance still exposed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Exposed {
    /// Its account.
    pub account: String,
    /// Its region.
    pub region: String,
    /// The instance.
    pub instance: String,
    /// The recipe's image it runs.
    pub image_id: String,
    /// The CVE still ACTIVE on it.
    pub cve: String,
}

/// The document of the watch: what the release state machine carries from
/// one [`check`] to the next (`$.remediation`). Every field is always
/// written (null when unknown): the state machine's events read them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remediation {
    /// The recipe.
    pub recipe: RecipeName,
    /// The image the release shipped.
    pub image_id: AmiId,
    /// The CVEs watched.
    pub cves: Vec<String>,
    /// Regions looked in: the build region, then the distribution regions.
    pub regions: Vec<String>,
    /// The earliest a finding of the CVEs was seen (by the trigger or a check).
    #[serde(default)]
    pub first_seen: Option<Timestamp>,
    /// When the watch started (the deadline counts from it when nothing was
    /// seen yet).
    pub started_at: Timestamp,
    /// Hours after first seen that findings may stay ACTIVE.
    pub deadline_hours: u32,
    /// `first_seen` (or `started_at`) plus `deadline_hours`.
    pub deadline: Timestamp,
    /// Seconds between two checks.
    pub check_seconds: u32,
    /// How it stands.
    #[serde(default)]
    pub status: Watch,
    /// Seconds to wait before the next check, while watching: the
    /// interval, or the deadline spread over [`MAX_WATCH_CHECKS`] when that
    /// is longer, and never past the deadline.
    #[serde(default)]
    pub wait_seconds: u32,
    /// Checks made.
    #[serde(default)]
    pub checks: u32,
    /// Instances still exposed at the last check, counted.
    #[serde(default)]
    pub exposed: usize,
    /// The first [`MAX_NAMED`] of them.
    #[serde(default)]
    pub instances: Vec<Exposed>,
    /// When the last finding closed, once complete.
    #[serde(default)]
    pub closed_at: Option<Timestamp>,
    /// Hours from first seen to closed, once complete.
    #[serde(default)]
    pub hours: Option<f64>,
    /// How it stands, in words.
    #[serde(default)]
    pub message: String,
}

impl Remediation {
    /// The watch of `exposure` after the release of `image` by `recipe`
    /// reached its last stage, in the regions given (build region first).
    pub fn new(
        recipe: &Recipe,
        image: AmiId,
        exposure: &Exposure,
        regions: Vec<String>,
        check_seconds: u32,
        now: Timestamp,
    ) -> Self {
        let deadline_hours = recipe.file.security.remediation_deadline_hours;
        let mut watch = Self {
            recipe: recipe.name.clone(),
            image_id: image,
            cves: exposure.cves.clone(),
            regions,
            first_seen: exposure.first_seen,
            started_at: now,
            deadline_hours,
            deadline: now,
            check_seconds,
            status: Watch::Watching,
            wait_seconds: 0,
            checks: 0,
            exposed: 0,
            instances: Vec::new(),
            closed_at: None,
            hours: None,
            message: format!("watching {}", exposure.cves.join(", ")),
        };
        watch.deadline = watch.deadline_from(watch.first_seen);
        watch
    }

    fn deadline_from(&self, first_seen: Option<Timestamp>) -> Timestamp {
        let from = first_seen.unwrap_or(self.started_at);
        from.saturating_add(SignedDuration::from_hours(i64::from(self.deadline_hours)))
            .unwrap_or(Timestamp::MAX)
    }

    /// The watch after a check that `observed` what is listed, at `now`.
    pub fn observe(mut self, observed: Observed, now: Timestamp) -> Self {
        self.checks += 1;
        self.first_seen = min_some(self.first_seen, observed.first_seen);
        self.deadline = self.deadline_from(self.first_seen);
        self.exposed = observed.active.len();
        self.instances = observed.active.into_iter().take(MAX_NAMED).collect();
        let cves = self.cves.join(", ");
        if self.exposed == 0 {
            let closed = observed.last_closed.unwrap_or(now);
            let from = self.first_seen.unwrap_or(closed);
            let hours = (closed.duration_since(from).as_secs_f64() / 36.0).round() / 100.0;
            self.status = Watch::Complete;
            self.wait_seconds = 0;
            self.closed_at = Some(closed);
            self.hours = Some(hours.max(0.0));
            self.message = match self.first_seen {
                Some(first) => format!(
                    "no ACTIVE finding of {cves} on {}'s instances: first seen {first}, \
                     closed {closed}, {hours} h",
                    self.recipe
                ),
                None => format!(
                    "Inspector reported no finding of {cves} on {}'s instances",
                    self.recipe
                ),
            };
        } else if now >= self.deadline {
            self.status = Watch::Overdue;
            self.wait_seconds = 0;
            self.message = format!(
                "{} instance(s) still exposed to {cves} after the deadline {} ({} h after first seen)",
                self.exposed, self.deadline, self.deadline_hours
            );
        } else {
            self.status = Watch::Watching;
            let paced = (self.deadline_hours.saturating_mul(3600) / MAX_WATCH_CHECKS)
                .max(self.check_seconds);
            let to_deadline = self.deadline.duration_since(now).as_secs().max(0) + 1;
            self.wait_seconds = paced
                .min(u32::try_from(to_deadline).unwrap_or(u32::MAX))
                .max(1);
            self.message = format!(
                "{} instance(s) still exposed to {cves}; deadline {}",
                self.exposed, self.deadline
            );
        }
        self
    }
}

/// What one check saw of the CVEs' findings on the recipe's instances.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The earliest `firstObservedAt`.
    pub first_seen: Option<Timestamp>,
    /// The latest `updatedAt` of a CLOSED finding.
    pub last_closed: Option<Timestamp>,
    /// The instances with an ACTIVE finding, in order.
    pub active: Vec<Exposed>,
}

impl Observed {
    /// Adds `findings` listed in `region`, keeping those on an instance that
    /// runs one of `images`; a finding closed before `since` (the CVE's
    /// first sight so far) belongs to an earlier exposure, and is left out.
    pub fn add(
        &mut self,
        region: &str,
        images: &BTreeSet<String>,
        findings: &[Finding],
        since: Option<Timestamp>,
    ) {
        let mut active: BTreeSet<Exposed> = self.active.drain(..).collect();
        for finding in findings {
            let Some(cve) = finding
                .package_vulnerability_details()
                .map(|p| p.vulnerability_id())
            else {
                continue;
            };
            for resource in finding.resources() {
                let image = resource
                    .details()
                    .and_then(|d| d.aws_ec2_instance())
                    .and_then(|i| i.image_id());
                let Some(image) = image.filter(|image| images.contains(*image)) else {
                    continue;
                };
                if resource.r#type() != &ResourceType::AwsEc2Instance {
                    continue;
                }
                let updated = finding.updated_at().and_then(timestamp);
                let status = finding.status();
                if *status == FindingStatus::Closed && updated < since {
                    continue;
                }
                let first = timestamp(finding.first_observed_at());
                self.first_seen = min_some(self.first_seen, first);
                match status {
                    FindingStatus::Active => {
                        active.insert(Exposed {
                            account: finding.aws_account_id().to_owned(),
                            region: resource.region().unwrap_or(region).to_owned(),
                            instance: resource.id().to_owned(),
                            image_id: image.to_owned(),
                            cve: cve.to_owned(),
                        });
                    }
                    FindingStatus::Closed => self.last_closed = self.last_closed.max(updated),
                    _ => {}
                }
            }
        }
        self.active = active.into_iter().collect();
    }
}

fn min_some(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn timestamp(time: &aws_smithy_types::DateTime) -> Option<Timestamp> {
    Timestamp::new(time.secs(), i32::try_from(time.subsec_nanos()).ok()?).ok()
}

/// The watch after one more check at `now`, in every region it looks in;
/// once complete, the `RemediationHours` metric is put.
pub async fn check(ctx: &Context, watch: Remediation, now: Timestamp) -> Result<Remediation> {
    if watch.status != Watch::Watching {
        return Err(Error::InvalidInput(format!(
            "the watch of {} is {} already",
            watch.cves.join(", "),
            watch.status
        )));
    }
    if watch.cves.is_empty() {
        return Err(Error::InvalidInput(
            "a remediation watch needs the CVEs it watches".into(),
        ));
    }
    let home = ctx.region()?;
    let mut observed = Observed::default();
    for region in &watch.regions {
        let there = if *region == home {
            ctx.clone()
        } else {
            ctx.in_region(region)
        };
        let images: BTreeSet<String> = images::own(
            &there,
            vec![images::filter(
                &format!("tag:{}", tags::RECIPE),
                [watch.recipe.as_str()],
            )],
        )
        .await?
        .iter()
        .filter_map(images::id)
        .map(|id| id.to_string())
        .collect();
        if images.is_empty() {
            continue;
        }
        for cves in watch.cves.chunks(VALUES_PER_FILTER) {
            let listed = findings(&there, cves).await?;
            observed.add(region, &images, &listed, watch.first_seen);
        }
    }
    let watch = watch.observe(observed, now);
    info!(recipe = %watch.recipe, status = %watch.status, exposed = watch.exposed, "remediation");
    if let (Watch::Complete, Some(hours)) = (watch.status, watch.hours) {
        put_hours(ctx, &watch.recipe, hours).await?;
    }
    Ok(watch)
}

/// Every finding, ACTIVE or CLOSED, of `cves` on an EC2 instance.
async fn findings(ctx: &Context, cves: &[String]) -> Result<Vec<Finding>> {
    let equals = |value: &str| {
        StringFilter::builder()
            .comparison(StringComparison::Equals)
            .value(value)
            .build()
            .map_err(|err| Error::InvalidInput(format!("finding filter: {err}")))
    };
    let criteria = FilterCriteria::builder()
        .set_vulnerability_id(Some(cves.iter().map(|c| equals(c)).collect::<Result<_>>()?))
        .resource_type(equals(ResourceType::AwsEc2Instance.as_str())?)
        .finding_status(equals(FindingStatus::Active.as_str())?)
        .finding_status(equals(FindingStatus::Closed.as_str())?)
        .build();
    let pages = ctx
        .inspector2()
        .list_findings()
        .filter_criteria(criteria)
        .max_results(FINDINGS_PER_PAGE)
        .into_paginator()
        .items()
        .send();
    sdk::all(pages, "ListFindings").await
}

/// Puts `hours` as the recipe's `RemediationHours`.
async fn put_hours(ctx: &Context, recipe: &RecipeName, hours: f64) -> Result<()> {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
    let datum = MetricDatum::builder()
        .metric_name(METRIC)
        .dimensions(
            Dimension::builder()
                .name("Recipe")
                .value(recipe.as_str())
                .build(),
        )
        .value(hours)
        .unit(StandardUnit::None)
        .build();
    ctx.cloudwatch()
        .put_metric_data()
        .namespace(NAMESPACE)
        .metric_data(datum)
        .send()
        .await
        .or_aws("PutMetricData")?;
    Ok(())
}
