//! `ami_regions`, `ami_users`, `ami_ou_arns` and `region_kms_key_ids` as
//! the recipe's `[distribution]`, kept only as far as kiln's rules for it
//! hold (a shared encrypted image needs customer managed keys: "Share an
//! AMI with specific AWS accounts", Amazon EC2 User Guide).

use super::template::{self as t, Field, Finding};
use crate::recipe::distribution::problems;
use crate::recipe::{Distribution, RootVolume};

/// The distribution the fields ask for, less what kiln would refuse, each
/// removal reported with kiln's reason.
pub(super) fn distribution(
    take: &mut impl FnMut(&str) -> Option<Field>,
    at: &impl Fn(&str) -> String,
    root: &RootVolume,
    findings: &mut Vec<Finding>,
) -> Distribution {
    let build_region = take("region").and_then(|f| t::text(&f).ok().map(str::to_owned));
    let mut list = |key: &str, findings: &mut Vec<Finding>| match take(key).map(|f| t::texts(&f)) {
        Some(Ok(items)) => items,
        Some(Err(reason)) => {
            findings.push(Finding::dropped(at(key), reason));
            Vec::new()
        }
        None => Vec::new(),
    };
    let mut regions = list("ami_regions", findings);
    let accounts = list("ami_users", findings);
    let organizational_units = list("ami_ou_arns", findings);
    if build_region.is_some() {
        findings.push(Finding::dropped(
            at("region"),
            "kiln builds in the region it runs in (AWS_REGION, the deployment's region)",
        ));
    }
    if let Some(home) = &build_region
        && regions.contains(home)
    {
        regions.retain(|r| r != home);
        findings.push(Finding::changed(
            at("ami_regions"),
            format!("{home} is the build region: the image is made there, no copy"),
        ));
    }
    let kms_keys = match take("region_kms_key_ids").map(|f| t::string_map(&f)) {
        Some(Ok(keys)) => keys
            .into_iter()
            .filter(|(region, _)| Some(region) != build_region.as_ref())
            .collect(),
        Some(Err(reason)) => {
            findings.push(Finding::dropped(at("region_kms_key_ids"), reason));
            Default::default()
        }
        None => Default::default(),
    };
    let wanted = Distribution {
        regions,
        accounts,
        organizational_units,
        kms_keys,
        ..Distribution::default()
    };
    let found = problems(&wanted, root);
    if found.is_empty() {
        return wanted;
    }
    let unshared = Distribution {
        accounts: Vec::new(),
        organizational_units: Vec::new(),
        ..wanted.clone()
    };
    let why = found
        .iter()
        .map(|(field, message)| format!("{field}: {message}"))
        .collect::<Vec<_>>()
        .join("; ");
    let given = [
        ("ami_regions", !wanted.regions.is_empty()),
        ("ami_users", !wanted.accounts.is_empty()),
        ("ami_ou_arns", !wanted.organizational_units.is_empty()),
        ("region_kms_key_ids", !wanted.kms_keys.is_empty()),
    ];
    if wanted.shares() && problems(&unshared, root).is_empty() {
        for (key, _) in given[1..3].iter().filter(|(_, given)| *given) {
            findings.push(Finding::dropped(
                at(key),
                format!("kiln would refuse the sharing ({why}); add the keys, then share"),
            ));
        }
        return unshared;
    }
    for (key, _) in given.iter().filter(|(_, given)| *given) {
        findings.push(Finding::dropped(
            at(key),
            format!("kiln would refuse it: {why}"),
        ));
    }
    Distribution::default()
}
