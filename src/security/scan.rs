//! What Amazon Inspector finds in an image's SBOM: [`scan`] sends the
//! document kiln wrote ([`super::sbom`]) to Inspector's `ScanSbom` (the
//! `inspector-scan` API, which needs no Inspector activation) and reads the
//! vulnerability report it answers in CycloneDX 1.5 ([`findings`]), in parts
//! when the SBOM is past the API's limit of components; the test
//! step stores the findings beside the SBOM (`kiln-sbom/<image>/
//! findings.json`) and tags their HIGH and CRITICAL counts on the image.
//!
//! The report's shape (Amazon Inspector User Guide, "Using CycloneDX
//! namespaces with Amazon Inspector"; the Scan API's output formats): its
//! components are renamed `comp-N`; each vulnerability has its `id` (the
//! CVE), `ratings` from several sources, `affects[].ref` naming the
//! components, and properties `amazon:inspector:sbom_scanner:
//! exploit_available` and `...:fixed_version:<component bom-ref>`.

use std::collections::BTreeMap;

use aws_sdk_inspectorscan::types::OutputFormat;
use aws_smithy_types::{Document, Number};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::aws::sdk::Answer;
use crate::aws::{Context, images, objects};
use crate::error::{Error, Result};
use crate::ids::AmiId;
use crate::tags;

/// `ScanSbom` takes at most this many components per request (Amazon
/// Inspector API Reference, ScanSbom: "a maximum of 5,000 components per
/// request").
pub const MAX_COMPONENTS: usize = 5_000;

/// The namespace of Inspector's properties in the report.
const PROPERTY: &str = "amazon:inspector:sbom_scanner:";

/// How serious a finding is, in Inspector's words, least first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, strum::Display,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    /// No source rated it.
    Untriaged,
    /// Rated `info` or `none`.
    Informational,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// A CycloneDX rating's severity (`critical`, ..., `info`, `none`,
    /// `unknown`).
    fn of_rating(text: &str) -> Self {
        match text.to_ascii_lowercase().as_str() {
            "critical" => Self::Critical,
            "high" => Self::High,
            "medium" => Self::Medium,
            "low" => Self::Low,
            "info" | "none" => Self::Informational,
            _ => Self::Untriaged,
        }
    }

    /// HIGH or CRITICAL: what `kiln images` counts and a release weighs.
    pub fn is_high(self) -> bool {
        self >= Self::High
    }
}

/// One vulnerability of one package of an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The vulnerability's id (`CVE-2024-6387`).
    pub id: String,
    /// The highest severity any source gives it (a rule that errs towards
    /// caution where NVD and the distribution disagree).
    pub severity: Severity,
    /// The highest CVSS base score any source gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cvss: Option<f64>,
    /// The affected package.
    pub package: String,
    /// Its installed version.
    pub installed: String,
    /// The version that fixes it, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// Whether an exploit is known to be available.
    pub exploit_available: bool,
}

impl Finding {
    /// HIGH or CRITICAL with a fix available: what kiln acts on.
    pub fn fixable_high(&self) -> bool {
        self.severity.is_high() && self.fixed.is_some()
    }
}

/// The findings of one image's SBOM, as stored beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// The image scanned.
    pub image: AmiId,
    /// The digest of the SBOM scanned (the image's `kiln:sbom-sha256`).
    pub sbom_sha256: String,
    /// When Inspector answered (RFC 3339).
    pub scanned_at: String,
    /// The findings, most severe first.
    pub findings: Vec<Finding>,
}

impl Findings {
    /// Its CRITICAL and HIGH findings.
    pub fn counts(&self) -> Counts {
        let count = |severity| {
            self.findings
                .iter()
                .filter(|f| f.severity == severity)
                .count()
        };
        Counts {
            critical: count(Severity::Critical),
            high: count(Severity::High),
        }
    }
}

/// How many CRITICAL and HIGH findings an image has: its
/// [`crate::tags::FINDINGS`] tag, `critical=N,high=M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// CRITICAL findings.
    pub critical: usize,
    /// HIGH findings.
    pub high: usize,
}

impl Counts {
    /// The tag's value.
    pub fn tag_value(self) -> String {
        format!("critical={},high={}", self.critical, self.high)
    }

    /// Reads the tag's value; none when it is not one kiln wrote.
    pub fn of_tag(value: &str) -> Option<Self> {
        let (critical, high) = value.split_once(',')?;
        Some(Self {
            critical: critical.strip_prefix("critical=")?.parse().ok()?,
            high: high.strip_prefix("high=")?.parse().ok()?,
        })
    }
}

/// Where `image`'s findings are kept: beside its SBOM.
pub fn key(image: &AmiId) -> String {
    format!("kiln-sbom/{image}/findings.json")
}

/// The documents `ScanSbom` is sent for `document`: its components in parts
/// of at most [`MAX_COMPONENTS`], the operating-system component in each
/// (Inspector matches distribution packages against their distribution).
fn parts(document: &Value) -> Vec<Value> {
    let components = document
        .get("components")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (os, packages): (Vec<Value>, Vec<Value>) = components
        .into_iter()
        .partition(|c| c.get("type").and_then(Value::as_str) == Some("operating-system"));
    let room = MAX_COMPONENTS.saturating_sub(os.len()).max(1);
    let chunks: Vec<&[Value]> = if packages.is_empty() {
        vec![&[]]
    } else {
        packages.chunks(room).collect()
    };
    chunks
        .into_iter()
        .map(|chunk| {
            let mut part = document.clone();
            part["components"] = Value::Array(os.iter().chain(chunk).cloned().collect());
            part
        })
        .collect()
}

/// Sends `document` (a CycloneDX SBOM) to `ScanSbom`, in parts within its
/// limit of [`MAX_COMPONENTS`] components, and returns what it found, most
/// severe first.
pub async fn scan(ctx: &Context, document: &Value) -> Result<Vec<Finding>> {
    let mut found = Vec::new();
    for part in parts(document) {
        let answer = ctx
            .inspector_scan()
            .scan_sbom()
            .sbom(to_document(&part))
            .output_format(OutputFormat::CycloneDx15)
            .send()
            .await
            .or_aws("ScanSbom")?;
        let report = answer.sbom().map(from_document).unwrap_or(Value::Null);
        found.extend(findings(&report)?);
    }
    sort(&mut found);
    Ok(found)
}

/// The findings of `a` that `b` does not have (by CVE and package).
pub fn only_in(a: &[Finding], b: &[Finding]) -> Vec<Finding> {
    a.iter()
        .filter(|f| !b.iter().any(|g| g.id == f.id && g.package == f.package))
        .cloned()
        .collect()
}

/// Most severe first, then by CVE and package.
fn sort(found: &mut [Finding]) {
    found.sort_by(|a, b| (b.severity, &a.id, &a.package).cmp(&(a.severity, &b.id, &b.package)));
}

/// Scans `image`'s SBOM (`document`, whose digest is `sbom_sha256`),
/// stores the findings beside it and tags their HIGH and CRITICAL counts on
/// the image ([`crate::tags::FINDINGS`]). Returns them and where they are.
pub async fn record(
    ctx: &Context,
    bucket: &str,
    image: &AmiId,
    document: &Value,
    sbom_sha256: &str,
) -> Result<(Findings, String)> {
    let findings = Findings {
        image: image.clone(),
        sbom_sha256: sbom_sha256.to_owned(),
        findings: scan(ctx, document).await?,
        scanned_at: jiff::Timestamp::now().to_string(),
    };
    let location = store(ctx, bucket, &findings).await?;
    let counts = findings.counts().tag_value();
    images::set_tag(ctx, image.as_str(), tags::FINDINGS, Some(&counts)).await?;
    Ok((findings, location))
}

/// Writes `findings` beside the SBOM; returns where.
async fn store(ctx: &Context, bucket: &str, findings: &Findings) -> Result<String> {
    let body = serde_json::to_vec_pretty(findings)
        .map_err(|err| Error::InvalidInput(format!("the findings did not serialise: {err}")))?;
    let key = key(&findings.image);
    let s3 = aws_sdk_s3::Client::new(&ctx.config);
    objects::write(&s3, bucket, &key, "application/json", body).await?;
    Ok(format!("s3://{bucket}/{key}"))
}

/// The stored findings of `image`; none when it was never scanned.
pub async fn stored(ctx: &Context, bucket: &str, image: &AmiId) -> Result<Option<Findings>> {
    let s3 = aws_sdk_s3::Client::new(&ctx.config);
    let Some(bytes) = objects::read(&s3, bucket, &key(image)).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|err| Error::ScanUnreadable(format!("s3://{bucket}/{}: {err}", key(image))))
}

fn unreadable(detail: impl Into<String>) -> Error {
    Error::ScanUnreadable(detail.into())
}

fn properties(value: &Value) -> BTreeMap<&str, &str> {
    value
        .get("properties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?.strip_prefix(PROPERTY)?;
            Some((name, p.get("value")?.as_str()?))
        })
        .collect()
}

/// The version a package URL names (`pkg:deb/ubuntu/name@VERSION?...`),
/// with its `epoch` qualifier put back in front as dpkg writes it.
fn purl_version(purl: &str) -> Option<String> {
    let (_, rest) = purl.split_once('@')?;
    let (version, qualifiers) = rest.split_once('?').unwrap_or((rest, ""));
    let version = percent_decode(version);
    let epoch = qualifiers.split('&').find_map(|q| q.strip_prefix("epoch="));
    Some(match epoch {
        Some(epoch) => format!("{epoch}:{version}"),
        None => version,
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The findings of a `ScanSbom` report in CycloneDX 1.5: one per
/// vulnerability and affected component, most severe first. A report with
/// no `vulnerabilities` found none.
pub fn findings(report: &Value) -> Result<Vec<Finding>> {
    let report = report
        .as_object()
        .ok_or_else(|| unreadable("the report is not an object"))?;
    let components: BTreeMap<&str, &Value> = report
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c.get("bom-ref")?.as_str()?, c)))
        .collect();
    let vulnerabilities = match report.get("vulnerabilities") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(unreadable("`vulnerabilities` is not a list")),
    };
    let mut found = Vec::new();
    for vulnerability in vulnerabilities {
        let id = vulnerability
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| unreadable("a vulnerability without an id"))?;
        let ratings = vulnerability.get("ratings").and_then(Value::as_array);
        let rated = ratings.into_iter().flatten();
        let severity = rated
            .clone()
            .filter(|r| r.get("method").and_then(Value::as_str) != Some("other"))
            .filter_map(|r| r.get("severity")?.as_str())
            .map(Severity::of_rating)
            .max()
            .unwrap_or(Severity::Untriaged);
        let cvss = rated
            .filter(|r| {
                r.get("method")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.starts_with("CVSS"))
            })
            .filter_map(|r| r.get("score")?.as_f64())
            .reduce(f64::max);
        let props = properties(vulnerability);
        let exploit_available = props.get("exploit_available") == Some(&"true");
        let affects = vulnerability.get("affects").and_then(Value::as_array);
        for reference in affects.into_iter().flatten() {
            let reference = reference
                .get("ref")
                .and_then(Value::as_str)
                .ok_or_else(|| unreadable(format!("{id}: an affected component without a ref")))?;
            let component = components
                .get(reference)
                .ok_or_else(|| unreadable(format!("{id}: no component {reference}")))?;
            let package = component
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| unreadable(format!("{id}: component {reference} has no name")))?;
            let installed = component
                .get("purl")
                .and_then(Value::as_str)
                .and_then(purl_version)
                .or_else(|| component.get("version")?.as_str().map(str::to_owned))
                .unwrap_or_default();
            let fixed_key = format!("fixed_version:{reference}");
            found.push(Finding {
                id: id.to_owned(),
                severity,
                cvss,
                package: package.to_owned(),
                installed,
                fixed: props.get(fixed_key.as_str()).map(|v| (*v).to_owned()),
                exploit_available,
            });
        }
    }
    sort(&mut found);
    Ok(found)
}

/// `value` as a Smithy document (what the SDK sends as JSON).
pub fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Number::PosInt(u),
            (None, Some(i)) => Number::NegInt(i),
            _ => Number::Float(n.as_f64().unwrap_or_default()),
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect(),
        ),
    }
}

/// A Smithy document as JSON.
fn from_document(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => Value::from(*f),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(from_document).collect()),
        Document::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), from_document(v)))
                .collect::<Map<String, Value>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `ScanSbom` answer in the shape of AWS's documented CycloneDX 1.5
    /// example (Amazon Inspector User Guide, the Scan API's output
    /// formats): components renamed `comp-N`, ratings from several sources
    /// (EPSS's with method `other`), Inspector's properties.
    fn report() -> Value {
        serde_json::json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "components": [
                {"bom-ref": "comp-1", "type": "library", "name": "openssl",
                 "purl": "pkg:deb/ubuntu/openssl@3.0.13-0ubuntu3.1?arch=amd64&distro=noble"},
                {"bom-ref": "comp-2", "type": "library", "name": "libpam0g",
                 "purl": "pkg:deb/ubuntu/libpam0g@1.5.3-5ubuntu5.1?arch=amd64&distro=noble&epoch=1&source=pam"},
                {"bom-ref": "comp-3", "type": "library", "name": "zlib1g",
                 "purl": "pkg:deb/ubuntu/zlib1g@1%3A1.3.dfsg-3.1ubuntu2?arch=amd64"}
            ],
            "vulnerabilities": [
                {"bom-ref": "vuln-1", "id": "CVE-2024-0002",
                 "ratings": [
                     {"source": {"name": "NVD"}, "score": 5.3, "severity": "medium", "method": "CVSSv31"},
                     {"source": {"name": "UBUNTU_CVE"}, "score": 7.5, "severity": "high", "method": "CVSSv31"},
                     {"source": {"name": "EPSS"}, "score": 0.97, "severity": "critical", "method": "other"}
                 ],
                 "affects": [{"ref": "comp-1"}, {"ref": "comp-3"}],
                 "properties": [
                     {"name": "amazon:inspector:sbom_scanner:exploit_available", "value": "false"},
                     {"name": "amazon:inspector:sbom_scanner:fixed_version:comp-1", "value": "3.0.13-0ubuntu3.4"}
                 ]},
                {"bom-ref": "vuln-2", "id": "CVE-2024-0001",
                 "ratings": [{"source": {"name": "NVD"}, "score": 9.8, "severity": "critical", "method": "CVSSv31"}],
                 "affects": [{"ref": "comp-2"}],
                 "properties": [
                     {"name": "amazon:inspector:sbom_scanner:exploit_available", "value": "true"},
                     {"name": "amazon:inspector:sbom_scanner:fixed_version:comp-2", "value": "1:1.5.3-5ubuntu5.2"}
                 ]}
            ]
        })
    }

    #[test]
    fn a_report_gives_one_finding_per_cve_and_package_most_severe_first() {
        let found = findings(&report()).expect("readable");
        let summary: Vec<_> = found
            .iter()
            .map(|f| {
                (
                    f.id.as_str(),
                    f.severity,
                    f.cvss,
                    f.package.as_str(),
                    f.installed.as_str(),
                    f.fixed.as_deref(),
                    f.exploit_available,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "CVE-2024-0001",
                    Severity::Critical,
                    Some(9.8),
                    "libpam0g",
                    "1:1.5.3-5ubuntu5.1",
                    Some("1:1.5.3-5ubuntu5.2"),
                    true
                ),
                (
                    "CVE-2024-0002",
                    Severity::High,
                    Some(7.5),
                    "openssl",
                    "3.0.13-0ubuntu3.1",
                    Some("3.0.13-0ubuntu3.4"),
                    false
                ),
                (
                    "CVE-2024-0002",
                    Severity::High,
                    Some(7.5),
                    "zlib1g",
                    "1:1.3.dfsg-3.1ubuntu2",
                    None,
                    false
                ),
            ],
            "the highest CVSS severity of any source, EPSS's `other` rating ignored"
        );
        assert!(found[0].fixable_high() && found[1].fixable_high() && !found[2].fixable_high());
        let stored = Findings {
            image: "ami-0123456789abcdef0".parse().expect("ami"),
            sbom_sha256: "0".repeat(64),
            scanned_at: "2026-12-01T00:00:00Z".into(),
            findings: found,
        };
        assert_eq!(stored.counts().tag_value(), "critical=1,high=2");
        assert_eq!(Counts::of_tag("critical=1,high=2"), Some(stored.counts()));
        assert_eq!(Counts::of_tag("1/2"), None);
    }

    #[test]
    fn a_report_without_vulnerabilities_finds_none_and_a_broken_one_is_named() {
        let clean = serde_json::json!({"bomFormat": "CycloneDX", "components": []});
        assert_eq!(findings(&clean).expect("readable"), []);
        let mut dangling = report();
        dangling["vulnerabilities"][1]["affects"][0]["ref"] = "comp-9".into();
        let err = findings(&dangling).expect_err("a ref to no component");
        assert_eq!(err.name(), "ScanUnreadable");
        assert!(
            err.to_string()
                .contains("CVE-2024-0001: no component comp-9"),
            "{err}"
        );
        assert_eq!(
            findings(&Value::Null).expect_err("null").name(),
            "ScanUnreadable"
        );
    }

    #[test]
    fn an_sbom_past_scansboms_limit_is_sent_in_parts_each_with_the_os() {
        let package =
            |i: usize| serde_json::json!({"type": "application", "name": format!("p{i}")});
        let mut components =
            vec![serde_json::json!({"type": "operating-system", "name": "ubuntu"})];
        components.extend((0..10_001).map(package));
        let document = serde_json::json!({"bomFormat": "CycloneDX", "components": components});
        let sent = parts(&document);
        let sizes: Vec<usize> = sent
            .iter()
            .map(|p| p["components"].as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(sizes, [5_000, 5_000, 4]);
        assert!(
            sent.iter()
                .all(|p| p["components"][0]["type"] == "operating-system")
        );
        assert!(sent.iter().all(|p| p["bomFormat"] == "CycloneDX"));
        let names: usize = sizes.iter().map(|s| s - 1).sum();
        assert_eq!(names, 10_001, "every package sent once");
        let small = serde_json::json!({"bomFormat": "CycloneDX", "components": [components[0], package(1)]});
        assert_eq!(parts(&small), [small]);
    }

    #[test]
    fn documents_cross_the_sdk_unchanged() {
        let document = report();
        assert_eq!(from_document(&to_document(&document)), document);
        let numbers = serde_json::json!([1, -2, 0.5]);
        assert_eq!(from_document(&to_document(&numbers)), numbers);
    }
}
