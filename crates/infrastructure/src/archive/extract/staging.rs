//! The extraction root and S9: a directory created fresh, files created with
//! `O_CREAT|O_EXCL` and mode 0644, directories with mode 0755, whatever the headers
//! say, and the parent of every created path re-checked with `canonicalize` to lie
//! inside the root. Nothing here follows a symlink: `create_new` fails on one, and a
//! directory that already exists must be a real directory.

use std::collections::HashSet;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Where an archive is extracted.
#[derive(Debug)]
pub(super) struct Staging {
    root: PathBuf,
    canonical_root: PathBuf,
    /// Directories below the root already created, relative and `/`-separated.
    dirs: HashSet<String>,
}

/// Why a path could not be created.
#[derive(Debug)]
pub(super) enum CreateError {
    /// The parent resolves outside the root (S9).
    Escapes,
    /// The file system failed.
    Io(io::Error),
}

impl From<io::Error> for CreateError {
    fn from(error: io::Error) -> CreateError {
        CreateError::Io(error)
    }
}

impl Staging {
    /// Creates `root` (its parents as needed); fails if it exists.
    pub(super) fn create(root: &Path) -> io::Result<Staging> {
        if let Some(parent) = root.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }
        new_dir(root)?;
        Ok(Staging {
            root: root.to_path_buf(),
            canonical_root: root.canonicalize()?,
            dirs: HashSet::new(),
        })
    }

    /// The native path of `rel`.
    pub(super) fn path(&self, rel: &str) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(rel.split('/'));
        path
    }

    /// Creates `rel` and every missing directory above it.
    pub(super) fn create_dir(&mut self, rel: &str) -> Result<(), CreateError> {
        let ends = rel.match_indices('/').map(|(at, _)| at);
        for end in ends.chain(std::iter::once(rel.len())) {
            let dir = &rel[..end];
            if self.dirs.contains(dir) {
                continue;
            }
            let path = self.path(dir);
            self.check_parent(&path)?;
            match new_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if !std::fs::symlink_metadata(&path)?.is_dir() {
                        return Err(CreateError::Io(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("{} exists and is not a directory", path.display()),
                        )));
                    }
                }
                Err(e) => return Err(e.into()),
            }
            self.dirs.insert(dir.to_owned());
        }
        Ok(())
    }

    /// Creates the new file `rel` (mode 0644) and the directories above it.
    pub(super) fn create_file(&mut self, rel: &str) -> Result<File, CreateError> {
        self.create_file_with_mode(rel, 0o644)
    }

    /// Creates the new file `rel` with `mode` (0444 for the read-only manifest).
    pub(super) fn create_file_with_mode(
        &mut self,
        rel: &str,
        mode: u32,
    ) -> Result<File, CreateError> {
        if let Some((parent, _)) = rel.rsplit_once('/') {
            self.create_dir(parent)?;
        }
        let path = self.path(rel);
        self.check_parent(&path)?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        let file = options.open(&path)?;
        set_mode(&file, mode)?;
        Ok(file)
    }

    fn check_parent(&self, path: &Path) -> Result<(), CreateError> {
        let parent = path.parent().unwrap_or(&self.root);
        if parent.canonicalize()?.starts_with(&self.canonical_root) {
            Ok(())
        } else {
            Err(CreateError::Escapes)
        }
    }
}

/// `mkdir` with mode 0755, then exactly 0755 whatever the umask.
fn new_dir(path: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o755);
    builder.create(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// The exact mode, whatever the umask took away at `open`.
fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (file, mode);
    Ok(())
}
