//! `kiln diff`: what changed in the software between two images of a recipe,
//! from their SBOMs (each checked against the digest tagged on its image):
//! packages added, removed, upgraded and downgraded, versions compared as
//! dpkg compares them; and, from the findings Inspector made of each SBOM
//! ([`super::scan`]), the vulnerabilities fixed and introduced.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;

use super::sbom;
use super::scan::{self, Finding};
use crate::aws::{Context, images};
use crate::error::{Error, Result};
use crate::ids::{AmiId, RecipeName};
use crate::tags;

/// One side of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Side {
    /// What was asked for: an image id or a channel.
    pub asked: String,
    /// The image.
    pub image: AmiId,
    /// The SHA-256 of its SBOM (as tagged, and as read).
    pub sbom_sha256: String,
    /// Its installed packages.
    pub packages: usize,
    /// How many vulnerabilities Inspector found in its SBOM; none when it
    /// was never scanned.
    pub vulnerabilities: Option<usize>,
}

/// The vulnerabilities that differ between the two images: a finding is one
/// CVE in one package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vulnerabilities {
    /// The first image's findings the second does not have.
    pub fixed: Vec<Finding>,
    /// The second image's findings the first did not have.
    pub introduced: Vec<Finding>,
}

/// A package on one side only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// Its name.
    pub name: String,
    /// Its architecture.
    pub arch: String,
    /// Its version.
    pub version: String,
}

/// A package on both sides, in another version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Its name.
    pub name: String,
    /// Its architecture.
    pub arch: String,
    /// The version in the first image.
    pub from: String,
    /// The version in the second.
    pub to: String,
}

/// What changed from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    /// The recipe both images belong to.
    pub recipe: RecipeName,
    /// The first image.
    pub from: Side,
    /// The second.
    pub to: Side,
    /// Packages only the second has.
    pub added: Vec<Package>,
    /// Packages only the first has.
    pub removed: Vec<Package>,
    /// Packages in a newer version in the second.
    pub upgraded: Vec<Change>,
    /// Packages in an older version in the second.
    pub downgraded: Vec<Change>,
    /// Vulnerabilities fixed and introduced; none when either image was
    /// never scanned.
    pub vulnerabilities: Option<Vulnerabilities>,
}

fn refused(why: impl Into<String>) -> Error {
    Error::DiffRefused(why.into())
}

/// One image as read for a diff.
struct Read {
    recipe: RecipeName,
    side: Side,
    packages: BTreeMap<(String, String), String>,
    findings: Option<Vec<Finding>>,
}

/// The image's recipe, its SBOM's packages (the SBOM checked against the
/// digest tagged on the image) and the findings made of that SBOM.
async fn side(ctx: &Context, bucket: &str, asked: &str, image: AmiId) -> Result<Read> {
    let described = images::describe(ctx, &image)
        .await?
        .ok_or_else(|| refused(format!("image {image} does not exist here")))?;
    let recipe: RecipeName = tags::value(described.tags(), tags::RECIPE)
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| refused(format!("image {image} was not built by kiln")))?;
    let stored = sbom::stored(ctx, bucket, &image, described.tags())
        .await?
        .map_err(refused)?;
    let (document, digest) = (stored.document, stored.sha256);
    let packages = sbom::packages(&document)
        .ok_or_else(|| refused(format!("image {image}'s SBOM is not one kiln wrote")))?;
    let findings = scan::stored(ctx, bucket, &image)
        .await?
        .filter(|f| f.sbom_sha256 == digest)
        .map(|f| f.findings);
    let side = Side {
        asked: asked.to_owned(),
        image,
        sbom_sha256: digest,
        packages: packages.len(),
        vulnerabilities: findings.as_ref().map(Vec::len),
    };
    Ok(Read {
        recipe,
        side,
        packages,
        findings,
    })
}

/// What changed in the software from image `from` to image `to` (each
/// with what was asked for: its id, or the channel that named it), from
/// their SBOMs in the output bucket. Both must be images of one recipe
/// (`recipe`, when given), each with its SBOM as tagged; anything else is
/// `DiffRefused`.
pub async fn diff(
    ctx: &Context,
    recipe: Option<&RecipeName>,
    from: (&str, AmiId),
    to: (&str, AmiId),
) -> Result<Diff> {
    let bucket = ctx.settings.output_bucket.as_deref().ok_or_else(|| {
        refused("no output bucket is set (KILN_OUTPUT_BUCKET, the stack's OutputBucketName): the SBOMs are there")
    })?;
    let first = side(ctx, bucket, from.0, from.1).await?;
    let second = side(ctx, bucket, to.0, to.1).await?;
    let (recipe_a, from, before) = (first.recipe, first.side, first.packages);
    let (recipe_b, to, after) = (second.recipe, second.side, second.packages);
    if recipe_a != recipe_b || recipe.is_some_and(|r| *r != recipe_a) {
        return Err(refused(format!(
            "{} is recipe {recipe_a}'s, {} recipe {recipe_b}'s: compare images of one recipe",
            from.image, to.image
        )));
    }
    let (mut added, mut removed, mut upgraded, mut downgraded) = (vec![], vec![], vec![], vec![]);
    let package = |(name, arch): &(String, String), version: &String| Package {
        name: name.clone(),
        arch: arch.clone(),
        version: version.clone(),
    };
    for (key, version) in &after {
        match before.get(key) {
            None => added.push(package(key, version)),
            Some(old) => {
                let change = || Change {
                    name: key.0.clone(),
                    arch: key.1.clone(),
                    from: old.clone(),
                    to: version.clone(),
                };
                match compare_versions(old, version) {
                    Ordering::Less => upgraded.push(change()),
                    Ordering::Greater => downgraded.push(change()),
                    Ordering::Equal => {}
                }
            }
        }
    }
    for (key, version) in &before {
        if !after.contains_key(key) {
            removed.push(package(key, version));
        }
    }
    let vulnerabilities = first
        .findings
        .zip(second.findings)
        .map(|(old, new)| Vulnerabilities {
            fixed: scan::only_in(&old, &new),
            introduced: scan::only_in(&new, &old),
        });
    Ok(Diff {
        recipe: recipe_a,
        from,
        to,
        added,
        removed,
        upgraded,
        downgraded,
        vulnerabilities,
    })
}

/// Two Debian versions compared as dpkg does (deb-version(7)): the epoch
/// numerically, then the upstream version and the revision, each in runs of
/// non-digits (letters before other characters, `~` before everything,
/// even the end) and of digits (numerically).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let split = |v: &str| -> (u64, String, String) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, rest)) if e.bytes().all(|c| c.is_ascii_digit()) => {
                (e.parse().unwrap_or(0), rest)
            }
            _ => (0, v),
        };
        let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
        (epoch, upstream.to_owned(), revision.to_owned())
    };
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| compare_part(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| compare_part(ra.as_bytes(), rb.as_bytes()))
}

/// A character's weight in a non-digit run: `~` below the end of the run,
/// letters below the other characters.
fn weight(c: Option<&u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(*c),
        Some(c) => i32::from(*c) + 256,
    }
}

/// A run of digits without its leading zeros.
fn without_zeros(digits: &[u8]) -> &[u8] {
    &digits[digits.iter().take_while(|c| **c == b'0').count()..]
}

fn compare_part(mut a: &[u8], mut b: &[u8]) -> Ordering {
    while !a.is_empty() || !b.is_empty() {
        while a.first().is_some_and(|c| !c.is_ascii_digit())
            || b.first().is_some_and(|c| !c.is_ascii_digit())
        {
            let (wa, wb) = (weight(a.first()), weight(b.first()));
            if wa != wb {
                return wa.cmp(&wb);
            }
            a = a.get(1..).unwrap_or_default();
            b = b.get(1..).unwrap_or_default();
        }
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (na, nb) = (digits(a), digits(b));
        let (da, db) = (without_zeros(&a[..na]), without_zeros(&b[..nb]));
        let by_number = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
        if by_number != Ordering::Equal {
            return by_number;
        }
        a = &a[na..];
        b = &b[nb..];
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_dpkg_compares_them() {
        for (a, b, expected) in [
            ("1.0", "1.0", Ordering::Equal),
            ("1.0", "1.1", Ordering::Less),
            ("1.10", "1.9", Ordering::Greater),
            ("1.0~rc1", "1.0", Ordering::Less),
            ("1.0", "1.0+b1", Ordering::Less),
            ("1.0a", "1.0+", Ordering::Less),
            ("1:1.0", "2.0", Ordering::Greater),
            ("2.39-0ubuntu8.3", "2.39-0ubuntu8.4", Ordering::Less),
            ("2.39-0ubuntu8.10", "2.39-0ubuntu8.4", Ordering::Greater),
            ("14.2.0-4ubuntu2~24.04", "14.2.0-4ubuntu2", Ordering::Less),
            ("1.0-1", "1.0", Ordering::Greater),
            ("007", "7", Ordering::Equal),
            ("1.2.3", "1.2.3.0", Ordering::Less),
        ] {
            assert_eq!(compare_versions(a, b), expected, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), expected.reverse(), "{b} vs {a}");
        }
    }
}
