//! The fleet: which images every instance runs, against the pointers.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use kiln::Error;
use kiln::fleet;

use crate::args::{Output, context};
use crate::output::print;

/// Which images the fleet runs, against each recipe's channel pointer: how
/// much is on the promoted image and who is behind. Exits 1 when part of the
/// fleet could not be audited (the rest is still reported).
#[derive(Debug, Args)]
pub struct Audit {
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

/// Shows where the audit stands on stderr (a terminal), on one line
/// rewritten five times a second, until aborted.
async fn show(progress: Arc<fleet::Progress>) {
    loop {
        eprint!("\r\x1b[2Kauditing: {}", progress.line());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub async fn run(output: Output, audit: &Audit) -> Result<(), Error> {
    let scope = fleet::Request {
        regions: audit.regions.clone(),
        all_regions: audit.all_regions,
        account_roles: audit.account_roles.clone(),
        organization: audit.organization,
        organizational_units: audit.organizational_units.clone(),
        role_name: audit.role_name.clone(),
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
        std::fs::write(file, fleet::html::render(&report)).map_err(|err| {
            Error::InvalidInput(format!("cannot write {}: {err}", file.display()))
        })?;
    }
    print(output, &report, || report.table());
    let parts = report.incomplete();
    if parts > 0 {
        return Err(Error::AuditIncomplete { parts });
    }
    Ok(())
}
