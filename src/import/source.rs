//! `source_ami_filter` (or an `amazon-ami` data source) as the recipe's
//! source: Canonical's public parameter for a Canonical Ubuntu release kiln
//! knows, else the owners and a name pattern.

use std::collections::BTreeMap;

use super::template::{self as t, Field, Finding, is_dynamic};
use crate::recipe::{Architecture, CANONICAL_OWNER, SourceSpec};

/// Canonical's Ubuntu releases kiln knows: version, code name.
const UBUNTU_RELEASES: &[(&str, &str)] = &[
    ("18.04", "bionic"),
    ("20.04", "focal"),
    ("22.04", "jammy"),
    ("24.04", "noble"),
];

/// `source_ami_filter` (or an `amazon-ami` data source): Canonical's public
/// parameter when it names a Canonical Ubuntu release kiln knows, else the
/// owners and name pattern, newest image.
pub(super) fn from_filter(
    path: &str,
    filter: &BTreeMap<String, Field>,
    spec: &mut SourceSpec,
    findings: &mut Vec<Finding>,
) {
    for key in filter.keys() {
        if !matches!(key.as_str(), "owners" | "filters" | "most_recent") {
            findings.push(Finding::dropped(
                format!("{path}.{key}"),
                "kiln finds the newest available image by owners, name and architecture, in \
                 the build region",
            ));
        }
    }
    let owners = filter.get("owners").map(t::texts).transpose();
    let filters = filter.get("filters").map(t::string_map).transpose();
    let (owners, filters) = match (owners, filters) {
        (Ok(owners), Ok(filters)) => (owners.unwrap_or_default(), filters.unwrap_or_default()),
        (Err(reason), _) | (_, Err(reason)) => {
            findings.push(Finding::dropped(
                path,
                format!("{reason}: the recipe builds from Canonical's Ubuntu 24.04 LTS"),
            ));
            return;
        }
    };
    if filter
        .get("most_recent")
        .is_some_and(|v| t::flag(v) != Ok(true))
    {
        findings.push(Finding::changed(
            format!("{path}.most_recent"),
            "kiln always builds from the newest matching image",
        ));
    }
    let mut rest = filters;
    let pattern = rest.remove("name");
    let architecture = rest.remove("architecture");
    for (key, expected) in [("root-device-type", "ebs"), ("virtualization-type", "hvm")] {
        if rest.get(key).is_some_and(|v| v == expected) {
            rest.remove(key);
        }
    }
    for key in rest.keys() {
        findings.push(Finding::dropped(
            format!("{path}.filters.{key}"),
            "kiln finds the source by owner, name and architecture only (and refuses images \
             that are not EBS-backed HVM)",
        ));
    }
    let numeric: Vec<String> = owners
        .iter()
        .filter(|o| o.len() == 12 && o.bytes().all(|b| b.is_ascii_digit()))
        .cloned()
        .collect();
    for alias in owners.iter().filter(|o| !numeric.contains(o)) {
        findings.push(Finding::dropped(
            format!("{path}.owners"),
            format!("{alias:?} is an alias: kiln trusts owners by account id"),
        ));
    }
    let Some(pattern) = pattern else {
        findings.push(Finding::dropped(
            format!("{path}.filters"),
            "no name filter: the recipe builds from Canonical's Ubuntu 24.04 LTS",
        ));
        return;
    };
    if is_dynamic(&pattern) {
        findings.push(Finding::dropped(
            format!("{path}.filters.name"),
            "is known only when Packer runs: the recipe builds from Canonical's Ubuntu 24.04 LTS",
        ));
        return;
    }
    if let Some((parameter, arch)) =
        canonical_parameter(&pattern).filter(|_| numeric.iter().any(|o| o == CANONICAL_OWNER))
    {
        spec.parameter = Some(parameter);
        spec.architecture = arch;
        spec.owners = vec![CANONICAL_OWNER.to_owned()];
        if pattern.contains("18.04") || pattern.contains("20.04") {
            findings.push(Finding::changed(
                format!("{path}.filters.name"),
                "Canonical's public parameter for this release; its standard support has \
                 ended: 24.04 LTS is the current one",
            ));
        }
        return;
    }
    spec.name_pattern = Some(pattern);
    if let Some(arch) = architecture.as_deref().and_then(architecture_of) {
        spec.architecture = arch;
    }
    if numeric.is_empty() {
        findings.push(Finding::dropped(
            format!("{path}.owners"),
            "no account id to trust: the recipe trusts Canonical; set source.owners",
        ));
    } else {
        spec.owners = numeric;
    }
}

/// Canonical's SSM parameter for an image name pattern like
/// `ubuntu/images/hvm-ssd/ubuntu-bionic-18.04-amd64-server-*`, as Canonical
/// publishes them ("Find Ubuntu images on AWS": `/aws/service/canonical/
/// ubuntu/server/<release>/stable/current/<arch>/hvm/<ebs-gp2|ebs-gp3>/ami-id`,
/// gp3 for `hvm-ssd-gp3` images and the releases after 23.04).
fn canonical_parameter(pattern: &str) -> Option<(String, Architecture)> {
    let rest = pattern.strip_prefix("ubuntu/images/")?;
    let (volume, name) = rest.split_once('/').unwrap_or(("*", rest));
    let name = name.trim_start_matches('*');
    let name = name.strip_prefix("ubuntu-")?;
    let (version, codename) = UBUNTU_RELEASES
        .iter()
        .find(|(version, codename)| name.starts_with(&format!("{codename}-{version}-")))?;
    let rest = &name[codename.len() + version.len() + 2..];
    // The newest of a release only: a pattern pinned to one serial is not
    // what the parameter follows.
    if !rest.ends_with("-server-*") {
        return None;
    }
    let (arch, architecture) = [
        ("amd64", Architecture::X86_64),
        ("arm64", Architecture::Arm64),
    ]
    .into_iter()
    .find(|(arch, _)| rest.starts_with(&format!("{arch}-server-")))?;
    let gp3 = match volume {
        "hvm-ssd-gp3" => true,
        "hvm-ssd" => false,
        "*" => *version >= "24.04",
        _ => return None,
    };
    let ebs = if gp3 { "ebs-gp3" } else { "ebs-gp2" };
    Some((
        format!(
            "/aws/service/canonical/ubuntu/server/{version}/stable/current/{arch}/hvm/{ebs}/ami-id"
        ),
        architecture,
    ))
}

fn architecture_of(value: &str) -> Option<Architecture> {
    match value {
        "x86_64" => Some(Architecture::X86_64),
        "arm64" => Some(Architecture::Arm64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_name_patterns_map_to_canonicals_parameters() {
        let cases = [
            (
                "ubuntu/images/*ubuntu-bionic-18.04-amd64-server-*",
                "/aws/service/canonical/ubuntu/server/18.04/stable/current/amd64/hvm/ebs-gp2/ami-id",
            ),
            (
                "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-*",
                "/aws/service/canonical/ubuntu/server/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id",
            ),
            (
                "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
                "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
            ),
        ];
        for (pattern, parameter) in cases {
            assert_eq!(
                canonical_parameter(pattern).map(|(p, _)| p).as_deref(),
                Some(parameter),
                "{pattern}"
            );
        }
        assert_eq!(
            canonical_parameter("ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-*")
                .map(|(_, a)| a),
            Some(Architecture::Arm64)
        );
        for other in [
            "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20230115",
            "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*",
            "ubuntu-pro-server/images/hvm-ssd/ubuntu-jammy-22.04-amd64-pro-server-*",
            "acme-base-*",
        ] {
            assert_eq!(canonical_parameter(other), None, "{other}");
        }
    }
}
