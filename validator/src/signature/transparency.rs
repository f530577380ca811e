//! Transparency log inclusion: RFC 6962 Merkle audit paths and the signed checkpoints (signed
//! note format) they lead to. Rekor v2 entries prove their inclusion only this way; Rekor v1
//! entries may carry a proof besides their signed entry timestamp.

use sha2::{Digest, Sha256};

/// The hash of a log leaf (RFC 6962: `SHA-256(0x00 || entry)`).
pub fn leaf_hash(entry: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

fn node_hash(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root hash an inclusion proof leads to from the leaf at `index` of a tree of `size`
/// leaves (RFC 9162, 2.1.3.2); `None` when the proof has the wrong length for that position.
pub fn root_from_proof(
    index: u64,
    size: u64,
    leaf: [u8; 32],
    proof: &[Vec<u8>],
) -> Option<[u8; 32]> {
    if index >= size {
        return None;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut root = leaf;
    for p in proof {
        if p.len() != 32 || s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            root = node_hash(p, &root);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            root = node_hash(&root, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(root)
}

/// A checkpoint: the note's text (what its signatures cover) and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint<'a> {
    /// The signed text: origin, tree size, root hash and any extension lines, each ending in a
    /// newline.
    pub text: &'a str,
    pub origin: &'a str,
    pub size: u64,
    pub root_hash: Vec<u8>,
    /// (signer name, key hint, signature) of each signature line.
    pub signatures: Vec<(&'a str, [u8; 4], Vec<u8>)>,
}

impl<'a> Checkpoint<'a> {
    /// Reads a signed note whose text is a checkpoint.
    pub fn parse(note: &'a str) -> Result<Checkpoint<'a>, String> {
        let split = note
            .find("\n\n")
            .ok_or("the checkpoint has no blank line before its signatures")?;
        let text = &note[..split + 1];
        let mut lines = text.lines();
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or("the checkpoint has no origin line")?;
        let size = lines
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or("the checkpoint's second line is not a tree size")?;
        let root_hash = lines
            .next()
            .and_then(|r| base64_decode(r).ok())
            .ok_or("the checkpoint's third line is not a base64 root hash")?;
        let mut signatures = Vec::new();
        for line in note[split + 2..].lines().filter(|l| !l.is_empty()) {
            let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| {
                format!("checkpoint signature line `{line}` does not start with an em dash")
            })?;
            let (name, signature) = rest
                .rsplit_once(' ')
                .ok_or_else(|| format!("checkpoint signature line `{line}` has no signature"))?;
            let bytes = base64_decode(signature)
                .map_err(|e| format!("checkpoint signature of {name}: {e}"))?;
            if bytes.len() < 5 {
                return Err(format!("checkpoint signature of {name} is too short"));
            }
            let (hint, signature) = bytes.split_at(4);
            let hint = [hint[0], hint[1], hint[2], hint[3]];
            signatures.push((name, hint, signature.to_vec()));
        }
        if signatures.is_empty() {
            return Err("the checkpoint is not signed".into());
        }
        Ok(Checkpoint {
            text,
            origin,
            size,
            root_hash,
            signatures,
        })
    }
}

fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The RFC 6962 tree hash of `leaves` (MTH), computed recursively.
    fn tree_hash(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = (n as u64).next_power_of_two() as usize / 2;
                let k = if k == n { n / 2 } else { k };
                node_hash(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
            }
        }
    }

    /// The audit path of leaf `m` (RFC 6962, 2.1.1 PATH).
    fn path(m: usize, leaves: &[[u8; 32]]) -> Vec<Vec<u8>> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = (n as u64).next_power_of_two() as usize / 2;
        let k = if k == n { n / 2 } else { k };
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(tree_hash(&leaves[k..]).to_vec());
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(tree_hash(&leaves[..k]).to_vec());
            p
        }
    }

    fn leaves(n: usize) -> Vec<[u8; 32]> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    proptest! {
        #[test]
        fn every_leaf_proves_into_its_tree(n in 1usize..70, pick in 0usize..1000) {
            let leaves = leaves(n);
            let m = pick % n;
            let root = tree_hash(&leaves);
            let proof = path(m, &leaves);
            prop_assert_eq!(root_from_proof(m as u64, n as u64, leaves[m], &proof), Some(root));
            // Another position, a changed hash or a shortened path do not.
            if n > 1 {
                let other = (m + 1) % n;
                prop_assert_ne!(root_from_proof(other as u64, n as u64, leaves[m], &proof), Some(root));
            }
            // A tree of another size whose path for this position has another length.
            prop_assert_ne!(root_from_proof(m as u64, 2 * n as u64 + 1, leaves[m], &proof), Some(root));
            if let Some(first) = proof.first() {
                let mut tampered = proof.clone();
                tampered[0][0] ^= 1;
                prop_assert_ne!(root_from_proof(m as u64, n as u64, leaves[m], &tampered), Some(root));
                prop_assert_ne!(first.len(), 0);
                prop_assert_eq!(root_from_proof(m as u64, n as u64, leaves[m], &proof[1..]), None);
            }
        }

        #[test]
        fn checkpoint_parsing_never_panics(text in "\\PC*") {
            let _ = Checkpoint::parse(&text);
        }
    }

    #[test]
    fn checkpoints_are_read() {
        let note = "log.example\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nextension\n\n\u{2014} log.example AQIDBAUG\n";
        let c = Checkpoint::parse(note).unwrap();
        assert_eq!(
            (c.origin, c.size, c.root_hash.len()),
            ("log.example", 7, 32)
        );
        assert_eq!(
            c.text,
            "log.example\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nextension\n"
        );
        assert_eq!(
            c.signatures,
            vec![("log.example", [1, 2, 3, 4], vec![5, 6])]
        );
        for (bad, why) in [
            ("log\n7\nAA==\n", "no blank line"),
            ("log\nseven\nAA==\n\n\u{2014} log AQIDBAUG\n", "tree size"),
            ("log\n7\nAA==\n\n", "not signed"),
            ("log\n7\nAA==\n\n- log AQIDBAUG\n", "em dash"),
            ("log\n7\nAA==\n\n\u{2014} log AQID\n", "too short"),
        ] {
            let e = Checkpoint::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
