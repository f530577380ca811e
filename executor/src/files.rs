//! Files the executor writes and compressed data it reads: written whole through a new file
//! beside the target (never through a predictable name, never following a symlink), and
//! decompressed within a bound.

use std::io::Read;

pub use validator::files::replace;

/// Decompresses gzip data of at most `limit` bytes; more is an error (a small archive must not
/// expand without bound).
pub fn gunzip(bytes: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it expands to more than {limit} bytes"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn replace_writes_whole_files_with_the_mode_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive");
        replace(&path, b"first", 0o600).unwrap();
        replace(&path, b"second", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        // Nothing is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("archive")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            replace(&path, b"third", 0o644).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }

    #[cfg(unix)]
    #[test]
    fn replace_does_not_follow_a_symlink_at_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = dir.path().join("archive");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        // A symlink where the old temporary name used to be is not followed either.
        std::os::unix::fs::symlink(&victim, dir.path().join("archive.tmp")).unwrap();
        replace(&link, b"secret", 0o600).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(!std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&link).unwrap(), b"secret");
    }

    #[test]
    fn gunzip_is_bounded() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'a'; 1 << 20]).unwrap();
        let bytes = gz.finish().unwrap();
        assert!(bytes.len() < 4096);
        assert_eq!(gunzip(&bytes, 1 << 20).unwrap().len(), 1 << 20);
        let err = gunzip(&bytes, (1 << 20) - 1).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("more than 1048575 bytes"), "{err}");
        assert!(gunzip(b"not gzip", 10).is_err());
    }
}
