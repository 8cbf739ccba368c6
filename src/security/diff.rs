//! `kiln diff`: what changed in the software between two images of a recipe,
//! from their SBOMs (each checked against the digest tagged on its image):
//! packages added, removed, upgraded and downgraded, versions compared as
//! dpkg compares them.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::sbom;
use crate::aws::{Context, images, objects};
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
}

fn refused(why: impl Into<String>) -> Error {
    Error::DiffRefused(why.into())
}

/// The image's recipe and its SBOM's packages, the SBOM checked against
/// the digest tagged on the image.
async fn side(
    ctx: &Context,
    bucket: &str,
    asked: &str,
    image: AmiId,
) -> Result<(RecipeName, Side, BTreeMap<(String, String), String>)> {
    let described = images::describe(ctx, &image)
        .await?
        .ok_or_else(|| refused(format!("image {image} does not exist here")))?;
    let recipe: RecipeName = tags::value(described.tags(), tags::RECIPE)
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| refused(format!("image {image} was not built by kiln")))?;
    let tagged = tags::value(described.tags(), tags::SBOM_SHA256).ok_or_else(|| {
        refused(format!(
            "image {image} has no SBOM (built before kiln wrote them, or without an output bucket)"
        ))
    })?;
    let s3 = aws_sdk_s3::Client::new(&ctx.config);
    let key = sbom::key(&image);
    let bytes = objects::read(&s3, bucket, &key).await?.ok_or_else(|| {
        refused(format!(
            "image {image}'s SBOM is not at s3://{bucket}/{key}"
        ))
    })?;
    let digest = hex::encode(Sha256::digest(&bytes));
    if digest != tagged {
        return Err(refused(format!(
            "image {image}'s SBOM at s3://{bucket}/{key} is not the one tagged on it \
             ({digest}, tagged {tagged})"
        )));
    }
    let document: Value = serde_json::from_slice(&bytes)
        .map_err(|err| refused(format!("image {image}'s SBOM is not JSON: {err}")))?;
    let packages = sbom::packages(&document)
        .ok_or_else(|| refused(format!("image {image}'s SBOM is not one kiln wrote")))?;
    let side = Side {
        asked: asked.to_owned(),
        image,
        sbom_sha256: digest,
        packages: packages.len(),
    };
    Ok((recipe, side, packages))
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
    let (recipe_a, from, before) = side(ctx, bucket, from.0, from.1).await?;
    let (recipe_b, to, after) = side(ctx, bucket, to.0, to.1).await?;
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
    Ok(Diff {
        recipe: recipe_a,
        from,
        to,
        added,
        removed,
        upgraded,
        downgraded,
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
