//! The accounts an audit covers: the home account, the accounts of the roles
//! it assumes, and the regions of each.

use std::collections::HashMap;

use aws_config::SdkConfig;

use super::calls::ApiCalls;
use super::report::{Problem, ProblemKind};
use super::scope::{Regions, SESSION_NAME};
use crate::aws::roles;
use crate::aws::sdk::Answer;
use crate::error::Result;

/// An account to audit: its id, SDK configuration and call counter.
pub(super) struct Account {
    pub(super) id: String,
    pub(super) config: SdkConfig,
    pub(super) calls: ApiCalls,
}

pub(super) fn ec2_client(config: &SdkConfig, calls: &ApiCalls) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(config)
            .interceptor(calls.clone())
            .build(),
    )
}

/// Assumes `role` and returns its account; the message says why it could not.
pub(super) async fn assume(
    sts: &aws_sdk_sts::Client,
    config: &SdkConfig,
    role: &str,
) -> std::result::Result<Account, String> {
    let (id, config) = roles::assume(sts, config, role, SESSION_NAME).await?;
    Ok(Account {
        id,
        config,
        calls: ApiCalls::default(),
    })
}

/// The regions to audit in `account`, and a problem for each asked-for
/// region that does not exist or is not enabled there.
pub(super) async fn regions(
    account: &Account,
    wanted: &Regions,
) -> Result<(Vec<String>, Vec<Problem>)> {
    let configured = account.config.region().map(ToString::to_string);
    let ec2 = ec2_client(&account.config, &account.calls);
    let output = ec2
        .describe_regions()
        .all_regions(true)
        .send()
        .await
        .or_aws("DescribeRegions")?;
    let enabled: HashMap<&str, bool> = output
        .regions()
        .iter()
        .filter_map(|r| {
            let name = r.region_name()?;
            Some((name, r.opt_in_status() != Some("not-opted-in")))
        })
        .collect();
    let asked = match wanted {
        Regions::Configured => configured.into_iter().collect(),
        Regions::List(list) => list.clone(),
        Regions::AllEnabled => {
            let mut all: Vec<String> = enabled
                .iter()
                .filter(|(_, on)| **on)
                .map(|(name, _)| (*name).to_owned())
                .collect();
            all.sort_unstable();
            all
        }
    };
    let mut regions = Vec::new();
    let mut problems = Vec::new();
    if asked.is_empty() && *wanted == Regions::Configured {
        problems.push(Problem::account(
            Some(account.id.clone()),
            ProblemKind::UnknownRegion,
            "no region is configured: set AWS_REGION, or name regions".into(),
        ));
    }
    for region in asked {
        let refused = match enabled.get(region.as_str()) {
            Some(true) => None,
            Some(false) => Some((ProblemKind::RegionNotEnabled, "is not enabled")),
            None => Some((ProblemKind::UnknownRegion, "does not exist")),
        };
        match refused {
            None => regions.push(region),
            Some((kind, what)) => problems.push(Problem {
                account: Some(account.id.clone()),
                message: format!("region {region} {what} in account {}", account.id),
                region: Some(region),
                kind,
            }),
        }
    }
    Ok((regions, problems))
}
