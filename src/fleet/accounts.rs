//! The accounts an audit covers (the home account, the accounts of the roles
//! it assumes or of its AWS Organization) and the audit of one account: its
//! role assumed once, its regions listed, each region audited.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::config::Region;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::calls::ApiCalls;
use super::organization;
use super::progress::Progress;
use super::region::{RegionClients, audit_region};
use super::report::{AccountAudit, Problem, ProblemKind, RegionAudit, RegionPart, ScopeSummary};
use super::scope::{MAX_ATTEMPTS, Regions, SESSION_NAME, Scope, Target};
use crate::aws::roles::{self, role_account};
use crate::aws::sdk::Answer;
use crate::error::{Error, Result};

/// The account running the audit: its pointers and kiln's images are the
/// ones instances are compared against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Home {
    /// Its id.
    pub account: String,
    /// Its partition (`aws`, `aws-cn`, ...), for the ARNs of roles.
    pub partition: String,
}

/// One account to audit: the home account with its own credentials, any
/// other through a role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Its id.
    pub account: String,
    /// The role assumed in it; none for the home account.
    pub role: Option<String>,
}

/// What an audit covers, before any account is audited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The home account; none when the credentials could not say.
    pub home: Option<Home>,
    /// The accounts, the home account first.
    pub members: Vec<Member>,
    /// What was refused on the way (a role that is not an ARN, ...).
    pub problems: Vec<Problem>,
    /// Requests made, by operation.
    pub api_calls: BTreeMap<String, u64>,
}

/// `config` with the audit's retries: throttling is retried with backoff.
pub fn with_retries(config: &SdkConfig) -> SdkConfig {
    config
        .to_builder()
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .build()
}

pub(super) fn ec2_client(config: &SdkConfig, calls: &ApiCalls) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(config)
            .interceptor(calls.clone())
            .build(),
    )
}

fn sts_client(config: &SdkConfig, calls: &ApiCalls) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(config)
            .interceptor(calls.clone())
            .build(),
    )
}

/// The accounts `scope` covers, seen with `config`: the home account, then
/// each role's account (each role once) or each active account of the
/// organization but the home account.
pub async fn plan(config: &SdkConfig, scope: &Scope) -> Plan {
    let calls = ApiCalls::default();
    let mut plan = Plan::default();
    let identity = sts_client(config, &calls)
        .get_caller_identity()
        .send()
        .await;
    let home = match identity {
        Ok(identity) => identity.account().map(|account| Home {
            account: account.to_owned(),
            partition: identity
                .arn()
                .and_then(|arn| arn.split(':').nth(1))
                .unwrap_or("aws")
                .to_owned(),
        }),
        Err(err) => {
            plan.problems.push(Problem::account(
                None,
                ProblemKind::CallFailed,
                Error::aws("GetCallerIdentity", err).to_string(),
            ));
            None
        }
    };
    let Some(home) = home else {
        plan.api_calls = calls.counts();
        return plan;
    };
    let mut members = vec![Member {
        account: home.account.clone(),
        role: None,
    }];
    for role in &scope.account_roles {
        match role_account(role) {
            Some(account) => members.push(Member {
                account: account.to_owned(),
                role: Some(role.clone()),
            }),
            None => plan.problems.push(Problem::account(
                None,
                ProblemKind::RoleNotAssumed,
                format!("{role:?} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
            )),
        }
    }
    if let Some(org) = &scope.organization {
        let client = aws_sdk_organizations::Client::from_conf(
            aws_sdk_organizations::config::Builder::from(config)
                .interceptor(calls.clone())
                .build(),
        );
        match organization::members(&client, org).await {
            Ok(found) => members.extend(found.into_iter().filter(|a| *a != home.account).map(
                |account| Member {
                    role: Some(organization::role_arn(
                        &home.partition,
                        &account,
                        &org.role_name,
                    )),
                    account,
                },
            )),
            Err(err) => plan.problems.push(Problem::account(
                None,
                ProblemKind::CallFailed,
                format!("the organization's accounts cannot be listed: {err}"),
            )),
        }
    }
    let mut seen = HashSet::new();
    members.retain(|member| seen.insert(member.clone()));
    plan.home = Some(home);
    plan.members = members;
    plan.api_calls = calls.counts();
    plan
}

/// Audits `members` (accounts of `home`'s audit) with the credentials of
/// `config`, at most `scope.concurrency` accounts' set-up and regions at
/// once, advancing `progress` as accounts and regions finish.
pub async fn audit_members(
    config: &SdkConfig,
    home: &Home,
    members: &[Member],
    scope: &Scope,
    progress: &Arc<Progress>,
) -> Vec<AccountAudit> {
    let limit = Arc::new(Semaphore::new(scope.concurrency.max(1)));
    progress.add_accounts(members.len());
    let mut tasks = JoinSet::new();
    let mut spawned = HashMap::new();
    for member in members {
        let (config, home, task_member, scope, limit, progress) = (
            config.clone(),
            home.clone(),
            member.clone(),
            scope.clone(),
            limit.clone(),
            progress.clone(),
        );
        let task = tasks.spawn(async move {
            let audit = audit_member(&config, &home, &task_member, &scope, &limit, &progress).await;
            progress.account_done();
            audit
        });
        spawned.insert(task.id(), member);
    }
    let mut audits = Vec::new();
    while let Some(done) = tasks.join_next_with_id().await {
        match done {
            Ok((_, audit)) => audits.push(audit),
            Err(err) => {
                let Some(member) = spawned.get(&err.id()) else {
                    continue;
                };
                audits.push(AccountAudit {
                    account: member.account.clone(),
                    role: member.role.clone(),
                    regions: Vec::new(),
                    problems: vec![Problem::account(
                        Some(member.account.clone()),
                        ProblemKind::CallFailed,
                        format!("the audit of account {} panicked: {err}", member.account),
                    )],
                    api_calls: BTreeMap::new(),
                });
            }
        }
    }
    audits.sort_by(|a, b| (&a.account, &a.role).cmp(&(&b.account, &b.role)));
    audits
}

async fn audit_member(
    home_config: &SdkConfig,
    home: &Home,
    member: &Member,
    scope: &Scope,
    limit: &Arc<Semaphore>,
    progress: &Progress,
) -> AccountAudit {
    let calls = ApiCalls::default();
    let mut audit = AccountAudit {
        account: member.account.clone(),
        role: member.role.clone(),
        regions: Vec::new(),
        problems: Vec::new(),
        api_calls: BTreeMap::new(),
    };
    let set_up = {
        let _permit = limit.acquire().await;
        set_up(home_config, member, scope, &calls).await
    };
    audit.api_calls = calls.counts();
    let (config, regions) = match set_up {
        Ok((config, regions, refused)) => {
            audit.problems.extend(refused);
            (config, regions)
        }
        Err((kind, message)) => {
            audit.problems.push(Problem::account(
                Some(member.account.clone()),
                kind,
                message,
            ));
            return audit;
        }
    };
    progress.add_regions(regions.len());
    let mut tasks = JoinSet::new();
    for region in regions {
        let calls = ApiCalls::default();
        let in_region = |config: &SdkConfig| {
            config
                .to_builder()
                .region(Region::new(region.clone()))
                .build()
        };
        let clients = RegionClients {
            ec2: ec2_client(&in_region(&config), &calls),
            home_ec2: ec2_client(&in_region(home_config), &calls),
            home_ssm: aws_sdk_ssm::Client::from_conf(
                aws_sdk_ssm::config::Builder::from(&in_region(home_config))
                    .interceptor(calls.clone())
                    .build(),
            ),
        };
        let (account, home, scope, limit) = (
            member.account.clone(),
            home.account.clone(),
            scope.clone(),
            limit.clone(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire().await;
            let target = Target {
                account: &account,
                home_account: &home,
                region: &region,
                channel: &scope.channel,
                service_tag: &scope.service_tag,
            };
            let result = audit_region(&clients, target).await;
            (ScopeSummary::new(&account, &region, calls.counts()), result)
        });
    }
    while let Some(done) = tasks.join_next().await {
        progress.region_done(match &done {
            Ok((_, Ok(region))) => region.instances,
            _ => 0,
        });
        match done {
            Ok((summary, Ok(region))) => audit.regions.push(RegionPart {
                summary,
                audit: region,
            }),
            Ok((summary, Err(err))) => {
                audit.problems.push(Problem {
                    account: Some(summary.account.clone()),
                    region: Some(summary.region.clone()),
                    kind: ProblemKind::CallFailed,
                    message: err.to_string(),
                });
                audit.regions.push(RegionPart {
                    summary: summary.failed(),
                    audit: RegionAudit::default(),
                });
            }
            Err(err) => audit.problems.push(Problem::account(
                Some(member.account.clone()),
                ProblemKind::CallFailed,
                format!("a region's audit panicked: {err}"),
            )),
        }
    }
    audit
}

/// `member`'s configuration (its role assumed) and the regions to audit in
/// it, with a problem for each asked-for region it does not have enabled.
async fn set_up(
    home_config: &SdkConfig,
    member: &Member,
    scope: &Scope,
    calls: &ApiCalls,
) -> std::result::Result<(SdkConfig, Vec<String>, Vec<Problem>), (ProblemKind, String)> {
    let config = match &member.role {
        None => home_config.clone(),
        Some(role) => {
            roles::assume(
                &sts_client(home_config, calls),
                home_config,
                role,
                SESSION_NAME,
            )
            .await
            .map_err(|message| (ProblemKind::RoleNotAssumed, message))?
            .1
        }
    };
    let (regions, refused) = regions(&member.account, &config, calls, &scope.regions)
        .await
        .map_err(|err| (ProblemKind::CallFailed, err.to_string()))?;
    Ok((config, regions, refused))
}

/// The regions to audit in `account`, and a problem for each asked-for
/// region that does not exist or is not enabled there.
async fn regions(
    account: &str,
    config: &SdkConfig,
    calls: &ApiCalls,
    wanted: &Regions,
) -> Result<(Vec<String>, Vec<Problem>)> {
    let configured = config.region().map(ToString::to_string);
    let output = ec2_client(config, calls)
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
            Some(account.to_owned()),
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
                account: Some(account.to_owned()),
                message: format!("region {region} {what} in account {account}"),
                region: Some(region),
                kind,
            }),
        }
    }
    Ok((regions, problems))
}
