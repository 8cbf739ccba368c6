//! Which images the fleet runs, across regions and accounts, against each
//! recipe's channel pointer: `kiln audit` and the `audit-fleet` Lambda.
//!
//! Per region the calls are the minimum: `DescribeInstances` at 1,000 per
//! page, `DescribeImages` once per 200 distinct images, `GetParameters` once
//! per 10 recipes for the pointers (plus one `DescribeImages` when a pointer's
//! image runs nowhere in the region, for its age). Per account there is one
//! `DescribeRegions` (and one `AssumeRole` for another account's role), per
//! audit one `GetCallerIdentity`. Throttling is retried with backoff;
//! regions and accounts are audited concurrently, at most
//! [`Scope::concurrency`] at a time. A part that fails (an unknown region, a
//! role that cannot be assumed, a recipe with no pointer) is reported as a
//! problem in the report; the rest is still audited.
//!
//! Pointers and kiln's view of its images live in the account running the
//! audit (the home account): instances of another account are classified
//! against the home account's pointers, and an image shared by the home
//! account (whose tags other accounts cannot see) is described there.

mod accounts;
pub mod calls;
pub mod guard;
pub mod html;
pub mod publish;
pub mod region;
pub mod report;
pub mod scope;
pub mod tally;

use std::sync::Arc;
use std::time::Instant;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::config::Region;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::aws::roles::role_account;
use crate::error::{Error, Result};
use accounts::{Account, assume, ec2_client, regions};
pub use calls::ApiCalls;
pub use region::{RegionClients, audit_region};
use report::{Problem, ProblemKind, RegionAudit, Report, ScopeSummary};
use scope::MAX_ATTEMPTS;
pub use scope::{
    ALL_REGIONS, DEFAULT_CHANNEL, DEFAULT_CONCURRENCY, DEFAULT_SERVICE_TAG, IMAGE_BATCH,
    INSTANCE_PAGE, POINTER_BATCH, Regions, Request, Scope, Target,
};

/// What one `audit-fleet` run found, and where its reports went.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// The report's summary.
    pub summary: report::Summary,
    /// What could not be audited.
    pub problems: Vec<Problem>,
    /// Where the reports and metrics went.
    pub published: publish::Published,
}

/// The `audit-fleet` Lambda: audits what `request` asks (no request: the
/// deployment's defaults), puts the metrics and writes the reports. Parts
/// that cannot be audited are problems in the answer and the
/// `UnauditedParts` metric, not a failed invocation: a retry would audit the
/// whole fleet again to meet the same problem.
pub async fn handle(ctx: &crate::aws::Context, request: Option<Request>) -> Result<Answer> {
    let scope = request
        .unwrap_or_default()
        .or_defaults(&ctx.settings)
        .scope()?;
    let mut report = audit(&ctx.config, &scope).await;
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
    let started = Instant::now();
    let config = config
        .to_builder()
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .build();
    let mut problems = Vec::new();
    let home_calls = ApiCalls::default();
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&config)
            .interceptor(home_calls.clone())
            .build(),
    );
    let home = match sts.get_caller_identity().send().await {
        Ok(identity) => identity.account().map(str::to_owned),
        Err(err) => {
            problems.push(Problem::account(
                None,
                ProblemKind::CallFailed,
                Error::aws("GetCallerIdentity", err).to_string(),
            ));
            None
        }
    };
    let Some(home) = home else {
        return Report::assemble(scope, Vec::new(), problems, vec![home_calls], started);
    };
    let mut accounts = vec![Account {
        id: home.clone(),
        config: config.clone(),
        calls: home_calls.clone(),
    }];
    for role in &scope.account_roles {
        match assume(&sts, &config, role).await {
            Ok(account) => accounts.push(account),
            Err(message) => problems.push(Problem::account(
                role_account(role).map(str::to_owned),
                ProblemKind::RoleNotAssumed,
                message,
            )),
        }
    }
    let mut targets = Vec::new();
    for account in &accounts {
        match regions(account, &scope.regions).await {
            Ok((regions, refused)) => {
                problems.extend(refused);
                targets.extend(regions.into_iter().map(|region| (account, region)));
            }
            Err(err) => problems.push(Problem::account(
                Some(account.id.clone()),
                ProblemKind::CallFailed,
                err.to_string(),
            )),
        }
    }
    let limit = Arc::new(Semaphore::new(scope.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for (account, region) in targets {
        let calls = ApiCalls::default();
        let in_region = |config: &SdkConfig| {
            config
                .to_builder()
                .region(Region::new(region.clone()))
                .build()
        };
        let clients = RegionClients {
            ec2: ec2_client(&in_region(&account.config), &calls),
            home_ec2: ec2_client(&in_region(&config), &calls),
            home_ssm: aws_sdk_ssm::Client::from_conf(
                aws_sdk_ssm::config::Builder::from(&in_region(&config))
                    .interceptor(calls.clone())
                    .build(),
            ),
        };
        let (account_id, home, channel, service_tag, limit) = (
            account.id.clone(),
            home.clone(),
            scope.channel.clone(),
            scope.service_tag.clone(),
            limit.clone(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let target = Target {
                account: &account_id,
                home_account: &home,
                region: &region,
                channel: &channel,
                service_tag: &service_tag,
            };
            let result = audit_region(&clients, target).await;
            let summary = ScopeSummary::new(&account_id, &region, calls.counts());
            (summary, result)
        });
    }
    let mut regions = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((summary, Ok(audit))) => regions.push((summary, audit)),
            Ok((summary, Err(err))) => {
                problems.push(Problem {
                    account: Some(summary.account.clone()),
                    region: Some(summary.region.clone()),
                    kind: ProblemKind::CallFailed,
                    message: err.to_string(),
                });
                regions.push((summary.failed(), RegionAudit::default()));
            }
            Err(err) => problems.push(Problem::account(
                None,
                ProblemKind::CallFailed,
                format!("a region's audit panicked: {err}"),
            )),
        }
    }
    let calls = accounts.into_iter().map(|a| a.calls).collect();
    Report::assemble(scope, regions, problems, calls, started)
}
