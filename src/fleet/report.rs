//! The audit report: a versioned JSON document, and the terminal table that
//! leads with the answer (how much of the fleet is on the promoted image, and
//! who is behind).

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::scope::{Scope, Target};
use super::tally::{ImageFacts, Status};
use crate::ids::{Channel, RecipeName};

/// What one region's audit found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// What one account's audit found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountAudit {
    /// The account.
    pub account: String,
    /// The role it was seen through; none for the home account.
    pub role: Option<String>,
    /// Each audited region.
    pub regions: Vec<RegionPart>,
    /// What could not be audited.
    pub problems: Vec<Problem>,
    /// Requests made for the account itself (AssumeRole, DescribeRegions).
    pub api_calls: BTreeMap<String, u64>,
}

/// One audited region of an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionPart {
    /// Its summary (counts filled in when the report is assembled).
    pub summary: ScopeSummary,
    /// What it found.
    pub audit: RegionAudit,
}

/// How a report was produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum AuditPath {
    /// In one process, accounts and regions concurrently: `kiln audit` or
    /// one `audit-fleet` invocation.
    #[default]
    Direct,
    /// Fanned out by the audit state machine: one child execution per batch
    /// of accounts, the parts merged by a fold step.
    StateMachine,
    /// From an AWS Config aggregator's recorded instances (one query), the
    /// images described from the home account.
    Config,
}

/// The report format's version: bumped on any change a reader could notice
/// (2: `path`, `data_as_of`, and each pointer's `created` and `moved`).
pub const VERSION: u32 = 2;

/// Seconds in a day, for image ages.
const DAY: i64 = 86_400;

/// A whole audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// When the audit ran.
    pub generated_at: Timestamp,
    /// The channel instances were compared against.
    pub channel: Channel,
    /// The instance tag that names services.
    pub service_tag: String,
    /// The answer, fleet-wide.
    pub summary: Summary,
    /// Each audited region of each account.
    pub scopes: Vec<ScopeSummary>,
    /// Each service, the most behind first.
    pub services: Vec<ServiceRow>,
    /// Each distinct image per account and region, by status then instances.
    pub images: Vec<ImageRow>,
    /// The channel pointer of every recipe seen, per region.
    pub pointers: Vec<PointerRow>,
    /// What could not be audited or established; the rest is still reported.
    pub problems: Vec<Problem>,
    /// HTTP requests made, by operation (retries included).
    pub api_calls: BTreeMap<String, u64>,
    /// How long the audit took.
    pub duration_ms: u64,
    /// How it was produced (reports of version 1 were all `direct`).
    #[serde(default)]
    pub path: AuditPath,
    /// How fresh the instances are when they were not read live: on the
    /// `config` path, the newest configuration item AWS Config had recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_as_of: Option<Timestamp>,
    /// Running instances the guard's criteria (`kiln guard`, compiled from
    /// the recipes) would block, by audited account; absent without recipes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_block: Option<BTreeMap<String, u64>>,
}

/// The fleet-wide answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Instances counted (not terminated; kiln's builders apart).
    pub instances: u64,
    /// Instances on the image their recipe's pointer names.
    pub current: u64,
    /// `current` as a percentage of `instances`, to one decimal.
    pub current_percent: f64,
    /// Instances on an older, foreign or deregistered image.
    pub behind: u64,
    /// Instances per status (every status, zeros included).
    pub by_status: BTreeMap<Status, u64>,
    /// Kiln's own builder and test instances, not counted above.
    pub builders: u64,
    /// Accounts audited.
    pub accounts: usize,
    /// Regions audited, over all accounts.
    pub regions: usize,
}

/// One audited region of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeSummary {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// False when the region's audit failed (see the problems).
    pub audited: bool,
    /// Instances counted.
    pub instances: u64,
    /// Kiln's own builder and test instances.
    pub builders: u64,
    /// Instances per status.
    pub by_status: BTreeMap<Status, u64>,
    /// HTTP requests made for this region, by operation.
    pub api_calls: BTreeMap<String, u64>,
}

impl ScopeSummary {
    /// A region before its counts are known.
    pub fn new(account: &str, region: &str, api_calls: BTreeMap<String, u64>) -> Self {
        Self {
            account: account.to_owned(),
            region: region.to_owned(),
            audited: true,
            instances: 0,
            builders: 0,
            by_status: zeros(),
            api_calls,
        }
    }

    /// The same region, marked as failed.
    pub fn failed(self) -> Self {
        Self {
            audited: false,
            ..self
        }
    }
}

/// One service (by the service tag), over every account and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRow {
    /// The tag's value, or `(untagged)`.
    pub service: String,
    /// Its instances.
    pub instances: u64,
    /// Of which behind.
    pub behind: u64,
    /// Its instances per status.
    pub by_status: BTreeMap<Status, u64>,
}

/// One distinct image in one account and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRow {
    /// The account whose instances run it.
    pub account: String,
    /// The region.
    pub region: String,
    /// The image id.
    pub image_id: String,
    /// Its status against the channel.
    pub status: Status,
    /// Its name (none when deregistered).
    pub name: Option<String>,
    /// The kiln recipe that built it.
    pub recipe: Option<RecipeName>,
    /// The owning account.
    pub owner: Option<String>,
    /// When it was created.
    pub created: Option<Timestamp>,
    /// Whole days since it was created.
    pub age_days: Option<i64>,
    /// Instances running it.
    pub instances: u64,
    /// Instances running it, per service.
    pub services: BTreeMap<String, u64>,
}

impl ImageRow {
    /// The row of image `id` in `target`, with its instances per service.
    pub fn new<'s>(
        target: Target<'_>,
        id: &str,
        facts: Option<&ImageFacts>,
        status: Status,
        services: impl Iterator<Item = (&'s str, u64)>,
        now: Timestamp,
    ) -> Self {
        let services: BTreeMap<String, u64> = services.map(|(s, n)| (s.to_owned(), n)).collect();
        let created = facts.and_then(|f| f.created);
        Self {
            account: target.account.to_owned(),
            region: target.region.to_owned(),
            image_id: id.to_owned(),
            status,
            name: facts.and_then(|f| f.name.clone()),
            recipe: facts.and_then(|f| f.recipe.clone()),
            owner: facts.and_then(|f| f.owner.clone()),
            created,
            age_days: created.map(|c| now.duration_since(c).as_secs() / DAY),
            instances: services.values().sum(),
            services,
        }
    }
}

/// A recipe's channel pointer in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointerRow {
    /// The account holding it.
    pub account: String,
    /// The region.
    pub region: String,
    /// The recipe.
    pub recipe: RecipeName,
    /// The channel.
    pub channel: Channel,
    /// The image it names; none when the recipe has no pointer there.
    pub image_id: Option<String>,
    /// When that image was created.
    #[serde(default)]
    pub created: Option<Timestamp>,
    /// When the pointer last moved (its parameter's last write).
    #[serde(default)]
    pub moved: Option<Timestamp>,
}

/// A part of the audit that failed, or a fact it could not establish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The account concerned, when known.
    pub account: Option<String>,
    /// The region concerned, when one.
    pub region: Option<String>,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// What happened, for people.
    pub message: String,
}

impl Problem {
    /// A problem of a whole account (or of the audit, with no account).
    pub fn account(account: Option<String>, kind: ProblemKind, message: String) -> Self {
        Self {
            account,
            region: None,
            kind,
            message,
        }
    }
}

/// The kinds of [`Problem`]: stable names for alarms and scripts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::Display, strum::AsRefStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum ProblemKind {
    /// A region that does not exist.
    UnknownRegion,
    /// A region that exists but is not enabled in the account.
    RegionNotEnabled,
    /// A role that could not be assumed: that account is not audited.
    RoleNotAssumed,
    /// A recipe with images in the fleet but no pointer on the channel.
    NoPointer,
    /// An AWS call failed beyond its retries: that part is not audited.
    CallFailed,
    /// An account's part of a fanned-out audit never arrived (its child
    /// execution failed beyond its retries): that account is not audited.
    Unfinished,
}

fn zeros() -> BTreeMap<Status, u64> {
    Status::all().map(|s| (s, 0)).collect()
}

impl Report {
    /// The report of audited `accounts`, with `problems` met before them and
    /// the `api_calls` that found them; it took `duration_ms`, by `path`.
    pub fn assemble(
        scope: &Scope,
        accounts: Vec<AccountAudit>,
        mut problems: Vec<Problem>,
        mut api_calls: BTreeMap<String, u64>,
        duration_ms: u64,
        path: AuditPath,
    ) -> Self {
        let mut scopes = Vec::new();
        let mut images = Vec::new();
        let mut pointers = Vec::new();
        for account in accounts {
            add_counts(&mut api_calls, &account.api_calls);
            problems.extend(account.problems);
            for RegionPart { mut summary, audit } in account.regions {
                summary.instances = audit.instances;
                summary.builders = audit.builders;
                for image in &audit.images {
                    *summary.by_status.entry(image.status).or_default() += image.instances;
                }
                add_counts(&mut api_calls, &summary.api_calls);
                scopes.push(summary);
                images.extend(audit.images);
                pointers.extend(audit.pointers);
                problems.extend(audit.problems);
            }
        }
        scopes.sort_by(|a, b| (&a.account, &a.region).cmp(&(&b.account, &b.region)));
        images.sort_by(|a, b| {
            (
                a.status,
                std::cmp::Reverse(a.instances),
                &a.image_id,
                &a.region,
                &a.account,
            )
                .cmp(&(
                    b.status,
                    std::cmp::Reverse(b.instances),
                    &b.image_id,
                    &b.region,
                    &b.account,
                ))
        });
        pointers.sort_by(|a, b| {
            (&a.recipe, &a.region, &a.account).cmp(&(&b.recipe, &b.region, &b.account))
        });
        // Every audited account of a region reads the same home pointer.
        pointers.dedup();
        problems.sort_by(|a, b| {
            (&a.account, &a.region, a.kind.as_ref(), &a.message).cmp(&(
                &b.account,
                &b.region,
                b.kind.as_ref(),
                &b.message,
            ))
        });
        let summary = Summary::of(&scopes);
        Self {
            version: VERSION,
            generated_at: Timestamp::now(),
            channel: scope.channel.clone(),
            service_tag: scope.service_tag.clone(),
            services: services(&images),
            summary,
            scopes,
            images,
            pointers,
            problems,
            api_calls,
            duration_ms,
            path,
            data_as_of: None,
            would_block: None,
        }
    }

    /// How the report was produced, for people: the path, and how fresh
    /// instances read from AWS Config are (`direct`, `state machine`,
    /// `AWS Config, instances as recorded up to 2026-12-01 06:00 UTC`).
    pub fn provenance(&self) -> String {
        match (self.path, self.data_as_of) {
            (AuditPath::Direct, _) => "direct".into(),
            (AuditPath::StateMachine, _) => "state machine".into(),
            (AuditPath::Config, Some(at)) => format!(
                "AWS Config, instances as recorded up to {}",
                at.strftime("%Y-%m-%d %H:%M UTC")
            ),
            (AuditPath::Config, None) => "AWS Config, no instance recorded".into(),
        }
    }

    /// How many parts of the fleet could not be audited (a recipe with no
    /// pointer is a fact, not a failure: it does not count).
    pub fn incomplete(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.kind != ProblemKind::NoPointer)
            .count()
    }
}

impl Summary {
    fn of(scopes: &[ScopeSummary]) -> Self {
        let mut by_status = zeros();
        for scope in scopes {
            for (status, n) in &scope.by_status {
                *by_status.entry(*status).or_default() += n;
            }
        }
        let instances: u64 = scopes.iter().map(|s| s.instances).sum();
        let current = by_status.get(&Status::Current).copied().unwrap_or(0);
        let behind = by_status
            .iter()
            .filter(|(status, _)| status.is_behind())
            .map(|(_, n)| n)
            .sum();
        let mut accounts: Vec<&str> = scopes.iter().map(|s| s.account.as_str()).collect();
        accounts.sort_unstable();
        accounts.dedup();
        Self {
            instances,
            current,
            current_percent: percent(current, instances),
            behind,
            by_status,
            builders: scopes.iter().map(|s| s.builders).sum(),
            accounts: accounts.len(),
            regions: scopes.iter().filter(|s| s.audited).count(),
        }
    }
}

/// `part` of `whole` in percent, to one decimal (0 of nothing).
pub(super) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    let tenths = (part * 1000 + whole / 2) / whole;
    // Tenths of a percent are at most 1,000: exact in an f64.
    f64::from(u32::try_from(tenths).unwrap_or(1000)) / 10.0
}

/// Each service's instances per status, the most behind first.
fn services(images: &[ImageRow]) -> Vec<ServiceRow> {
    let mut by_service: HashMap<&str, BTreeMap<Status, u64>> = HashMap::new();
    for image in images {
        for (service, n) in &image.services {
            *by_service
                .entry(service)
                .or_insert_with(zeros)
                .entry(image.status)
                .or_default() += n;
        }
    }
    let mut rows: Vec<ServiceRow> = by_service
        .into_iter()
        .map(|(service, by_status)| ServiceRow {
            service: service.to_owned(),
            instances: by_status.values().sum(),
            behind: by_status
                .iter()
                .filter(|(s, _)| s.is_behind())
                .map(|(_, n)| n)
                .sum(),
            by_status,
        })
        .collect();
    rows.sort_by(|a, b| {
        (
            std::cmp::Reverse(a.behind),
            std::cmp::Reverse(a.instances),
            &a.service,
        )
            .cmp(&(
                std::cmp::Reverse(b.behind),
                std::cmp::Reverse(b.instances),
                &b.service,
            ))
    });
    rows
}

fn add_counts(total: &mut BTreeMap<String, u64>, counts: &BTreeMap<String, u64>) {
    for (operation, n) in counts {
        *total.entry(operation.clone()).or_default() += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_at_a_glance() {
        assert!((percent(1, 3) - 33.3).abs() < f64::EPSILON);
        assert!((percent(2, 3) - 66.7).abs() < f64::EPSILON);
        assert!((percent(0, 0)).abs() < f64::EPSILON);
        assert!((percent(5, 5) - 100.0).abs() < f64::EPSILON);
    }
}
