//! The AWS Config path: where an organization (or multi-account)
//! aggregator exists, one `SelectAggregateResourceConfig` query, instances
//! grouped by account, region and image, replaces the per-region
//! `DescribeInstances` sweep; kiln then describes only the distinct images
//! (from the home account, which sees every kiln image and public image) and
//! reads the pointers, as the direct audit does.
//!
//! What the path cannot see, and the report says so: instances are counted
//! as AWS Config last recorded them (`data_as_of` is the newest
//! configuration item among them); their tags are not grouped, so every
//! instance counts under one service ([`SERVICE`]) and kiln's own builders
//! are not told apart; an image the home account cannot describe (another
//! account's private image, or one deregistered) is foreign.

use std::collections::BTreeMap;
use std::time::Instant;

use aws_config::SdkConfig;
use aws_sdk_ec2::config::Region;
use jiff::Timestamp;
use serde::Deserialize;

use super::accounts::{ec2_client, plan, with_retries};
use super::calls::ApiCalls;
use super::region::{RegionClients, Unseen, classify_region};
use super::report::{
    AccountAudit, AuditPath, Problem, ProblemKind, RegionPart, Report, ScopeSummary,
};
use super::scope::{Regions, Scope, Target};
use super::tally::Tally;
use crate::aws::sdk::Answer;
use crate::error::{Error, Result};

/// The query: live instances, counted per account, region and image, with
/// the newest configuration item of each group (AWS Config Developer
/// Guide, "Query components": `COUNT`, `MAX`, `GROUP BY`).
pub const QUERY: &str = "SELECT accountId, awsRegion, configuration.imageId, COUNT(*), \
MAX(configurationItemCaptureTime) WHERE resourceType = 'AWS::EC2::Instance' AND \
configuration.state.name IN ('pending', 'running', 'shutting-down', 'stopping', 'stopped') \
GROUP BY accountId, awsRegion, configuration.imageId";
/// Results per page (the API's maximum `Limit`).
pub const PAGE: i32 = 100;
/// The one service of the Config path's instances: their tags are not read.
pub const SERVICE: &str = "(not recorded: AWS Config path)";

/// One group of the query's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The image its instances run.
    pub image_id: String,
    /// How many instances.
    pub instances: u64,
    /// The newest configuration item among them.
    pub captured: Option<Timestamp>,
}

/// One result as AWS Config answers it: a JSON document whose fields are the
/// selected properties, nested as in the configuration item, and the
/// aggregates under their expression (`"COUNT(*)"`).
#[derive(Debug, Deserialize)]
struct Row {
    #[serde(rename = "accountId")]
    account: String,
    #[serde(rename = "awsRegion")]
    region: String,
    configuration: Configuration,
    #[serde(rename = "COUNT(*)")]
    count: u64,
    #[serde(rename = "MAX(configurationItemCaptureTime)", default)]
    captured: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Configuration {
    #[serde(rename = "imageId")]
    image_id: String,
}

/// Parses one result of [`QUERY`].
pub fn parse(result: &str) -> Result<Group> {
    let row: Row = serde_json::from_str(result).map_err(|err| {
        Error::InvalidInput(format!(
            "AWS Config answered a result kiln cannot read ({err}): {result}"
        ))
    })?;
    Ok(Group {
        account: row.account,
        region: row.region,
        image_id: row.configuration.image_id,
        instances: row.count,
        captured: row.captured.and_then(|at| at.parse().ok()),
    })
}

/// Every group the aggregator `name` records (all pages), and how many
/// pages that took.
pub async fn groups(config: &aws_sdk_config::Client, name: &str) -> Result<(Vec<Group>, u64)> {
    let mut found = Vec::new();
    let mut calls = 0;
    let mut pages = config
        .select_aggregate_resource_config()
        .configuration_aggregator_name(name)
        .expression(QUERY)
        .limit(PAGE)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        calls += 1;
        for result in page.or_aws("SelectAggregateResourceConfig")?.results() {
            found.push(parse(result)?);
        }
    }
    Ok((found, calls))
}

/// Audits `scope` (which names an aggregator) from AWS Config: the groups
/// from `aggregator_client`, the images and pointers with `config`.
pub async fn audit(
    config: &SdkConfig,
    aggregator_client: &aws_sdk_config::Client,
    scope: &Scope,
) -> Report {
    let started = Instant::now();
    let config = with_retries(config);
    let mut planned = plan(&config, scope).await;
    let name = scope.config_aggregator.as_deref().unwrap_or_default();
    let found = match groups(aggregator_client, name).await {
        Ok((found, pages)) => {
            planned
                .api_calls
                .insert("SelectAggregateResourceConfig".into(), pages);
            found
        }
        Err(err) => {
            planned.problems.push(Problem::account(
                None,
                ProblemKind::CallFailed,
                err.to_string(),
            ));
            Vec::new()
        }
    };
    let wanted = |region: &str| match &scope.regions {
        Regions::AllEnabled => true,
        Regions::List(list) => list.iter().any(|r| r == region),
        Regions::Configured => config.region().is_some_and(|r| r.as_ref() == region),
    };
    let audited: Vec<&Group> = found.iter().filter(|g| wanted(&g.region)).collect();
    let data_as_of = audited.iter().filter_map(|g| g.captured).max();
    let mut tallies: BTreeMap<(String, String), Tally> = BTreeMap::new();
    for group in audited {
        tallies
            .entry((group.account.clone(), group.region.clone()))
            .or_default()
            .add_many(&group.image_id, SERVICE, group.instances);
    }
    let mut audits: BTreeMap<String, AccountAudit> = BTreeMap::new();
    if let Some(home) = &planned.home {
        for ((account, region), tally) in &tallies {
            let in_region = config
                .to_builder()
                .region(Region::new(region.clone()))
                .build();
            let region_calls = ApiCalls::default();
            let home_ec2 = ec2_client(&in_region, &region_calls);
            let clients = RegionClients {
                ec2: home_ec2.clone(),
                home_ec2,
                home_ssm: aws_sdk_ssm::Client::from_conf(
                    aws_sdk_ssm::config::Builder::from(&in_region)
                        .interceptor(region_calls.clone())
                        .build(),
                ),
            };
            let target = Target {
                account,
                home_account: &home.account,
                region,
                channel: &scope.channel,
                service_tag: &scope.service_tag,
            };
            let result = classify_region(&clients, target, tally, Unseen::Foreign).await;
            let summary = ScopeSummary::new(account, region, region_calls.counts());
            let entry = audits
                .entry(account.clone())
                .or_insert_with(|| AccountAudit {
                    account: account.clone(),
                    role: None,
                    regions: Vec::new(),
                    problems: Vec::new(),
                    api_calls: BTreeMap::new(),
                });
            match result {
                Ok(audit) => entry.regions.push(RegionPart { summary, audit }),
                Err(err) => {
                    entry.problems.push(Problem {
                        account: Some(account.clone()),
                        region: Some(region.clone()),
                        kind: ProblemKind::CallFailed,
                        message: err.to_string(),
                    });
                    entry.regions.push(RegionPart {
                        summary: summary.failed(),
                        audit: super::report::RegionAudit::default(),
                    });
                }
            }
        }
    }
    let mut report = Report::assemble(
        scope,
        audits.into_values().collect(),
        planned.problems,
        planned.api_calls,
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        AuditPath::Config,
    );
    report.data_as_of = data_as_of;
    report
}
