//! The fleet: which images every instance runs, against the pointers.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use kiln::Error;
use kiln::fleet;

use crate::args::{Output, context};
use crate::output::print;

/// Which images the fleet runs, against each recipe's channel pointer: how
/// much is on the promoted image and who is behind. Exits 1 when part of the
/// fleet could not be audited (the rest is still reported).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Audit {
    #[command(subcommand)]
    trend: Option<Trend>,
    /// A region to audit (repeatable); none means the configured region.
    #[arg(long = "region", value_name = "REGION", conflicts_with = "all_regions")]
    regions: Vec<String>,
    /// Audit every region enabled in each account.
    #[arg(long)]
    all_regions: bool,
    /// A role to assume in another account (repeatable); the current
    /// account is always audited.
    #[arg(long = "account-role", value_name = "ARN")]
    account_roles: Vec<String>,
    /// Audit every active account of the AWS Organization (from the
    /// management account or a delegated administrator), assuming
    /// --role-name in each.
    #[arg(long, conflicts_with = "account_roles", requires = "role_name")]
    organization: bool,
    /// Audit the active accounts under this root or OU, nested OUs
    /// included (repeatable; implies --organization).
    #[arg(
        long = "ou",
        value_name = "ID",
        conflicts_with = "account_roles",
        requires = "role_name"
    )]
    organizational_units: Vec<String>,
    /// The role an organization audit assumes in each account.
    #[arg(long, value_name = "NAME")]
    role_name: Option<String>,
    /// Read the instances from this AWS Config aggregator (one query for
    /// every account and region it records) instead of each region.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["account_roles", "organization", "organizational_units"])]
    config_aggregator: Option<String>,
    /// The channel instances are compared against.
    #[arg(long, default_value = fleet::DEFAULT_CHANNEL)]
    channel: String,
    /// The instance tag that names services.
    #[arg(long, default_value = fleet::DEFAULT_SERVICE_TAG)]
    service_tag: String,
    /// Regions and accounts audited at once.
    #[arg(long, default_value_t = fleet::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// Also write the report as a self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// What the daily audits saw over time.
#[derive(Debug, Subcommand)]
enum Trend {
    /// The share of each recipe's fleet on the promoted image day by day,
    /// each promotion and rollback, each release's time to 50%, 90% and
    /// 100% of its fleet, and the services behind the longest (from the
    /// daily summaries the audit-fleet function leaves in KILN_AUDIT_BUCKET).
    Trend {
        /// Days back from today (UTC), today included.
        #[arg(long, default_value_t = fleet::trend::DEFAULT_DAYS)]
        days: u32,
        /// The channel.
        #[arg(long, default_value = fleet::DEFAULT_CHANNEL)]
        channel: String,
        /// Also write the trend as a self-contained HTML page to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
}

/// Writes `page` to `file`.
fn write_page(file: &PathBuf, page: String) -> Result<(), Error> {
    std::fs::write(file, page)
        .map_err(|err| Error::InvalidInput(format!("cannot write {}: {err}", file.display())))
}

/// Shows where the audit stands on stderr (a terminal), on one line
/// rewritten five times a second, until aborted.
async fn show(progress: Arc<fleet::Progress>) {
    loop {
        eprint!("\r\x1b[2Kauditing: {}", progress.line());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub async fn run(output: Output, audit: &Audit) -> Result<(), Error> {
    if let Some(Trend::Trend {
        days,
        channel,
        html,
    }) = &audit.trend
    {
        let ctx = context(|_| {}).await;
        let trend = fleet::trend::read(&ctx, &channel.parse()?, *days).await?;
        if let Some(file) = html {
            write_page(file, fleet::trend_page::render(&trend))?;
        }
        print(output, &trend, || trend.table());
        return Ok(());
    }
    let scope = fleet::Request {
        regions: audit.regions.clone(),
        all_regions: audit.all_regions,
        account_roles: audit.account_roles.clone(),
        organization: audit.organization,
        organizational_units: audit.organizational_units.clone(),
        role_name: audit.role_name.clone(),
        config_aggregator: audit.config_aggregator.clone(),
        channel: audit.channel.parse()?,
        service_tag: audit.service_tag.clone(),
        concurrency: audit.concurrency,
    }
    .scope()?;
    let ctx = context(|_| {}).await;
    let progress = Arc::new(fleet::Progress::default());
    let shown = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(show(progress.clone())));
    let mut report = fleet::audit_watched(&ctx.config, &scope, &progress).await;
    if let Some(shown) = shown {
        shown.abort();
        // The last count, then the line cleared for the report.
        eprint!("\r\x1b[2Kauditing: {}\r\x1b[2K", progress.line());
    }
    fleet::guard::annotate(&ctx, &mut report).await;
    if let Some(file) = &audit.html {
        write_page(file, fleet::html::render(&report))?;
    }
    print(output, &report, || report.table());
    let parts = report.incomplete();
    if parts > 0 {
        return Err(Error::AuditIncomplete { parts });
    }
    Ok(())
}
