//! The guard: EC2's Allowed AMIs setting compiled from the recipes, so that
//! only kiln's images (and the recipes' sources) launch.

use clap::Subcommand;
use kiln::Error;
use kiln::fleet::guard::{self, Applied, Mode, Options, Plan};

use crate::args::{Output, context};
use crate::output::{print, table};

/// What the criteria take beyond the recipes.
#[derive(Debug, clap::Args)]
pub struct CriteriaArgs {
    /// Another provider whose images may launch (an account id; repeatable).
    #[arg(long = "provider", value_name = "ACCOUNT")]
    providers: Vec<String>,
    /// Another name pattern for kiln's images (`*`, `?`; repeatable).
    #[arg(long = "name", value_name = "PATTERN")]
    names: Vec<String>,
    /// Only kiln images created at most this many days ago.
    #[arg(long, value_name = "DAYS")]
    max_age_days: Option<u32>,
    /// Only kiln images deprecated at most this many days ago.
    #[arg(long, value_name = "DAYS")]
    max_days_deprecated: Option<u32>,
}

impl CriteriaArgs {
    fn options(&self) -> Options {
        Options {
            providers: self.providers.clone(),
            names: self.names.clone(),
            max_days_since_created: self.max_age_days,
            max_days_since_deprecated: self.max_days_deprecated,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The Allowed AMIs criteria the recipes compile to, and what the fleet
    /// audit's latest report saw running that they would block.
    Plan {
        #[command(flatten)]
        criteria: CriteriaArgs,
    },
    /// Write the criteria in every account and region the audit covered
    /// (other accounts through --role-name), in audit-mode or enabled.
    Apply {
        #[command(flatten)]
        criteria: CriteriaArgs,
        /// audit-mode (restricts nothing, marks each image) or enabled.
        #[arg(long)]
        mode: Mode,
        /// The role assumed in each other account (its own: the audit's
        /// roles are read-only).
        #[arg(long, default_value = "kiln-guard")]
        role_name: String,
        /// Enable even though running instances would be blocked.
        #[arg(long, requires = "reason")]
        force: bool,
        /// Why, when forced.
        #[arg(long)]
        reason: Option<String>,
    },
}

pub async fn run(output: Output, command: &Command) -> Result<(), Error> {
    let ctx = context(|_| {}).await;
    match command {
        Command::Plan { criteria } => {
            let plan = guard::plan(&ctx, &criteria.options()).await?;
            print(output, &plan, || plan_text(&plan));
        }
        Command::Apply {
            criteria,
            mode,
            role_name,
            force,
            reason,
        } => {
            let plan = guard::plan(&ctx, &criteria.options()).await?;
            let forced = force.then_some(reason.as_deref()).flatten();
            let applied = guard::apply(&ctx, &plan, *mode, role_name, forced).await?;
            print(output, &applied, || applied_text(&applied));
            if applied.iter().any(|a| a.problem.is_some()) {
                return Err(Error::InvalidInput(
                    "the guard could not be written everywhere (see above)".into(),
                ));
            }
        }
    }
    Ok(())
}

fn plan_text(plan: &Plan) -> String {
    let mut lines = vec!["criteria (an image is allowed by meeting all of one):".to_owned()];
    for c in &plan.criteria {
        let mut parts = vec![format!("providers {}", c.providers.join(", "))];
        if !c.names.is_empty() {
            parts.push(format!("names {}", c.names.join(", ")));
        }
        if let Some(days) = c.max_days_since_created {
            parts.push(format!("created within {days} days"));
        }
        if let Some(days) = c.max_days_since_deprecated {
            parts.push(format!("deprecated within {days} days"));
        }
        lines.push(format!("  {}: {}", c.why, parts.join("; ")));
    }
    match &plan.report {
        None => lines.push("no fleet audit report found: nothing is known of what runs".into()),
        Some(report) => {
            lines.push(format!(
                "{} instance(s) would be blocked (audit {report}); an account's own images never are",
                plan.blocked_instances()
            ));
            for (account, instances) in &plan.blocked_by_account {
                lines.push(format!("  account {account}: {instances}"));
            }
            if !plan.blocked.is_empty() {
                lines.push(table(
                    &["ACCOUNT", "REGION", "IMAGE", "OWNER", "NAME", "INSTANCES"],
                    &plan.blocked,
                    |b| {
                        vec![
                            b.account.clone(),
                            b.region.clone(),
                            b.image_id.clone(),
                            b.owner.clone().unwrap_or_else(|| "-".into()),
                            b.name.clone().unwrap_or_else(|| "-".into()),
                            b.instances.to_string(),
                        ]
                    },
                ));
            }
        }
    }
    lines.join("\n")
}

fn applied_text(applied: &[Applied]) -> String {
    if applied.is_empty() {
        return "the audit covered no account and region: nothing written".into();
    }
    applied
        .iter()
        .map(|a| match (&a.state, &a.problem) {
            (_, Some(problem)) => format!("{} {}: not written: {problem}", a.account, a.region),
            (state, None) => format!(
                "{} {}: {}",
                a.account,
                a.region,
                state.as_deref().unwrap_or("unknown")
            ),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
