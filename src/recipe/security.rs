//! What a release of the recipe lets through (`[security]`): vulnerabilities
//! accepted by name, each with its reason and expiry. Not part of the
//! fingerprint: it says what may ship, not what an image is.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The vulnerabilities a release of the recipe accepts (`[security]`). Not
/// part of the fingerprint: it says what may ship, not what an image is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// Vulnerabilities a release does not halt on, each with its reason and
    /// expiry (`[[security.accept]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept: Vec<Acceptance>,
    /// An Inspector finding scored at least this (CVSS, 0 to 10) puts its
    /// build on the fast track, as an available exploit does; none: only
    /// an exploit does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_track_cvss: Option<f64>,
    /// Hours after Inspector first saw a vulnerability that triggered a
    /// security build within which its findings must be closed on the
    /// recipe's instances; a finding still ACTIVE then is reported overdue
    /// ([`crate::security::remediation`]).
    #[serde(default = "default_deadline")]
    pub remediation_deadline_hours: u32,
}

/// Three days to fix the fleet, unless the recipe says.
pub const DEFAULT_REMEDIATION_DEADLINE_HOURS: u32 = 72;

/// Longest deadline: the watch runs in the release's execution, and
/// Inspector deletes a closed finding after 30 days.
const MAX_REMEDIATION_DEADLINE_HOURS: u32 = 30 * 24;

fn default_deadline() -> u32 {
    DEFAULT_REMEDIATION_DEADLINE_HOURS
}

impl Default for Security {
    fn default() -> Self {
        Self {
            accept: Vec::new(),
            fast_track_cvss: None,
            remediation_deadline_hours: DEFAULT_REMEDIATION_DEADLINE_HOURS,
        }
    }
}

/// One accepted vulnerability: a release that would bring it does not halt
/// until the day it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    /// The vulnerability's id, as Inspector reports it (`CVE-2024-6387`).
    pub cve: String,
    /// Why it is accepted (kept with every release it lets through).
    pub reason: String,
    /// The day (UTC, `YYYY-MM-DD`) the acceptance lapses: from that day on
    /// the vulnerability halts releases again.
    pub expires: String,
}

impl Acceptance {
    /// The expiry as a date; none when it is not one (validation refuses
    /// such a recipe).
    pub fn expires_on(&self) -> Option<jiff::civil::Date> {
        self.expires.parse().ok()
    }

    /// Whether it still holds on `today`.
    pub fn holds_on(&self, today: jiff::civil::Date) -> bool {
        self.expires_on().is_some_and(|expires| today < expires)
    }
}

/// Longest reason an acceptance may give (it travels in release events).
const MAX_ACCEPTANCE_REASON: usize = 500;

/// Longest vulnerability id an acceptance may name.
const MAX_ID: usize = 64;

/// What is wrong with `security`: (field, message) pairs.
pub(crate) fn problems(security: &Security) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if security
        .fast_track_cvss
        .is_some_and(|score| !(0.0..=10.0).contains(&score))
    {
        problems.push((
            "security.fast_track_cvss".to_owned(),
            "must be a CVSS score, 0 to 10".to_owned(),
        ));
    }
    if !(1..=MAX_REMEDIATION_DEADLINE_HOURS).contains(&security.remediation_deadline_hours) {
        problems.push((
            "security.remediation_deadline_hours".to_owned(),
            format!("must be 1 to {MAX_REMEDIATION_DEADLINE_HOURS} hours (30 days)"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, acceptance) in security.accept.iter().enumerate() {
        let mut add = |name: &str, message: String| {
            problems.push((format!("security.accept[{i}].{name}"), message));
        };
        let cve = &acceptance.cve;
        let id_like = cve.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if cve.is_empty() || cve.len() > MAX_ID || !id_like {
            add(
                "cve",
                "must be a vulnerability id such as CVE-2024-6387".into(),
            );
        } else if !seen.insert(cve.as_str()) {
            add("cve", format!("{cve} is accepted twice"));
        }
        let reason = acceptance.reason.trim();
        if reason.is_empty() || reason.len() > MAX_ACCEPTANCE_REASON {
            add(
                "reason",
                format!("must say why, in 1 to {MAX_ACCEPTANCE_REASON} characters"),
            );
        }
        if acceptance.expires_on().is_none() {
            add(
                "expires",
                "must be a date, YYYY-MM-DD (a quoted string)".into(),
            );
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(cve: &str, reason: &str, expires: &str) -> Acceptance {
        Acceptance {
            cve: cve.into(),
            reason: reason.into(),
            expires: expires.into(),
        }
    }

    #[test]
    fn every_bad_acceptance_is_named_by_its_field() {
        let security = Security {
            accept: vec![
                accept("CVE-2024-6387", "sshd is masked", "2027-01-31"),
                accept("CVE-2024-6387", "again", "2027-01-31"),
                accept("CVE 2024", " ", "31/01/2027"),
            ],
            fast_track_cvss: Some(10.5),
            remediation_deadline_hours: 0,
        };
        let fields: Vec<String> = problems(&security).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "security.fast_track_cvss",
                "security.remediation_deadline_hours",
                "security.accept[1].cve",
                "security.accept[2].cve",
                "security.accept[2].reason",
                "security.accept[2].expires",
            ]
        );
        assert!(problems(&Security::default()).is_empty());
    }

    #[test]
    fn an_acceptance_holds_until_the_day_it_expires() {
        let acceptance = accept("CVE-2024-6387", "why", "2027-01-31");
        let day = |d: &str| d.parse::<jiff::civil::Date>().expect("a date");
        assert!(acceptance.holds_on(day("2027-01-30")));
        assert!(!acceptance.holds_on(day("2027-01-31")));
        assert!(!accept("CVE-1", "why", "soon").holds_on(day("2000-01-01")));
    }
}
