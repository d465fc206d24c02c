//! This tcplab executable as bytes and SHA-256: what the ssh and Vagrant
//! labs upload to hosts that lack it, and what keys a microvm guest's
//! initramfs.

use sha2::{Digest, Sha256};

use super::error::LabError;

/// This tcplab executable, as uploaded to hosts that lack it.
pub struct LocalExecutable {
    pub bytes: Vec<u8>,
    pub sha256: String,
}

impl LocalExecutable {
    pub fn load() -> Result<LocalExecutable, LabError> {
        let path = std::env::current_exe()
            .map_err(|e| LabError::Setup(format!("cannot find the tcplab executable: {e}")))?;
        let bytes = std::fs::read(&path)
            .map_err(|e| LabError::Setup(format!("cannot read {}: {e}", path.display())))?;
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(LocalExecutable { bytes, sha256 })
    }
}
