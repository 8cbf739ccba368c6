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

pub mod fleet;
pub mod html;
pub mod publish;
pub mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::config::Region;
use aws_sdk_ec2::config::{ConfigBag, Credentials, Intercept, RuntimeComponents};
use aws_sdk_ec2::types::Filter;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use self::fleet::{ImageFacts, Pointer, Tally};
use self::report::{ImageRow, PointerRow, Problem, ProblemKind, Report, ScopeSummary};
use crate::aws::Settings;
use crate::builder::live_state_filter;
use crate::error::{Error, Result};
use crate::promotion::pointer_name;
use crate::state::{Channel, RecipeName};

/// Instances per `DescribeInstances` page (the API's maximum).
pub const INSTANCE_PAGE: i32 = 1000;
/// Image ids per `DescribeImages` call (values per filter).
pub const IMAGE_BATCH: usize = 200;
/// Pointers per `GetParameters` call (the API's maximum).
pub const POINTER_BATCH: usize = 10;
/// Regions and accounts audited at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// The instance tag that names a service unless told otherwise.
pub const DEFAULT_SERVICE_TAG: &str = "Service";
/// Attempts per call, throttling included, with the SDK's exponential backoff.
const MAX_ATTEMPTS: u32 = 8;
/// The session name of assumed roles, as CloudTrail shows it.
const SESSION_NAME: &str = "kiln-audit";

/// Which regions to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Regions {
    /// The configured region only.
    Configured,
    /// These regions (in every account).
    List(Vec<String>),
    /// Every region enabled in each account.
    AllEnabled,
}

/// What to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The regions.
    pub regions: Regions,
    /// Roles to assume, one per other account; the current account is always audited.
    pub account_roles: Vec<String>,
    /// The channel whose pointers instances are compared against.
    pub channel: Channel,
    /// The instance tag naming the service an instance belongs to.
    pub service_tag: String,
    /// Regions audited at once (at least 1).
    pub concurrency: usize,
}

impl Scope {
    /// The configured region of the current account, against `channel`.
    pub fn new(channel: Channel) -> Self {
        Self {
            regions: Regions::Configured,
            account_roles: Vec::new(),
            channel,
            service_tag: DEFAULT_SERVICE_TAG.to_owned(),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// An audit as asked for by the `audit-fleet` Lambda's event or the CLI's
/// flags; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Request {
    /// Regions to audit; none means the configured region.
    pub regions: Vec<String>,
    /// Every region enabled in each account (not with `regions`).
    pub all_regions: bool,
    /// Roles to assume in other accounts.
    pub account_roles: Vec<String>,
    /// The channel to compare against.
    pub channel: Channel,
    /// The instance tag naming services.
    pub service_tag: String,
    /// Regions audited at once.
    pub concurrency: usize,
}

impl Default for Request {
    fn default() -> Self {
        let scope = Scope::new(default_channel());
        Self {
            regions: Vec::new(),
            all_regions: false,
            account_roles: scope.account_roles,
            channel: scope.channel,
            service_tag: scope.service_tag,
            concurrency: scope.concurrency,
        }
    }
}

/// In `KILN_AUDIT_REGIONS`, every region enabled in each account.
pub const ALL_REGIONS: &str = "all";

/// The channel audits compare against unless told otherwise.
pub const DEFAULT_CHANNEL: &str = "prod";

fn default_channel() -> Channel {
    Channel::try_from(DEFAULT_CHANNEL.to_owned())
        .unwrap_or_else(|_| unreachable!("a valid channel"))
}

impl Request {
    /// The request with the deployment's defaults where it names no regions
    /// or roles (`all` among the regions means every enabled region).
    pub fn or_defaults(mut self, settings: &Settings) -> Self {
        if self.regions.is_empty() && !self.all_regions {
            if settings.audit_regions.iter().any(|r| r == ALL_REGIONS) {
                self.all_regions = true;
            } else {
                self.regions.clone_from(&settings.audit_regions);
            }
        }
        if self.account_roles.is_empty() {
            self.account_roles.clone_from(&settings.audit_roles);
        }
        self
    }

    /// The scope to audit; refused before any call when it contradicts itself.
    pub fn scope(self) -> Result<Scope> {
        let regions = match (self.all_regions, self.regions.is_empty()) {
            (true, false) => {
                return Err(Error::InvalidInput(
                    "give regions or all_regions, not both".into(),
                ));
            }
            (true, true) => Regions::AllEnabled,
            (false, true) => Regions::Configured,
            (false, false) => {
                let mut seen = HashSet::new();
                let mut regions = self.regions;
                regions.retain(|region| seen.insert(region.clone()));
                Regions::List(regions)
            }
        };
        if self.concurrency == 0 {
            return Err(Error::InvalidInput("concurrency must be at least 1".into()));
        }
        if self.service_tag.is_empty() {
            return Err(Error::InvalidInput("service_tag must not be empty".into()));
        }
        Ok(Scope {
            regions,
            account_roles: self.account_roles,
            channel: self.channel,
            service_tag: self.service_tag,
            concurrency: self.concurrency,
        })
    }
}

/// Counts the HTTP requests (attempts, retries included) of the clients it
/// is attached to, by operation.
#[derive(Debug, Clone, Default)]
pub struct ApiCalls(Arc<Mutex<BTreeMap<String, u64>>>);

impl ApiCalls {
    /// The counts so far.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Intercept for ApiCalls {
    fn name(&self) -> &'static str {
        "KilnApiCalls"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            *counts.entry(metadata.name().to_owned()).or_default() += 1;
        }
        Ok(())
    }
}

/// The clients one region's audit uses.
#[derive(Debug, Clone)]
pub struct RegionClients {
    /// EC2 of the audited account, in the region.
    pub ec2: aws_sdk_ec2::Client,
    /// EC2 of the home account, in the region: pointer images and images the
    /// home account shared (their tags are the home account's).
    pub home_ec2: aws_sdk_ec2::Client,
    /// SSM of the home account, in the region: the pointers.
    pub home_ssm: aws_sdk_ssm::Client,
}

/// One region of one account to audit.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The audited account.
    pub account: &'a str,
    /// The account holding kiln's pointers and images.
    pub home_account: &'a str,
    /// The region.
    pub region: &'a str,
    /// The channel.
    pub channel: &'a Channel,
    /// The service tag key.
    pub service_tag: &'a str,
}

/// What one region's audit found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionAudit {
    /// Instances counted (kiln's builders apart).
    pub instances: u64,
    /// Kiln's own builder and test instances.
    pub builders: u64,
    /// One row per distinct image.
    pub images: Vec<ImageRow>,
    /// The channel pointer of each recipe seen.
    pub pointers: Vec<PointerRow>,
    /// What could not be established (a recipe with no pointer).
    pub problems: Vec<Problem>,
}

/// Audits one region of one account with `clients`.
pub async fn audit_region(clients: &RegionClients, target: Target<'_>) -> Result<RegionAudit> {
    let tally = instances(&clients.ec2, target.service_tag).await?;
    let ids = tally.images();
    let mut facts = describe(&clients.ec2, &ids).await?;
    if target.account != target.home_account {
        let shared: Vec<&str> = facts
            .iter()
            .filter(|(_, f)| f.recipe.is_none() && f.owner.as_deref() == Some(target.home_account))
            .map(|(id, _)| id.as_str())
            .collect();
        let home_view = describe(&clients.home_ec2, &shared).await?;
        facts.extend(home_view);
    }
    let recipes: Vec<&RecipeName> = facts
        .values()
        .filter_map(|f| f.recipe.as_ref())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let named = pointers(&clients.home_ssm, &recipes, target.channel).await?;
    let unseen: Vec<&str> = named
        .values()
        .filter(|image| !facts.contains_key(*image))
        .map(String::as_str)
        .collect();
    let unseen_facts = describe(&clients.home_ec2, &unseen).await?;
    let mut problems = Vec::new();
    let mut pointer_rows = Vec::new();
    let mut by_recipe = HashMap::new();
    for recipe in recipes {
        let image = named.get(recipe);
        pointer_rows.push(PointerRow {
            account: target.home_account.to_owned(),
            region: target.region.to_owned(),
            recipe: recipe.clone(),
            channel: target.channel.clone(),
            image_id: image.cloned(),
        });
        match image {
            Some(image) => {
                let created = facts
                    .get(image)
                    .or_else(|| unseen_facts.get(image))
                    .and_then(|f| f.created);
                by_recipe.insert(
                    recipe.clone(),
                    Pointer {
                        image_id: image.clone(),
                        created,
                    },
                );
            }
            None => problems.push(Problem {
                account: Some(target.home_account.to_owned()),
                region: Some(target.region.to_owned()),
                kind: ProblemKind::NoPointer,
                message: format!(
                    "recipe {recipe} has no {} pointer ({}) in {}: its images are reported as unpromoted",
                    target.channel,
                    pointer_name(recipe, target.channel),
                    target.region
                ),
            }),
        }
    }
    pointer_rows.sort_by(|a, b| a.recipe.cmp(&b.recipe));
    let now = jiff::Timestamp::now();
    let images = ids
        .iter()
        .map(|id| {
            let image = facts.get(*id);
            ImageRow::new(
                target,
                id,
                image,
                fleet::classify(id, image, &by_recipe, target.channel),
                tally.services(id),
                now,
            )
        })
        .collect();
    Ok(RegionAudit {
        instances: tally.instances,
        builders: tally.builders,
        images,
        pointers: pointer_rows,
        problems,
    })
}

/// Every live instance of the region, folded into a tally page by page.
async fn instances(ec2: &aws_sdk_ec2::Client, service_tag: &str) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut pages = ec2
        .describe_instances()
        .filters(live_state_filter())
        .max_results(INSTANCE_PAGE)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| Error::aws("DescribeInstances", err))?;
        for instance in page.reservations().iter().flat_map(|r| r.instances()) {
            tally.add_instance(instance, service_tag);
        }
    }
    Ok(tally)
}

/// The facts of the existing images among `ids`, one call per batch. An id
/// filter, unlike `ImageIds`, does not fail the batch for a deregistered id.
async fn describe(ec2: &aws_sdk_ec2::Client, ids: &[&str]) -> Result<HashMap<String, ImageFacts>> {
    let mut facts = HashMap::new();
    for batch in ids.chunks(IMAGE_BATCH) {
        let filter = Filter::builder()
            .name("image-id")
            .set_values(Some(batch.iter().map(|id| (*id).to_owned()).collect()))
            .build();
        let output = ec2
            .describe_images()
            .filters(filter)
            .send()
            .await
            .map_err(|err| Error::aws("DescribeImages", err))?;
        facts.extend(output.images().iter().filter_map(ImageFacts::of));
    }
    Ok(facts)
}

/// The image each recipe's `channel` pointer names, for the recipes that have one.
async fn pointers(
    ssm: &aws_sdk_ssm::Client,
    recipes: &[&RecipeName],
    channel: &Channel,
) -> Result<HashMap<RecipeName, String>> {
    let mut named = HashMap::new();
    for batch in recipes.chunks(POINTER_BATCH) {
        let names: HashMap<String, &RecipeName> = batch
            .iter()
            .map(|recipe| (pointer_name(recipe, channel), *recipe))
            .collect();
        let output = ssm
            .get_parameters()
            .set_names(Some(names.keys().cloned().collect()))
            .send()
            .await
            .map_err(|err| Error::aws("GetParameters", err))?;
        for parameter in output.parameters() {
            let recipe = parameter.name().and_then(|name| names.get(name));
            if let (Some(recipe), Some(image)) = (recipe, parameter.value()) {
                named.insert((*recipe).clone(), image.to_owned());
            }
        }
    }
    Ok(named)
}

/// An account to audit: its id, SDK configuration and call counter.
struct Account {
    id: String,
    config: SdkConfig,
    calls: ApiCalls,
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

fn ec2_client(config: &SdkConfig, calls: &ApiCalls) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(config)
            .interceptor(calls.clone())
            .build(),
    )
}

/// The account id in a role ARN (`arn:PARTITION:iam::ACCOUNT:role/NAME`).
fn role_account(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", account, resource]
            if account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.starts_with("role/") =>
        {
            Some(account)
        }
        _ => None,
    }
}

/// Assumes `role` and returns its account; the message says why it could not.
async fn assume(
    sts: &aws_sdk_sts::Client,
    config: &SdkConfig,
    role: &str,
) -> std::result::Result<Account, String> {
    let Some(id) = role_account(role) else {
        return Err(format!(
            "{role:?} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        ));
    };
    let output = sts
        .assume_role()
        .role_arn(role)
        .role_session_name(SESSION_NAME)
        .send()
        .await
        .map_err(|err| format!("cannot assume {role}: {}", Error::aws("AssumeRole", err)))?;
    let credentials = output
        .credentials()
        .ok_or_else(|| format!("AssumeRole of {role} returned no credentials"))?;
    let credentials = Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_owned()),
        std::time::SystemTime::try_from(*credentials.expiration()).ok(),
        SESSION_NAME,
    );
    Ok(Account {
        id: id.to_owned(),
        config: config
            .to_builder()
            .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(
                credentials,
            ))
            .build(),
        calls: ApiCalls::default(),
    })
}

/// The regions to audit in `account`, and a problem for each asked-for
/// region that does not exist or is not enabled there.
async fn regions(account: &Account, wanted: &Regions) -> Result<(Vec<String>, Vec<Problem>)> {
    let configured = account.config.region().map(ToString::to_string);
    let ec2 = ec2_client(&account.config, &account.calls);
    let output = ec2
        .describe_regions()
        .all_regions(true)
        .send()
        .await
        .map_err(|err| Error::aws("DescribeRegions", err))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_name_their_account() {
        assert_eq!(
            role_account("arn:aws:iam::210987654321:role/kiln-audit"),
            Some("210987654321")
        );
        assert_eq!(
            role_account("arn:aws-us-gov:iam::210987654321:role/path/kiln"),
            Some("210987654321")
        );
        assert_eq!(role_account("arn:aws:iam::210987654321:user/kiln"), None);
        assert_eq!(role_account("arn:aws:iam::2109:role/kiln"), None);
        assert_eq!(role_account("kiln-audit"), None);
    }
}
