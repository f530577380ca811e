//! Whole-file writes: through a new file beside the target (never a predictable name, never
//! following a symlink), renamed into place.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes` at once: the data go to a fresh temporary file in the same
/// directory, created with `mode` (Unix permission bits), synced, then renamed over `path`. A
/// reader sees the old file or the new one, never half of one; a symlink at `path` is replaced,
/// not followed.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Created readable by its owner only; `mode` is set before any byte is written.
    let mut file = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
