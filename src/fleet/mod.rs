//! Which images the fleet runs, across regions and accounts, against each
//! recipe's channel pointer: `kiln audit` and the `audit-fleet` Lambda.
//!
//! Two paths give the same report: [`audit`] in one process (`kiln audit`,
//! one `audit-fleet` invocation), and the audit state machine
//! (`statemachine/audit.asl.json`, [`fanout`]), which fans the accounts out
//! as a Distributed Map for organizations one invocation cannot cover.
//!
//! Per region the calls are the minimum: `DescribeInstances` at 1,000 per
//! page, `DescribeImages` once per 200 distinct images, `GetParameters` once
//! per 10 recipes for the pointers (plus one `DescribeImages` when a pointer's
//! image runs nowhere in the region, for its age). Per account there is one
//! `DescribeRegions` (and one `AssumeRole` for another account's role), per
//! audit one `GetCallerIdentity` (and the Organizations listing, when the
//! accounts come from AWS Organizations). Throttling is retried with backoff;
//! regions and accounts are audited concurrently, at most
//! [`Scope::concurrency`] at a time. A part that fails (an unknown region, a
//! role that cannot be assumed, a recipe with no pointer) is reported as a
//! problem in the report; the rest is still audited.
//!
//! Pointers and kiln's view of its images live in the account running the
//! audit (the home account): instances of another account are classified
//! against the home account's pointers, and an image shared by the home
//! account (whose tags other accounts cannot see) is described there.

pub mod accounts;
pub mod aggregator;
pub mod calls;
pub mod fanout;
pub mod guard;
pub mod history;
pub mod html;
pub mod organization;
pub mod progress;
pub mod publish;
pub mod region;
pub mod report;
pub mod scope;
pub mod table;
pub mod tally;
pub mod trend;
pub mod trend_page;

use std::sync::Arc;
use std::time::Instant;

use aws_config::SdkConfig;
use serde::{Deserialize, Serialize};

use crate::error::Result;
pub use calls::ApiCalls;
pub use progress::Progress;
pub use region::{RegionClients, audit_region};
use report::{AuditPath, Problem, Report};
pub use scope::{
    ALL_REGIONS, DEFAULT_CHANNEL, DEFAULT_CONCURRENCY, DEFAULT_SERVICE_TAG, IMAGE_BATCH,
    INSTANCE_PAGE, Organization, POINTER_BATCH, Regions, Request, Scope, Target,
    WHOLE_ORGANIZATION,
};

/// What one audit found, and where its reports went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    /// The report's summary.
    pub summary: report::Summary,
    /// What could not be audited.
    pub problems: Vec<Problem>,
    /// Where the reports and metrics went.
    pub published: publish::Published,
}

/// The events of the `audit-fleet` Lambda: an audit request (the whole
/// audit in one invocation), or a step of the audit state machine (with an
/// `action`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Audit everything the request covers, now.
    Audit(Request),
    /// One step of the audit state machine.
    Step(fanout::Step),
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let event = match &value {
            serde_json::Value::Null => Self::Audit(Request::default()),
            serde_json::Value::Object(fields) if fields.contains_key("action") => {
                Self::Step(fanout::Step::deserialize(value).map_err(serde::de::Error::custom)?)
            }
            _ => Self::Audit(Request::deserialize(value).map_err(serde::de::Error::custom)?),
        };
        Ok(event)
    }
}

/// The `audit-fleet` Lambda: audits what the request asks (its fields left
/// out: the deployment's defaults), puts the metrics and writes the reports;
/// or runs one step of the audit state machine. Parts that cannot be
/// audited are problems in the answer and the `UnauditedParts` metric, not a
/// failed invocation: a retry would audit the whole fleet again to meet the
/// same problem.
pub async fn handle(ctx: &crate::aws::Context, event: Event) -> Result<Reply> {
    match event {
        Event::Audit(request) => {
            let scope = request.or_defaults(&ctx.settings).scope()?;
            let report = audit(&ctx.config, &scope).await;
            Ok(Reply::Report(finish(ctx, report).await?))
        }
        Event::Step(step) => Ok(match fanout::handle(ctx, step).await? {
            fanout::Stepped::Planned(planned) => Reply::Planned(planned),
            fanout::Stepped::Part(done) => Reply::Part(done),
            fanout::Stepped::Folded(report) => Reply::Report(finish(ctx, report).await?),
        }),
    }
}

/// What the `audit-fleet` Lambda answers.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// An audit's (or the fold step's) summary and where its reports went.
    Report(Answer),
    /// The plan step's accounts.
    Planned(fanout::Planned),
    /// A part step's accounts.
    Part(fanout::PartDone),
}

/// The report annotated with what the guard would block, published (metrics,
/// and the reports when the deployment names a bucket).
pub async fn finish(ctx: &crate::aws::Context, mut report: Report) -> Result<Answer> {
    guard::annotate(ctx, &mut report).await;
    let published =
        publish::publish(&ctx.config, &report, ctx.settings.audit_bucket.as_deref()).await?;
    Ok(Answer {
        summary: report.summary,
        problems: report.problems,
        published,
    })
}

/// Audits `scope` with the credentials and region of `config`. Always
/// returns a report: what failed is in its problems.
pub async fn audit(config: &SdkConfig, scope: &Scope) -> Report {
    audit_watched(config, scope, &Arc::default()).await
}

/// [`audit`], advancing `progress` as accounts and regions finish (the
/// AWS Config path, one query, has no progress to show).
pub async fn audit_watched(config: &SdkConfig, scope: &Scope, progress: &Arc<Progress>) -> Report {
    if scope.config_aggregator.is_some() {
        let client = aws_sdk_config::Client::new(&accounts::with_retries(config));
        return aggregator::audit(config, &client, scope).await;
    }
    let started = Instant::now();
    let config = accounts::with_retries(config);
    let plan = accounts::plan(&config, scope).await;
    let audits = match &plan.home {
        Some(home) => accounts::audit_members(&config, home, &plan.members, scope, progress).await,
        None => Vec::new(),
    };
    Report::assemble(
        scope,
        audits,
        plan.problems,
        plan.api_calls,
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        AuditPath::Direct,
    )
}
