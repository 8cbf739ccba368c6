//! Housekeeping: the sweep of what ended builds left behind.

use clap::Args;
use kiln::Error;
use kiln::ops::sweep::{self, Sweep};

use crate::args::{Output, context};
use crate::output::print;

/// Remove what ended builds left behind: instances, untested images and
/// their snapshots, unused kiln security groups (never tested or promoted
/// images, never anything without kiln's tags).
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Only list what would go.
    #[arg(long)]
    dry_run: bool,
    /// The build state machine (tells running builds from ended ones).
    #[arg(long, env = "KILN_STATE_MACHINE_ARN")]
    state_machine: String,
}

pub async fn sweep(output: Output, args: &SweepArgs) -> Result<(), Error> {
    let ctx = context(|s| s.state_machine_arn = Some(args.state_machine.clone())).await;
    let swept = sweep::sweep(&ctx, args.dry_run).await?;
    print(output, &swept, || sweep_text(&swept));
    Ok(())
}

fn sweep_text(swept: &Sweep) -> String {
    let verb = if swept.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut lines = Vec::new();
    for build in &swept.builds {
        let r = &build.removed;
        let mut what: Vec<String> = r.terminated.iter().map(ToString::to_string).collect();
        what.extend(r.deregistered.iter().map(ToString::to_string));
        what.extend(r.deleted_snapshots.iter().cloned());
        lines.push(format!(
            "build {} ({}): {verb} {}",
            build.build_id,
            build.why,
            what.join(", ")
        ));
    }
    if !swept.security_groups.is_empty() {
        lines.push(format!(
            "unused kiln security groups: {verb} {}",
            swept.security_groups.join(", ")
        ));
    }
    if !swept.running.is_empty() {
        let running: Vec<&str> = swept.running.iter().map(|b| b.as_str()).collect();
        lines.push(format!("left alone, still running: {}", running.join(", ")));
    }
    if !swept.unknown.is_empty() {
        let unknown: Vec<&str> = swept.unknown.iter().map(|b| b.as_str()).collect();
        lines.push(format!(
            "left alone, no execution here but younger than their longest build (another kiln's?): {}",
            unknown.join(", ")
        ));
    }
    if lines.is_empty() {
        lines.push("nothing to sweep".into());
    }
    lines.join("\n")
}
