//! The build fingerprint: what an image is a pure function of.
//!
//! Two builds with the same source image, the same recipe file (but for its
//! release policy, comments and layout) and the same scripts make the same
//! image, so the second is skipped. Every input is
//! length-prefixed, so moving bytes between inputs changes the hash.

use sha2::{Digest, Sha256};

use std::collections::BTreeMap;

use crate::ids::{AmiId, Fingerprint};

/// Bumped when the fingerprint's inputs change meaning, so old images rebuild.
const VERSION: &[u8] = b"kiln-fingerprint-v2";

/// The fingerprint of building from `source` with a recipe file's bytes and
/// its scripts (by path). See [`crate::recipe::Recipe::fingerprint`].
pub fn fingerprint(
    source: &AmiId,
    recipe_file: &[u8],
    scripts: &BTreeMap<String, Vec<u8>>,
) -> Fingerprint {
    let mut hasher = Sha256::new();
    field(&mut hasher, VERSION);
    field(&mut hasher, source.as_str().as_bytes());
    field(&mut hasher, recipe_file);
    for (path, bytes) in scripts {
        field(&mut hasher, path.as_bytes());
        field(&mut hasher, bytes);
    }
    Fingerprint::try_from(hex::encode(hasher.finalize()))
        .unwrap_or_else(|_| unreachable!("SHA-256 hex is 64 hex digits"))
}

fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(ami: &str, raw: &str, scripts: &[(&str, &str)]) -> Fingerprint {
        let scripts = scripts
            .iter()
            .map(|(path, body)| ((*path).to_owned(), body.as_bytes().to_vec()))
            .collect();
        fingerprint(&ami.parse().expect("ami id"), raw.as_bytes(), &scripts)
    }

    #[test]
    fn any_input_change_changes_the_fingerprint() {
        let ami = "ami-0123456789abcdef0";
        let base = of(ami, "a = 1", &[("setup.sh", "echo hi")]);
        assert_eq!(base, of(ami, "a = 1", &[("setup.sh", "echo hi")]));
        assert_ne!(
            base,
            of("ami-0123456789abcdef1", "a = 1", &[("setup.sh", "echo hi")])
        );
        assert_ne!(base, of(ami, "a = 2", &[("setup.sh", "echo hi")]));
        assert_ne!(base, of(ami, "a = 1", &[("setup.sh", "echo hI")]));
        assert_ne!(base, of(ami, "a = 1", &[("setup2.sh", "echo hi")]));
        assert_ne!(
            of(ami, "a = 1", &[("a", "bc"), ("d", "")]),
            of(ami, "a = 1", &[("a", "b"), ("d", "c")]),
            "bytes moved between scripts must change the fingerprint"
        );
    }
}
