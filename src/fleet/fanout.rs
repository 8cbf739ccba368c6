//! The audit state machine's steps (`statemachine/audit.asl.json`): for an
//! organization one invocation cannot cover, the accounts are fanned out as
//! a Distributed Map and the parts merged into the same report
//! [`super::audit`] makes.
//!
//! - **plan**: the accounts (`GetCallerIdentity`, the roles or the
//!   organization's active accounts), written as the map's items
//!   (`<RUNS><run>/items.json`) beside the plan (`plan.json`);
//! - **part**: one batch of accounts, each with its role assumed once for
//!   all its regions; each account's part is written to
//!   `<RUNS><run>/parts/<account>/<role name or home>.json` (a part can outgrow the 256 KiB a
//!   state's output may hold, so parts never travel through the map);
//! - **fold**: the plan's accounts read back, an account whose part is
//!   missing (its child execution failed, within the map's tolerated
//!   failures or beyond them) reported as `unfinished`, the report
//!   assembled (the Lambda then annotates and publishes it as the direct
//!   audit's).

use std::sync::Arc;

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::accounts::{Home, Member, Plan, audit_members, plan, with_retries};
use super::report::{AccountAudit, AuditPath, Problem, ProblemKind, Report};
use super::scope::Request;
use crate::aws::objects::{read, write};
use crate::error::{Error, Result};

/// Where the audit state machine keeps its runs in the audit bucket.
pub const RUNS: &str = "kiln/audit/runs/";
/// Parts the fold step reads at once.
const FOLD_READS: usize = 16;
/// The longest run id: a Step Functions execution name.
const RUN_MAX: usize = 80;

/// A step of the audit state machine, by its `action`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Step {
    /// List the accounts.
    Plan(PlanStep),
    /// Audit a batch of them.
    Part(PartStep),
    /// Merge the parts into the report.
    Fold(FoldStep),
}

/// The plan step's event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStep {
    /// The run (the execution's name): where its files go.
    pub run: String,
    /// The audit asked for (the execution's input).
    #[serde(default)]
    pub request: Request,
}

/// What the plan step answers: what the map iterates over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    /// The run.
    pub run: String,
    /// The key of the items (the accounts) in the audit bucket.
    pub items: String,
    /// How many accounts.
    pub accounts: usize,
    /// The request, with the deployment's defaults filled in.
    pub request: Request,
    /// The home account; none when the credentials could not say (the
    /// fold reports why).
    pub home: Option<Home>,
}

/// A part step's event: one batch of the map's items.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartStep {
    /// The run.
    pub run: String,
    /// The request, as planned.
    pub request: Request,
    /// The home account.
    pub home: Home,
    /// The accounts of this batch.
    pub items: Vec<Member>,
}

/// What a part step answers (the parts themselves are in the bucket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartDone {
    /// The accounts audited.
    pub accounts: Vec<String>,
    /// Instances counted in them.
    pub instances: u64,
}

/// The fold step's event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoldStep {
    /// The run.
    pub run: String,
    /// How the map ended: its `ResultWriterDetails` and `MapRunArn`, or the
    /// error it failed with (beyond its tolerated failures).
    #[serde(default)]
    pub map: MapOutcome,
}

/// How the map state ended, as Step Functions reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MapOutcome {
    /// The map run, when it ran.
    #[serde(rename = "MapRunArn")]
    pub map_run_arn: Option<String>,
    /// The error, when the map failed.
    #[serde(rename = "Error")]
    pub error: Option<String>,
    /// Its cause.
    #[serde(rename = "Cause")]
    pub cause: Option<String>,
}

/// The plan as the fold reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredPlan {
    request: Request,
    started_at: Timestamp,
    plan: Plan,
}

/// What a step made.
#[derive(Debug, Clone, PartialEq)]
pub enum Stepped {
    /// The plan.
    Planned(Planned),
    /// A batch's accounts, audited.
    Part(PartDone),
    /// The report, to annotate and publish as the direct audit's is.
    Folded(Report),
}

/// Runs one step.
pub async fn handle(ctx: &crate::aws::Context, step: Step) -> Result<Stepped> {
    let bucket = ctx.settings.audit_bucket.as_deref().ok_or_else(|| {
        Error::InvalidInput(
            "the audit state machine keeps its parts in KILN_AUDIT_BUCKET, which is not set".into(),
        )
    })?;
    let s3 = aws_sdk_s3::Client::new(&ctx.config);
    match step {
        Step::Plan(step) => {
            checked_run(&step.run)?;
            let request = step.request.or_defaults(&ctx.settings);
            let scope = request.clone().scope()?;
            if scope.config_aggregator.is_some() {
                return Err(Error::InvalidInput(
                    "the AWS Config path is one query: run it with one audit-fleet invocation, not the audit state machine".into(),
                ));
            }
            let started_at = Timestamp::now();
            let plan = plan(&with_retries(&ctx.config), &scope).await;
            let items = run_key(&step.run, "items.json");
            write(&s3, bucket, &items, JSON, to_bytes(&plan.members)?).await?;
            let planned = Planned {
                run: step.run.clone(),
                items,
                accounts: plan.members.len(),
                request: request.clone(),
                home: plan.home.clone(),
            };
            let stored = StoredPlan {
                request,
                started_at,
                plan,
            };
            write(
                &s3,
                bucket,
                &run_key(&step.run, PLAN),
                JSON,
                to_bytes(&stored)?,
            )
            .await?;
            Ok(Stepped::Planned(planned))
        }
        Step::Part(step) => {
            checked_run(&step.run)?;
            let scope = step.request.scope()?;
            let audits = audit_members(
                &with_retries(&ctx.config),
                &step.home,
                &step.items,
                &scope,
                &Arc::default(),
            )
            .await;
            let mut done = PartDone {
                accounts: Vec::new(),
                instances: 0,
            };
            for audit in audits {
                let key = part_key(&step.run, &audit.account, audit.role.as_deref());
                write(&s3, bucket, &key, JSON, to_bytes(&audit)?).await?;
                done.instances += audit.regions.iter().map(|r| r.audit.instances).sum::<u64>();
                done.accounts.push(audit.account);
            }
            Ok(Stepped::Part(done))
        }
        Step::Fold(step) => Ok(Stepped::Folded(fold(&s3, bucket, &step).await?)),
    }
}

const JSON: &str = "application/json";
const PLAN: &str = "plan.json";

/// A run id is an execution name (Step Functions API Reference,
/// StartExecution `name`: 1 to 80 characters, no whitespace, brackets,
/// wildcards, control characters nor any of ``"#%\^|~`$&,;:/``), here held
/// to letters, digits and `-_.=+@`, which every S3 key takes as they are.
fn checked_run(run: &str) -> Result<()> {
    let fits = (1..=RUN_MAX).contains(&run.len())
        && run
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.=+@".contains(&b));
    if fits {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "run {run:?} is not an execution name kiln takes (1-{RUN_MAX} of letters, digits and -_.=+@)"
        )))
    }
}

fn run_key(run: &str, name: &str) -> String {
    format!("{RUNS}{run}/{name}")
}

/// Where the part of `account` seen through `role` goes: one part per
/// account and role (two roles naming one account are two parts, as the
/// direct audit audits each).
fn part_key(run: &str, account: &str, role: Option<&str>) -> String {
    let seen_as = role
        .and_then(|role| role.split_once(":role/"))
        .map_or("home", |(_, name)| name);
    run_key(run, &format!("parts/{account}/{seen_as}.json"))
}

fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|err| {
        Error::InvalidInput(format!("a part of the audit does not serialize: {err}"))
    })
}

async fn read_json<T: DeserializeOwned>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<T>> {
    let Some(body) = read(s3, bucket, key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|err| Error::AuditReportUnreadable {
            report: format!("s3://{bucket}/{key}"),
            reason: err.to_string(),
        })
}

/// The report of run `step.run`: every planned account's part, or a
/// problem saying it never arrived.
async fn fold(s3: &aws_sdk_s3::Client, bucket: &str, step: &FoldStep) -> Result<Report> {
    checked_run(&step.run)?;
    let plan_key = run_key(&step.run, PLAN);
    let stored: StoredPlan = read_json(s3, bucket, &plan_key).await?.ok_or_else(|| {
        Error::InvalidInput(format!(
            "run {} has no plan (s3://{bucket}/{plan_key}): was its plan step run?",
            step.run
        ))
    })?;
    let scope = stored.request.clone().scope()?;
    let mut audits = Vec::new();
    let mut problems = stored.plan.problems;
    for batch in stored.plan.members.chunks(FOLD_READS) {
        let mut reads = JoinSet::new();
        for member in batch {
            let (s3, bucket, key, account) = (
                s3.clone(),
                bucket.to_owned(),
                part_key(&step.run, &member.account, member.role.as_deref()),
                member.account.clone(),
            );
            reads.spawn(async move {
                let part: Result<Option<AccountAudit>> = read_json(&s3, &bucket, &key).await;
                (account, part)
            });
        }
        while let Some(done) = reads.join_next().await {
            let (account, part) = done.map_err(|err| {
                Error::InvalidInput(format!("reading a part of the audit panicked: {err}"))
            })?;
            match part? {
                Some(audit) => audits.push(audit),
                None => problems.push(unfinished(account, &step.map)),
            }
        }
    }
    let took = Timestamp::now().duration_since(stored.started_at);
    Ok(Report::assemble(
        &scope,
        audits,
        problems,
        stored.plan.api_calls,
        u64::try_from(took.as_millis()).unwrap_or(0),
        AuditPath::StateMachine,
    ))
}

fn unfinished(account: String, map: &MapOutcome) -> Problem {
    let mut message = format!("the audit of account {account} did not finish");
    if let Some(error) = &map.error {
        message.push_str(&format!(": the map failed with {error}"));
        if let Some(cause) = &map.cause {
            message.push_str(&format!(" ({cause})"));
        }
    }
    if let Some(run) = &map.map_run_arn {
        message.push_str(&format!("; its failed item is in map run {run}"));
    }
    Problem::account(Some(account), ProblemKind::Unfinished, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_an_execution_name() {
        assert!(checked_run("audit-2026-12-01_0630").is_ok());
        assert!(checked_run("daily.2026-12-01+prod@kiln").is_ok());
        for bad in ["", "a/b", "../x", &"a".repeat(81)] {
            assert!(checked_run(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_part_says_how_the_map_ended() {
        let map = MapOutcome {
            map_run_arn: None,
            error: Some("States.ExceedToleratedFailureThreshold".into()),
            cause: Some("too many".into()),
        };
        let problem = unfinished("210987654321".into(), &map);
        assert_eq!(problem.kind, ProblemKind::Unfinished);
        assert_eq!(
            problem.message,
            "the audit of account 210987654321 did not finish: the map failed with \
             States.ExceedToleratedFailureThreshold (too many)"
        );
    }
}
