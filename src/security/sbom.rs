//! The image's software bill of materials: the test step lists the test
//! instance's installed packages ([`LISTING`], through Run Command, before
//! the test script runs), [`parse`] reads the listing, and [`document`]
//! writes it as CycloneDX 1.5, the format Amazon Inspector's `ScanSbom`
//! takes: an `operating-system` component (the distribution and its
//! version) and one component per installed package with its package URL
//! (`pkg:deb/ubuntu/NAME@VERSION?arch=...&distro=CODENAME`), as Inspector's
//! own SBOM generator writes them.
//!
//! The document holds no time and no random serial number: the same packages
//! on the same image give the same bytes, and its digest is tagged on the
//! image (`kiln:sbom-sha256`).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::aws::{Context, objects};
use crate::error::{Error, Result};
use crate::ids::AmiId;
use crate::tags;

/// The script that lists the packages: the distribution from
/// `/etc/os-release`, then every package dpkg knows with its status.
/// Nothing is installed or downloaded on the instance.
pub const LISTING: &str = r#"#!/bin/sh
set -eu
. /etc/os-release
printf 'os\t%s\t%s\t%s\n' "$ID" "$VERSION_ID" "${VERSION_CODENAME:-}"
dpkg-query -W -f='pkg\t${Package}\t${Version}\t${Architecture}\t${source:Package}\t${db:Status-Abbrev}\n'
"#;

/// The label the listing runs under (in the console, errors, `KILN_STEP`).
pub const LABEL: &str = "packages";

/// The SBOM's media type (CycloneDX's JSON).
pub const CONTENT_TYPE: &str = "application/vnd.cyclonedx+json";

/// The distribution the listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Os {
    /// `ID` of os-release (`ubuntu`).
    pub id: String,
    /// `VERSION_ID` (`24.04`).
    pub version: String,
    /// `VERSION_CODENAME` (`noble`).
    pub codename: String,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    /// The binary package's name.
    pub name: String,
    /// Its version, epoch included (`1:2.3-4`).
    pub version: String,
    /// Its architecture (`amd64`, `all`).
    pub arch: String,
    /// The source package it was built from.
    pub source: String,
}

/// What the listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The distribution.
    pub os: Os,
    /// The installed packages, by name and architecture.
    pub packages: Vec<Package>,
}

fn invalid(detail: impl Into<String>) -> Error {
    Error::PackageListing(detail.into())
}

/// Reads [`LISTING`]'s output. Packages dpkg knows but that are not
/// installed (removed with their configuration kept, half-installed) are
/// left out. A listing without its distribution line or without a single
/// installed package is refused.
pub fn parse(stdout: &str) -> Result<Listing> {
    let mut os = None;
    let mut packages = Vec::new();
    for (number, line) in stdout.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["os", id, version, codename] => {
                os = Some(Os {
                    id: (*id).to_owned(),
                    version: (*version).to_owned(),
                    codename: (*codename).to_owned(),
                });
            }
            ["pkg", name, version, arch, source, status] => {
                // The second letter of dpkg's abbreviated status is the
                // package's state: `i` for installed.
                if status.as_bytes().get(1) != Some(&b'i') {
                    continue;
                }
                if name.is_empty() || version.is_empty() {
                    return Err(invalid(format!(
                        "line {}: a package without a name or version",
                        number + 1
                    )));
                }
                // dpkg leaves the source empty when it is the package itself;
                // a source of another version is written `name (version)`.
                let source = source
                    .split(' ')
                    .next()
                    .filter(|s| !s.is_empty())
                    .unwrap_or(name);
                packages.push(Package {
                    name: (*name).to_owned(),
                    version: (*version).to_owned(),
                    arch: (*arch).to_owned(),
                    source: source.to_owned(),
                });
            }
            [""] => {}
            _ => {
                return Err(invalid(format!(
                    "line {} is not the listing's: {line:?}",
                    number + 1
                )));
            }
        }
    }
    let os = os.ok_or_else(|| invalid("no distribution line (is /etc/os-release there?)"))?;
    if packages.is_empty() {
        return Err(invalid("no installed package was listed"));
    }
    packages.sort();
    packages.dedup();
    Ok(Listing { os, packages })
}

/// `text` as a package URL segment: everything but letters, digits and
/// `.-_~` percent-encoded (the purl specification).
fn purl_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Package {
    /// The package URL: `pkg:deb/<distribution>/<name>@<version>` with the
    /// qualifiers in their canonical (sorted) order; a Debian epoch (`1:`)
    /// goes to the `epoch` qualifier, as the purl specification says.
    pub fn purl(&self, os: &Os) -> String {
        let (epoch, version) = match self.version.split_once(':') {
            Some((epoch, rest)) if epoch.bytes().all(|b| b.is_ascii_digit()) => (Some(epoch), rest),
            _ => (None, self.version.as_str()),
        };
        let mut qualifiers = vec![format!("arch={}", purl_encode(&self.arch))];
        if !os.codename.is_empty() {
            qualifiers.push(format!("distro={}", purl_encode(&os.codename)));
        }
        if let Some(epoch) = epoch {
            qualifiers.push(format!("epoch={epoch}"));
        }
        if self.source != self.name {
            qualifiers.push(format!("source={}", purl_encode(&self.source)));
        }
        format!(
            "pkg:deb/{}/{}@{}?{}",
            purl_encode(&os.id),
            purl_encode(&self.name),
            purl_encode(version),
            qualifiers.join("&")
        )
    }
}

/// The CycloneDX 1.5 document of `image`'s packages.
pub fn document(image: &AmiId, listing: &Listing) -> Value {
    let os = &listing.os;
    let mut components = vec![json!({
        "bom-ref": "os",
        "type": "operating-system",
        "name": os.id,
        "version": os.version,
    })];
    components.extend(listing.packages.iter().map(|package| {
        let purl = package.purl(os);
        json!({
            "bom-ref": purl,
            "type": "application",
            "name": package.name,
            "version": package.version,
            "purl": purl,
        })
    }));
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "kiln", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {"bom-ref": "image", "type": "platform", "name": image.as_str()},
        },
        "components": components,
    })
}

/// The bytes stored for `document`, and their SHA-256 in hex.
pub fn bytes_and_digest(document: &Value) -> Result<(Vec<u8>, String)> {
    let bytes = serde_json::to_vec_pretty(document)
        .map_err(|err| Error::InvalidInput(format!("the SBOM did not serialise: {err}")))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    Ok((bytes, digest))
}

/// Where `image`'s SBOM is kept in the output bucket: outside `kiln/`, whose
/// objects expire, since it must last as long as the image.
pub fn key(image: &AmiId) -> String {
    format!("kiln-sbom/{image}/sbom.cdx.json")
}

/// An image's SBOM as stored, checked against the digest tagged on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The document.
    pub document: Value,
    /// The SHA-256 of its bytes (the image's `kiln:sbom-sha256`).
    pub sha256: String,
}

/// Reads `image`'s SBOM from `bucket` (`image_tags`: the image's tags).
/// The inner `Err` says why there is none to use: no digest tagged (tested
/// before kiln wrote SBOMs, or without an output bucket), nothing at its
/// key, bytes that are not the ones tagged, or not JSON.
pub async fn stored(
    ctx: &Context,
    bucket: &str,
    image: &AmiId,
    image_tags: &[aws_sdk_ec2::types::Tag],
) -> Result<std::result::Result<Stored, String>> {
    let Some(tagged) = tags::value(image_tags, tags::SBOM_SHA256) else {
        return Ok(Err(format!(
            "image {image} has no SBOM (tested before kiln wrote them, or without an output bucket)"
        )));
    };
    let s3 = aws_sdk_s3::Client::new(&ctx.config);
    let key = key(image);
    let Some(bytes) = objects::read(&s3, bucket, &key).await? else {
        return Ok(Err(format!(
            "image {image}'s SBOM is not at s3://{bucket}/{key}"
        )));
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if sha256 != tagged {
        return Ok(Err(format!(
            "image {image}'s SBOM at s3://{bucket}/{key} is not the one tagged on it \
             ({sha256}, tagged {tagged})"
        )));
    }
    Ok(serde_json::from_slice(&bytes)
        .map(|document| Stored { document, sha256 })
        .map_err(|err| format!("image {image}'s SBOM is not JSON: {err}")))
}

/// The packages a stored SBOM ([`document`]) lists: (name, architecture) ->
/// version, the architecture from each package URL's `arch` qualifier;
/// `None` when the document is not one kiln wrote.
pub fn packages(document: &Value) -> Option<BTreeMap<(String, String), String>> {
    let mut packages = BTreeMap::new();
    for component in document.get("components")?.as_array()? {
        let Some(purl) = component.get("purl").and_then(Value::as_str) else {
            continue;
        };
        let (_, qualifiers) = purl.strip_prefix("pkg:deb/")?.split_once('?')?;
        let arch = qualifiers
            .split('&')
            .find_map(|q| q.strip_prefix("arch="))?;
        let name = component.get("name")?.as_str()?;
        let version = component.get("version")?.as_str()?;
        packages.insert((name.to_owned(), arch.to_owned()), version.to_owned());
    }
    Some(packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOBLE: &str = "os\tubuntu\t24.04\tnoble\n\
        pkg\tlibc6\t2.39-0ubuntu8.4\tamd64\tglibc\tii \n\
        pkg\tbash\t5.2.21-2ubuntu4\tamd64\t\tii \n\
        pkg\tlibstdc++6\t14.2.0-4ubuntu2~24.04\tamd64\tgcc-14 (14.2.0-4ubuntu2~24.04)\tii \n\
        pkg\tlibacl1\t2.3.2-1build1.1\tamd64\tacl\thi \n\
        pkg\told-kernel\t6.8.0-1\tamd64\tlinux\trc \n\
        pkg\tlibpam0g\t1:1.5.3-5ubuntu5.1\tamd64\tpam\tii \n";

    #[test]
    fn installed_packages_are_read_and_the_rest_left_out() {
        let listing = parse(NOBLE).expect("a listing");
        assert_eq!(
            listing.os,
            Os {
                id: "ubuntu".into(),
                version: "24.04".into(),
                codename: "noble".into()
            }
        );
        let names: Vec<(&str, &str)> = listing
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.source.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("bash", "bash"),
                ("libacl1", "acl"),
                ("libc6", "glibc"),
                ("libpam0g", "pam"),
                ("libstdc++6", "gcc-14"),
            ],
            "sorted; held (hi) kept; removed (rc) left out; the source's version dropped"
        );
    }

    #[test]
    fn package_urls_follow_the_purl_specification() {
        let listing = parse(NOBLE).expect("a listing");
        let purls: Vec<String> = listing
            .packages
            .iter()
            .map(|p| p.purl(&listing.os))
            .collect();
        assert_eq!(
            purls,
            [
                "pkg:deb/ubuntu/bash@5.2.21-2ubuntu4?arch=amd64&distro=noble",
                "pkg:deb/ubuntu/libacl1@2.3.2-1build1.1?arch=amd64&distro=noble&source=acl",
                "pkg:deb/ubuntu/libc6@2.39-0ubuntu8.4?arch=amd64&distro=noble&source=glibc",
                "pkg:deb/ubuntu/libpam0g@1.5.3-5ubuntu5.1?arch=amd64&distro=noble&epoch=1&source=pam",
                "pkg:deb/ubuntu/libstdc%2B%2B6@14.2.0-4ubuntu2~24.04?arch=amd64&distro=noble&source=gcc-14",
            ]
        );
    }

    #[test]
    fn the_document_is_cyclonedx_with_the_os_and_every_package() {
        let listing = parse(NOBLE).expect("a listing");
        let image: AmiId = "ami-0123456789abcdef0".parse().expect("an id");
        let doc = document(&image, &listing);
        assert_eq!(doc["bomFormat"], "CycloneDX");
        assert_eq!(doc["specVersion"], "1.5");
        let components = doc["components"].as_array().expect("components");
        assert_eq!(components.len(), 6);
        assert_eq!(components[0]["type"], "operating-system");
        assert_eq!(
            (&components[0]["name"], &components[0]["version"]),
            (&json!("ubuntu"), &json!("24.04"))
        );
        assert_eq!(components[3]["name"], "libc6");
        assert_eq!(components[3]["version"], "2.39-0ubuntu8.4");
        assert_eq!(components[3]["purl"], components[3]["bom-ref"]);
        let (a, digest) = bytes_and_digest(&doc).expect("bytes");
        let (b, again) =
            bytes_and_digest(&document(&image, &parse(NOBLE).expect("a listing"))).expect("bytes");
        assert_eq!(
            (a, &digest),
            (b, &again),
            "the same packages give the same bytes"
        );
        assert_eq!(digest.len(), 64);
    }

    #[test]
    fn a_listing_that_is_not_one_is_refused() {
        for bad in [
            "",
            "pkg\tbash\t5.2\tamd64\t\tii \n",
            "os\tubuntu\t24.04\tnoble\n",
            "os\tubuntu\t24.04\tnoble\npkg\tbash\t5.2\tamd64\t\trc \n",
            "os\tubuntu\t24.04\tnoble\nsomething else\n",
            "os\tubuntu\t24.04\tnoble\npkg\t\t5.2\tamd64\t\tii \n",
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.name(), "PackageListing", "{bad:?}");
        }
    }
}
