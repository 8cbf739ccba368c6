//! The guard: only kiln images launch. EC2's account setting "Allowed AMIs"
//! lets an account discover and launch only images that match its criteria
//! (an account's own images are never restricted). [`compile`] turns the
//! recipes into criteria: the build account's images named as the recipes
//! name them, and the recipes' source owners' images (builders launch
//! Canonical's). [`plan`] shows what the fleet audit's latest report saw
//! running that they would block, per account; [`apply`] writes them in
//! each account and region the audit covered, in `audit-mode` or `enabled`
//! (refused while anything running would be blocked, unless forced with a
//! reason), through a role of its own in each member account: the audit's
//! roles are read-only and stay so. An organization's declarative policy
//! overrides the account setting: `apply` says where one manages it.
//!
//! AWS's limits are checked before any call (`ImageCriteriaInvalid`): at
//! most 10 criteria, 200 providers and 50 names each, a name 1-128
//! characters (at least 3 with `?`) of letters, digits, spaces and
//! `( ) [ ] . / - ' @ _ * ?` (EC2 API Reference, ImageCriterionRequest).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{
    AllowedImagesSettingsEnabledState, CreationDateConditionRequest,
    DeprecationTimeConditionRequest, ImageCriterionRequest,
};
use jiff::Timestamp;
use serde::Serialize;
use tracing::{info, warn};

use super::publish;
use super::report::Report;
use crate::aws::Context;
use crate::aws::roles;
use crate::aws::sdk::Answer;
use crate::error::{Error, Result};
use crate::recipe::Recipe;
use crate::recipe::naming::{NAME_PLACEHOLDERS, render_name};

/// Most criteria an account's setting takes.
pub const MAX_CRITERIA: usize = 10;
/// Most providers one criterion names.
pub const MAX_PROVIDERS: usize = 200;
/// Most image names one criterion names.
pub const MAX_NAMES: usize = 50;
/// Longest image name pattern.
pub const MAX_NAME_LEN: usize = 128;
/// An account id for checking criteria before the build account is known.
const ANY_ACCOUNT: &str = "000000000000";
/// The providers that are not account ids.
const NAMED_PROVIDERS: &[&str] = &["amazon", "aws-marketplace", "aws-backup-vault", "none"];

/// One criterion: an image is allowed when it meets all of one criterion's
/// conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Criterion {
    /// What it lets launch, in words.
    pub why: String,
    /// Whose images (account ids, or AWS's named providers).
    pub providers: Vec<String>,
    /// Name patterns (`*` any run of characters, `?` one); none: any name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Created at most this many days ago.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_days_since_created: Option<u32>,
    /// Deprecated at most this many days ago (or not deprecated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_days_since_deprecated: Option<u32>,
}

/// What the guard adds to the recipes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// More providers whose images may launch (another team's account).
    pub providers: Vec<String>,
    /// More name patterns for kiln's own images.
    pub names: Vec<String>,
    /// Only kiln images created at most this many days ago.
    pub max_days_since_created: Option<u32>,
    /// Only kiln images deprecated at most this many days ago.
    pub max_days_since_deprecated: Option<u32>,
}

/// The criteria for `recipes` built in `build_account`, checked against
/// AWS's limits.
pub fn compile(
    recipes: &[Recipe],
    build_account: &str,
    options: &Options,
) -> Result<Vec<Criterion>> {
    let mut names: BTreeSet<String> = recipes.iter().map(name_pattern).collect();
    names.extend(options.names.iter().cloned());
    let kiln = Criterion {
        why: "kiln's images, as the recipes name them".into(),
        providers: vec![build_account.to_owned()],
        names: names.into_iter().collect(),
        max_days_since_created: options.max_days_since_created,
        max_days_since_deprecated: options.max_days_since_deprecated,
    };
    let sources: BTreeSet<String> = recipes
        .iter()
        .flat_map(|r| r.file.source.owners.iter().cloned())
        .chain(options.providers.iter().cloned())
        .collect();
    let mut criteria = vec![kiln];
    if !sources.is_empty() {
        criteria.push(Criterion {
            why:
                "the recipes' source owners (builders launch their images) and the providers given"
                    .into(),
            providers: sources.into_iter().collect(),
            ..Criterion::default()
        });
    }
    let problems = problems(&criteria);
    if problems.is_empty() {
        Ok(criteria)
    } else {
        Err(Error::ImageCriteriaInvalid { problems })
    }
}

/// The name pattern of a recipe's images: its name template with the
/// recipe's name in, and `*` for what changes per build.
fn name_pattern(recipe: &Recipe) -> String {
    let values = NAME_PLACEHOLDERS
        .iter()
        .map(|p| {
            let value = if *p == "recipe" {
                recipe.name.to_string()
            } else {
                "*".into()
            };
            (*p, value)
        })
        .collect();
    let mut pattern = render_name(&recipe.file.image.name, &values);
    while pattern.contains("**") {
        pattern = pattern.replace("**", "*");
    }
    pattern
}

/// Where `criteria` exceed AWS's limits, in words.
fn problems(criteria: &[Criterion]) -> Vec<String> {
    let mut problems = Vec::new();
    if criteria.len() > MAX_CRITERIA {
        problems.push(format!(
            "{} criteria: at most {MAX_CRITERIA}",
            criteria.len()
        ));
    }
    for criterion in criteria {
        let what = &criterion.why;
        if criterion.providers.len() > MAX_PROVIDERS {
            problems.push(format!(
                "{what}: {} providers, at most {MAX_PROVIDERS}",
                criterion.providers.len()
            ));
        }
        if criterion.names.len() > MAX_NAMES {
            problems.push(format!(
                "{what}: {} names, at most {MAX_NAMES}",
                criterion.names.len()
            ));
        }
        for provider in &criterion.providers {
            let account = provider.len() == 12 && provider.bytes().all(|b| b.is_ascii_digit());
            if !account && !NAMED_PROVIDERS.contains(&provider.as_str()) {
                problems.push(format!(
                    "{what}: provider {provider:?} is not an account id nor one of {}",
                    NAMED_PROVIDERS.join(", ")
                ));
            }
        }
        if criterion.providers.iter().any(|p| p == "none") && criterion.providers.len() > 1 {
            problems.push(format!("{what}: `none` cannot stand with other providers"));
        }
        for name in &criterion.names {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "()[]./-'@_*? ".contains(c);
            let short = name.contains('?') && name.chars().count() < 3;
            if name.is_empty()
                || name.chars().count() > MAX_NAME_LEN
                || short
                || !name.chars().all(allowed)
            {
                problems.push(format!(
                    "{what}: name {name:?} must be 1-{MAX_NAME_LEN} characters (3 with `?`) of \
                     letters, digits, spaces and ( ) [ ] . / - ' @ _ * ?"
                ));
            }
        }
    }
    problems
}

/// Whether `pattern` (`*` any run of characters, `?` one) matches `name`.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// An image as the audit saw it.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// Its owner.
    pub owner: Option<&'a str>,
    /// Its name.
    pub name: Option<&'a str>,
    /// When it was made.
    pub created: Option<Timestamp>,
}

/// Whether `criteria` let `account` launch `image` (its own always). Only
/// account-id providers can be told from what the audit records: an image
/// that only AWS's named providers would allow counts as blocked.
pub fn allows(criteria: &[Criterion], account: &str, image: Seen<'_>, now: Timestamp) -> bool {
    let Some(owner) = image.owner else {
        return false;
    };
    if owner == account {
        return true;
    }
    criteria.iter().any(|c| {
        let provider = c.providers.iter().any(|p| p == owner);
        let named = c.names.is_empty()
            || image
                .name
                .is_some_and(|name| c.names.iter().any(|p| glob(p, name)));
        let young = match (c.max_days_since_created, image.created) {
            (None, _) => true,
            (Some(days), Some(created)) => {
                now.duration_since(created).as_secs() <= i64::from(days) * 86_400
            }
            (Some(_), None) => false,
        };
        provider && named && young
    })
}

/// An image running somewhere that the criteria would block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    /// The account running it.
    pub account: String,
    /// The region.
    pub region: String,
    /// The image.
    pub image_id: String,
    /// Its owner.
    pub owner: Option<String>,
    /// Its name.
    pub name: Option<String>,
    /// Instances on it there.
    pub instances: u64,
}

/// What `kiln guard plan` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The criteria.
    pub criteria: Vec<Criterion>,
    /// The audit report read (`s3://bucket/key`); absent: none was found,
    /// and nothing is known of what runs.
    pub report: Option<String>,
    /// When that audit ran.
    pub audited_at: Option<Timestamp>,
    /// The accounts and regions the audit covered: where `apply` writes.
    pub targets: Vec<(String, String)>,
    /// What runs that the criteria would block.
    pub blocked: Vec<Blocked>,
    /// Instances that would be blocked, by account.
    pub blocked_by_account: BTreeMap<String, u64>,
}

impl Plan {
    /// Instances that would be blocked, everywhere.
    pub fn blocked_instances(&self) -> u64 {
        self.blocked_by_account.values().sum()
    }
}

/// The criteria `ctx`'s recipes compile to, and what the audit's latest
/// report saw running that they would block.
pub async fn plan(ctx: &Context, options: &Options) -> Result<Plan> {
    let recipes = ctx.recipes();
    // The limits do not depend on which account builds: refuse before any call.
    compile(&recipes, ANY_ACCOUNT, options)?;
    let (build_account, _) = caller(ctx).await?;
    let criteria = compile(&recipes, &build_account, options)?;
    let latest = publish::latest(ctx).await?;
    let (report, audit) = match latest {
        Some((location, report)) => (Some(location), Some(report)),
        None => (None, None),
    };
    let mut plan = Plan {
        criteria,
        report,
        audited_at: audit.as_ref().map(|a| a.generated_at),
        targets: Vec::new(),
        blocked: Vec::new(),
        blocked_by_account: BTreeMap::new(),
    };
    if let Some(audit) = &audit {
        plan.targets = audit
            .scopes
            .iter()
            .filter(|s| s.audited)
            .map(|s| (s.account.clone(), s.region.clone()))
            .collect();
        plan.blocked = blocked(&plan.criteria, audit);
        plan.blocked_by_account = by_account(&plan.blocked);
    }
    Ok(plan)
}

/// What `report` saw running that `criteria` would block.
pub fn blocked(criteria: &[Criterion], report: &Report) -> Vec<Blocked> {
    report
        .images
        .iter()
        .filter(|row| row.instances > 0)
        .filter(|row| {
            let seen = Seen {
                owner: row.owner.as_deref(),
                name: row.name.as_deref(),
                created: row.created,
            };
            !allows(criteria, &row.account, seen, report.generated_at)
        })
        .map(|row| Blocked {
            account: row.account.clone(),
            region: row.region.clone(),
            image_id: row.image_id.clone(),
            owner: row.owner.clone(),
            name: row.name.clone(),
            instances: row.instances,
        })
        .collect()
}

/// Adds to `report` what the recipes' criteria would block in each audited
/// account (`would_block`; zero included); nothing without recipes. The
/// audit stands without it: a failure here is logged, and the report goes
/// out without the figure.
pub async fn annotate(ctx: &Context, report: &mut Report) {
    let recipes = ctx.recipes();
    if recipes.is_empty() {
        return;
    }
    let criteria = match caller(ctx).await {
        Ok((account, _)) => compile(&recipes, &account, &Options::default()),
        Err(err) => Err(err),
    };
    let criteria = match criteria {
        Ok(criteria) => criteria,
        Err(err) => {
            warn!(error = %err, "no guard figure in the report");
            return;
        }
    };
    let mut counts: BTreeMap<String, u64> = report
        .scopes
        .iter()
        .filter(|s| s.audited)
        .map(|s| (s.account.clone(), 0))
        .collect();
    for (account, instances) in by_account(&blocked(&criteria, report)) {
        *counts.entry(account).or_default() += instances;
    }
    report.would_block = Some(counts);
}

/// Instances of `blocked`, by account.
pub fn by_account(blocked: &[Blocked]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for b in blocked {
        *counts.entry(b.account.clone()).or_default() += b.instances;
    }
    counts
}

/// The caller's account and partition (`aws`, `aws-cn`, ...).
async fn caller(ctx: &Context) -> Result<(String, String)> {
    let identity = aws_sdk_sts::Client::new(&ctx.config)
        .get_caller_identity()
        .send()
        .await
        .or_aws("GetCallerIdentity")?;
    let partition = identity
        .arn()
        .and_then(|arn| arn.split(':').nth(1))
        .unwrap_or("aws")
        .to_owned();
    let account = identity
        .account()
        .ok_or_else(|| Error::InvalidInput("GetCallerIdentity answered no account".into()))?;
    Ok((account.to_owned(), partition))
}

/// The mode `apply` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::Display, strum::EnumString)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Mode {
    /// Nothing is restricted; each image says whether it would be allowed.
    AuditMode,
    /// Only allowed images are discoverable and launch.
    Enabled,
}

/// What `apply` did in one account and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The setting's state now, as EC2 reports it.
    pub state: Option<String>,
    /// Why it could not be written there (a role not assumed, an
    /// organization's declarative policy managing it, a call refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Writes `plan`'s criteria and `mode` in each of its targets: the caller's
/// own account directly, every other through `role_name` in that account.
/// `enabled` is refused (`GuardRefused`, nothing written) while the plan
/// sees instances it would block, unless `forced` gives a reason.
pub async fn apply(
    ctx: &Context,
    plan: &Plan,
    mode: Mode,
    role_name: &str,
    forced: Option<&str>,
) -> Result<Vec<Applied>> {
    let blocked = plan.blocked_instances();
    if mode == Mode::Enabled && blocked > 0 && forced.is_none() {
        return Err(Error::GuardRefused {
            instances: blocked,
            accounts: plan
                .blocked_by_account
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if plan.report.is_none() {
        return Err(Error::InvalidInput(
            "no fleet audit report: run the audit first (kiln audit, or the daily audit-fleet), \
             so the guard knows where to apply and what it would block"
                .into(),
        ));
    }
    let (home, partition) = caller(ctx).await?;
    let sts = aws_sdk_sts::Client::new(&ctx.config);
    let requests = requests(&plan.criteria);
    let mut applied = Vec::new();
    for (account, region) in &plan.targets {
        let config = if *account == home {
            Ok(ctx.config.clone())
        } else {
            let role = format!("arn:{partition}:iam::{account}:role/{role_name}");
            roles::assume(&sts, &ctx.config, &role, "kiln-guard")
                .await
                .map(|(_, c)| c)
        };
        let outcome = match config {
            Ok(config) => {
                let there = config
                    .to_builder()
                    .region(aws_config::Region::new(region.clone()))
                    .build();
                write(&aws_sdk_ec2::Client::new(&there), &requests, mode).await
            }
            Err(problem) => Err(problem),
        };
        let (state, problem) = match outcome {
            Ok(state) => (Some(state), None),
            Err(problem) => (None, Some(problem)),
        };
        info!(%account, %region, ?state, ?problem, "guard applied");
        applied.push(Applied {
            account: account.clone(),
            region: region.clone(),
            state,
            problem,
        });
    }
    if let Some(reason) = forced {
        info!(reason, blocked, "guard enabled by force");
    }
    Ok(applied)
}

fn requests(criteria: &[Criterion]) -> Vec<ImageCriterionRequest> {
    criteria
        .iter()
        .map(|c| {
            ImageCriterionRequest::builder()
                .set_image_providers(Some(c.providers.clone()))
                .set_image_names((!c.names.is_empty()).then(|| c.names.clone()))
                .set_creation_date_condition(c.max_days_since_created.map(|d| {
                    CreationDateConditionRequest::builder()
                        .maximum_days_since_created(d.try_into().unwrap_or(i32::MAX))
                        .build()
                }))
                .set_deprecation_time_condition(c.max_days_since_deprecated.map(|d| {
                    DeprecationTimeConditionRequest::builder()
                        .maximum_days_since_deprecated(d.try_into().unwrap_or(i32::MAX))
                        .build()
                }))
                .build()
        })
        .collect()
}

/// Writes the criteria and the mode with `ec2`; answers the state EC2
/// reports after, or why it could not.
async fn write(
    ec2: &aws_sdk_ec2::Client,
    criteria: &[ImageCriterionRequest],
    mode: Mode,
) -> std::result::Result<String, String> {
    let current = ec2
        .get_allowed_images_settings()
        .send()
        .await
        .or_aws("GetAllowedImagesSettings")
        .map_err(|e| e.to_string())?;
    if current.managed_by().map(|m| m.as_str()) == Some("declarative-policy") {
        return Err(
            "the organization's declarative policy manages this setting: change it there".into(),
        );
    }
    ec2.replace_image_criteria_in_allowed_images_settings()
        .set_image_criteria(Some(criteria.to_vec()))
        .send()
        .await
        .or_aws("ReplaceImageCriteriaInAllowedImagesSettings")
        .map_err(|e| e.to_string())?;
    let state = match mode {
        Mode::AuditMode => AllowedImagesSettingsEnabledState::AuditMode,
        Mode::Enabled => AllowedImagesSettingsEnabledState::Enabled,
    };
    ec2.enable_allowed_images_settings()
        .allowed_images_settings_state(state)
        .send()
        .await
        .or_aws("EnableAllowedImagesSettings")
        .map_err(|e| e.to_string())?;
    let now = ec2
        .get_allowed_images_settings()
        .send()
        .await
        .or_aws("GetAllowedImagesSettings")
        .map_err(|e| e.to_string())?;
    Ok(now.state().unwrap_or("unknown").to_owned())
}
