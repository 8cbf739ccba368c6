//! A release never ships a regression: before a channel moves to a new
//! image, both SBOMs (the candidate's and the channel's current image's) are
//! scanned again, since vulnerability data changes during a soak, and a
//! HIGH or CRITICAL finding with a fix available that the current image
//! does not have halts the release (`VulnerabilityRegression`), unless the
//! recipe accepts it (`[[security.accept]]`, until its expiry).
//!
//! A current image without an SBOM (built before kiln wrote them), or a
//! channel without an image yet, is replaced by a fixed rule: the candidate
//! may have no fixable CRITICAL finding. The verdict says which rule judged.

use serde::{Deserialize, Serialize};

use super::sbom;
use super::scan::{self, Finding, Severity};
use crate::aws::{Context, images};
use crate::error::Result;
use crate::ids::AmiId;
use crate::recipe::Acceptance;

/// How the candidate was judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// Against the channel's current image.
    Compared {
        /// The channel's current image.
        current: AmiId,
    },
    /// By the fixed rule (no fixable CRITICAL), and why.
    Fixed {
        /// Why there was nothing to compare with.
        why: String,
    },
}

/// What the scan of a release's candidate found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The candidate.
    pub image: AmiId,
    /// How it was judged.
    #[serde(flatten)]
    pub rule: Rule,
    /// Findings that halt the release.
    pub regressions: Vec<Finding>,
    /// Findings that would halt it but the recipe accepts (until their
    /// expiry).
    pub accepted: Vec<Finding>,
    /// The current image's findings the candidate no longer has.
    pub fixed: Vec<Finding>,
}

/// A verdict as a release keeps it and its events carry it: each finding
/// as `CVE package`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// How the candidate was judged.
    #[serde(flatten)]
    pub rule: Rule,
    /// Findings that halted the release.
    pub regressions: Vec<String>,
    /// Findings let through by the recipe's acceptances.
    pub accepted: Vec<String>,
    /// Findings of the current image the candidate fixes.
    pub fixed: Vec<String>,
}

impl Verdict {
    /// What a release keeps of it.
    pub fn summary(&self) -> Summary {
        let names = |found: &[Finding]| {
            found
                .iter()
                .map(|f| format!("{} {}", f.id, f.package))
                .collect()
        };
        Summary {
            rule: self.rule.clone(),
            regressions: names(&self.regressions),
            accepted: names(&self.accepted),
            fixed: names(&self.fixed),
        }
    }

    /// `VulnerabilityRegression: ...` naming the findings that halt the
    /// release; none when it may go on.
    pub fn regression(&self) -> Option<String> {
        if self.regressions.is_empty() {
            return None;
        }
        let cves: Vec<String> = self
            .regressions
            .iter()
            .map(|f| {
                format!(
                    "{} ({} in {} {}, fixed in {})",
                    f.id,
                    f.severity,
                    f.package,
                    f.installed,
                    f.fixed.as_deref().unwrap_or("?")
                )
            })
            .collect();
        let against = match &self.rule {
            Rule::Compared { current } => format!("that {current} does not have"),
            Rule::Fixed { why } => format!("(no fixable CRITICAL is allowed: {why})"),
        };
        Some(format!(
            "VulnerabilityRegression: {} brings {} {against}; accept them in [security] of the \
             recipe with a reason and an expiry, or build again once the fixes are in",
            self.image,
            cves.join(", ")
        ))
    }
}

/// Judges the candidate's `found` findings against the current image's
/// (`current`: its id and findings; none: the fixed rule, for `why`), with
/// the recipe's acceptances as they stand on `today`.
pub fn judge(
    image: &AmiId,
    found: &[Finding],
    current: Result<(AmiId, Vec<Finding>), String>,
    accept: &[Acceptance],
    today: jiff::civil::Date,
) -> Verdict {
    let (rule, before) = match current {
        Ok((current, before)) => (Rule::Compared { current }, Some(before)),
        Err(why) => (Rule::Fixed { why }, None),
    };
    let blocking: Vec<Finding> = match &before {
        Some(before) => scan::only_in(found, before)
            .into_iter()
            .filter(Finding::fixable_high)
            .collect(),
        None => found
            .iter()
            .filter(|f| f.severity == Severity::Critical && f.fixed.is_some())
            .cloned()
            .collect(),
    };
    let (accepted, regressions) = blocking
        .into_iter()
        .partition(|f| accept.iter().any(|a| a.cve == f.id && a.holds_on(today)));
    Verdict {
        image: image.clone(),
        rule,
        regressions,
        accepted,
        fixed: before.map_or_else(Vec::new, |before| scan::only_in(&before, found)),
    }
}

/// Scans the candidate `image` and the channel's `current` image again and
/// judges the candidate ([`judge`]). `Err(why)` when the candidate has no
/// SBOM to scan: kiln cannot vouch for it. Needs the output bucket, where
/// the SBOMs are.
pub async fn check(
    ctx: &Context,
    bucket: &str,
    image: &AmiId,
    current: Option<&AmiId>,
    accept: &[Acceptance],
) -> Result<std::result::Result<Verdict, String>> {
    let found = match sbom_of(ctx, bucket, image).await? {
        Ok(document) => scan::scan(ctx, &document).await?,
        Err(why) => return Ok(Err(why)),
    };
    let current = match current {
        None => Err("the channel names no image yet".to_owned()),
        Some(current) => match sbom_of(ctx, bucket, current).await? {
            Ok(document) => Ok((current.clone(), scan::scan(ctx, &document).await?)),
            Err(why) => Err(why),
        },
    };
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    Ok(Ok(judge(image, &found, current, accept, today)))
}

/// `image`'s SBOM document, or why there is none to scan.
async fn sbom_of(
    ctx: &Context,
    bucket: &str,
    image: &AmiId,
) -> Result<std::result::Result<serde_json::Value, String>> {
    let Some(described) = images::describe(ctx, image).await? else {
        return Ok(Err(format!("image {image} does not exist here")));
    };
    Ok(sbom::stored(ctx, bucket, image, described.tags())
        .await?
        .map(|stored| stored.document))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &str, severity: Severity, package: &str, fixed: Option<&str>) -> Finding {
        Finding {
            id: id.into(),
            severity,
            cvss: None,
            package: package.into(),
            installed: "1".into(),
            fixed: fixed.map(str::to_owned),
            exploit_available: false,
        }
    }

    fn ids(found: &[Finding]) -> Vec<&str> {
        found.iter().map(|f| f.id.as_str()).collect()
    }

    #[test]
    fn only_new_fixable_high_or_critical_findings_are_regressions() {
        let image: AmiId = "ami-0123456789abcdef1".parse().expect("ami");
        let current: AmiId = "ami-0123456789abcdef0".parse().expect("ami");
        let today = "2026-12-01".parse().expect("a date");
        let before = vec![
            finding("CVE-1", Severity::Critical, "a", Some("2")),
            finding("CVE-2", Severity::High, "b", Some("2")),
        ];
        let after = vec![
            finding("CVE-1", Severity::Critical, "a", Some("2")),
            finding("CVE-2", Severity::High, "c", Some("2")),
            finding("CVE-3", Severity::Critical, "d", None),
            finding("CVE-4", Severity::Medium, "e", Some("2")),
            finding("CVE-5", Severity::High, "f", Some("2")),
        ];
        let accept = [Acceptance {
            cve: "CVE-5".into(),
            reason: "why".into(),
            expires: "2027-01-01".into(),
        }];
        let verdict = judge(
            &image,
            &after,
            Ok((current.clone(), before)),
            &accept,
            today,
        );
        assert_eq!(
            ids(&verdict.regressions),
            ["CVE-2"],
            "CVE-2 in another package is new; no fix, MEDIUM and accepted are not"
        );
        assert_eq!(ids(&verdict.accepted), ["CVE-5"]);
        assert_eq!(ids(&verdict.fixed), ["CVE-2"], "CVE-2 of package b");
        let why = verdict.regression().expect("a regression");
        assert!(
            why.starts_with("VulnerabilityRegression: ami-0123456789abcdef1 brings CVE-2 (HIGH in c 1, fixed in 2) that ami-0123456789abcdef0 does not have"),
            "{why}"
        );
        assert_eq!(
            verdict.summary().regressions,
            ["CVE-2 c"],
            "a summary names CVE and package"
        );
    }

    #[test]
    fn without_a_current_image_only_a_fixable_critical_halts() {
        let image: AmiId = "ami-0123456789abcdef1".parse().expect("ami");
        let today = "2026-12-01".parse().expect("a date");
        let found = vec![
            finding("CVE-1", Severity::High, "a", Some("2")),
            finding("CVE-2", Severity::Critical, "b", None),
        ];
        let none = judge(&image, &found, Err("no SBOM".into()), &[], today);
        assert!(none.regression().is_none());
        assert_eq!(
            none.rule,
            Rule::Fixed {
                why: "no SBOM".into()
            }
        );
        let critical = [finding("CVE-3", Severity::Critical, "c", Some("2"))];
        let halted = judge(&image, &critical, Err("no SBOM".into()), &[], today);
        assert_eq!(ids(&halted.regressions), ["CVE-3"]);
        assert!(
            halted
                .regression()
                .is_some_and(|why| why.contains("no fixable CRITICAL"))
        );
    }
}
