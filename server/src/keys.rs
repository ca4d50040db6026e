//! Key files: `keygen` writes a private PKCS#8 PEM (mode 0600) and the public SPKI PEM that clients
//! are configured with, and the sealing key (`license_api::sealed`, mode 0600) beside them. The
//! sealing key is never replaced: the secrets sealed under it would become unreadable.

use license_api::sealed::{SealError, SealingKey};
use license_api::secret::{ExposeSecret, SecretString};
use license_api::signing::Signer;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const PRIVATE_KEY_FILE: &str = "signing-key.pem";
pub const PUBLIC_KEY_FILE: &str = "signing-key.pub.pem";
/// The sealing key's file: one line of base64 (`SealingKey::from_text`).
pub const SEALING_KEY_FILE: &str = "sealing-key";

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(
        "{0} already exists; pass --force to replace it (clients trusting the old public key will reject responses)"
    )]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read signing key {path}: {source} (create one with `license-server keygen`)")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("signing key {path}: {source}")]
    Invalid {
        path: PathBuf,
        source: license_api::signing::KeyError,
    },
    #[error("sealing key {path}: {source}")]
    Sealing { path: PathBuf, source: SealError },
}

/// Generates a key pair into `dir`; returns the signer and both paths.
pub fn generate(dir: &Path, bits: usize, force: bool) -> Result<(Signer, PathBuf, PathBuf), KeyFileError> {
    let (private, public) = (dir.join(PRIVATE_KEY_FILE), dir.join(PUBLIC_KEY_FILE));
    if !force && private.exists() {
        return Err(KeyFileError::Exists(private));
    }
    let (signer, pem) = Signer::generate(bits).map_err(|e| KeyFileError::Invalid {
        path: private.clone(),
        source: e,
    })?;
    // Wiped from memory once written.
    let pem = SecretString::from(pem);
    std::fs::create_dir_all(dir).map_err(|source| KeyFileError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_private(&private, pem.expose_secret().as_bytes())?;
    std::fs::write(&public, signer.public_key_pem()).map_err(|source| KeyFileError::Write {
        path: public.clone(),
        source,
    })?;
    Ok((signer, private, public))
}

/// Writes the private key into a fresh file created with mode 0600, then renames it over `path`.
/// Opening `path` itself would keep the mode of a key that already exists (perhaps world-readable
/// after a copy), and a crash part-way would leave half a key; this way neither can happen.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyFileError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    // Left over from a crash of an earlier run with the same process id.
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(|source| KeyFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a new sealing key into `dir` unless one is there (`--force` does not apply: replacing it
/// would lose every sealed secret). Returns its path and whether it was written now.
pub fn generate_sealing(dir: &Path) -> Result<(PathBuf, bool), KeyFileError> {
    let path = dir.join(SEALING_KEY_FILE);
    if path.exists() {
        return Ok((path, false));
    }
    let (_, text) = SealingKey::generate().map_err(|source| KeyFileError::Sealing {
        path: path.clone(),
        source,
    })?;
    std::fs::create_dir_all(dir).map_err(|source| KeyFileError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_private(&path, format!("{}\n", text.expose_secret()).as_bytes())?;
    Ok((path, true))
}

/// The sealing key at `path`; `None` if the file does not exist and `required` is false (a
/// deployment without OAuth clients needs none).
pub fn load_sealing(path: &Path, required: bool) -> Result<Option<SealingKey>, KeyFileError> {
    let text = match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        read => SecretString::from(read.map_err(|source| KeyFileError::Read {
            path: path.to_path_buf(),
            source,
        })?),
    };
    SealingKey::from_text(text.expose_secret())
        .map(Some)
        .map_err(|source| KeyFileError::Sealing {
            path: path.to_path_buf(),
            source,
        })
}

pub fn load(path: &Path) -> Result<Signer, KeyFileError> {
    let pem = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Signer::from_pem(&pem).map_err(|source| KeyFileError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replacing_a_wide_open_private_key_leaves_mode_0600() {
        let dir = std::env::temp_dir().join(format!("license-server-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join(PRIVATE_KEY_FILE);
        std::fs::write(&key, "old").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&key, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "new");
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [PRIVATE_KEY_FILE], "no temporary file is left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_sealing_key_is_written_0600_once_and_never_replaced() {
        let dir = std::env::temp_dir().join(format!("license-server-sealing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join(SEALING_KEY_FILE);
        assert!(load_sealing(&path, false).unwrap().is_none(), "optional and absent");
        assert!(matches!(load_sealing(&path, true), Err(KeyFileError::Read { .. })));
        assert_eq!(generate_sealing(&dir).unwrap(), (path.clone(), true));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let first = std::fs::read_to_string(&path).unwrap();
        let key = load_sealing(&path, true).unwrap().unwrap();
        let sealed = key.seal(&"s".into(), "c").unwrap();
        assert_eq!(generate_sealing(&dir).unwrap(), (path.clone(), false));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first, "kept");
        let again = load_sealing(&path, false).unwrap().unwrap();
        assert_eq!(again.open(&sealed, "c").unwrap().expose_secret(), "s");
        std::fs::write(&path, "garbage").unwrap();
        let err = load_sealing(&path, false).unwrap_err().to_string();
        assert!(err.contains(SEALING_KEY_FILE) && err.contains("keygen"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
