//! The audit report for a terminal: the answer first, then who is behind
//! by service, the images, the pointers and the problems.

use std::fmt::Write as _;

use super::report::{Report, ServiceRow};
use super::tally::Status;
use crate::text::{self, thousands};

impl Report {
    /// The report for a terminal: the answer first, then who is behind by
    /// service, the images, the pointers and the problems.
    pub fn table(&self) -> String {
        let s = &self.summary;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Fleet audit against channel {} · {} account(s), {} region(s) · {} · {}",
            self.channel,
            s.accounts,
            s.regions,
            self.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
            self.provenance()
        );
        if s.instances == 0 {
            out.push_str("No instances in the audited regions.\n");
        } else {
            let _ = writeln!(
                out,
                "{} instances: {}% on the promoted image ({}), {} behind",
                thousands(s.instances),
                s.current_percent,
                thousands(s.current),
                thousands(s.behind)
            );
            let by_status: Vec<String> = s
                .by_status
                .iter()
                .map(|(status, n)| format!("{status} {}", thousands(*n)))
                .collect();
            let _ = writeln!(out, "  {}", by_status.join(" · "));
        }
        if s.builders > 0 {
            let _ = writeln!(
                out,
                "  ({} kiln builder/test instances not counted)",
                thousands(s.builders)
            );
        }
        if let Some(blocked) = &self.would_block {
            let accounts: Vec<String> = blocked
                .iter()
                .map(|(account, n)| format!("{account} {}", thousands(*n)))
                .collect();
            let _ = writeln!(
                out,
                "The guard (kiln guard) would block {} running instance(s): {}",
                thousands(blocked.values().sum()),
                accounts.join(" · ")
            );
        }
        let behind: Vec<&ServiceRow> = self.services.iter().filter(|r| r.behind > 0).collect();
        if !behind.is_empty() {
            let _ = writeln!(out, "\nBehind, by service (tag {}):", self.service_tag);
            let mut rows = vec![text::header(&[
                "SERVICE",
                "INSTANCES",
                "BEHIND",
                "PREVIOUS",
                "STALE",
                "FOREIGN",
                "DEREGISTERED",
            ])];
            for row in behind {
                let n = |status| thousands(row.by_status.get(&status).copied().unwrap_or(0));
                rows.push(vec![
                    row.service.clone(),
                    thousands(row.instances),
                    thousands(row.behind),
                    n(Status::Previous),
                    n(Status::Stale),
                    n(Status::Foreign),
                    n(Status::Deregistered),
                ]);
            }
            out.push_str(&text::table(&rows));
        }
        if !self.images.is_empty() {
            out.push_str("\nImages:\n");
            let mut rows = vec![text::header(&[
                "IMAGE",
                "ACCOUNT",
                "REGION",
                "STATUS",
                "AGE",
                "INSTANCES",
                "NAME",
            ])];
            rows.extend(self.images.iter().map(|image| {
                vec![
                    image.image_id.clone(),
                    image.account.clone(),
                    image.region.clone(),
                    image.status.to_string(),
                    image
                        .age_days
                        .map_or_else(|| "-".into(), |d| format!("{d}d")),
                    thousands(image.instances),
                    image.name.clone().unwrap_or_else(|| "(gone)".into()),
                ]
            }));
            out.push_str(&text::table(&rows));
        }
        let _ = writeln!(out, "\nPointers ({}):", self.channel);
        if self.pointers.is_empty() {
            out.push_str(
                "  no kiln image runs in the audited regions: no pointer to compare against\n",
            );
        }
        for pointer in &self.pointers {
            let _ = writeln!(
                out,
                "  {} {} {}",
                pointer.region,
                pointer.recipe,
                pointer
                    .image_id
                    .as_deref()
                    .unwrap_or("(none: nothing promoted yet)")
            );
        }
        if !self.problems.is_empty() {
            let _ = writeln!(
                out,
                "\nProblems ({}): the rest is reported above",
                self.problems.len()
            );
            for problem in &self.problems {
                let _ = writeln!(out, "  {}: {}", problem.kind, problem.message);
            }
        }
        out
    }
}
