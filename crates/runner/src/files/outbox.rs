//! The outbox on disk: `~/outbox`, made by the runner before the program starts and owned by the
//! session's user. The runner may be root while the program is not, so it reads the outbox the way
//! the user could and no further: every directory and file is opened relative to its parent with
//! `O_NOFOLLOW` (a symbolic link anywhere is skipped, never followed), only regular files owned by the
//! session's user are taken (a hard link to someone else's file is not), and a file is uploaded from the
//! descriptor that was checked.

use edgeshell_core::files::{Seen, MAX_OUTBOX_DEPTH, MAX_OUTBOX_FILES, OUTBOX_PREFIX};
use rustix::fs::{fstat, openat, statat, AtFlags, FileType, Mode, OFlags, Stat, CWD};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// A session's outbox.
#[derive(Debug, Clone)]
pub struct OutboxDir {
    path: PathBuf,
    /// The user whose files are taken.
    owner: u32,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

impl OutboxDir {
    /// Makes `workdir/outbox` for `user` (the program's user; the runner's own when `None`), or takes
    /// the directory that is there.
    pub fn prepare(workdir: &Path, user: Option<u32>) -> io::Result<OutboxDir> {
        let path = workdir.join(OUTBOX_PREFIX);
        match std::fs::create_dir(&path) {
            Ok(()) => {
                if let Some(uid) = user {
                    std::os::unix::fs::chown(&path, Some(uid), Some(uid))?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let owner = user.unwrap_or_else(|| rustix::process::geteuid().as_raw());
        let dir = OutboxDir { path, owner };
        dir.open_root()?;
        Ok(dir)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_root(&self) -> io::Result<OwnedFd> {
        Ok(openat(CWD, &self.path, DIR_FLAGS, Mode::empty())?)
    }

    /// Every regular file of the user's under the outbox (its path below it, `/`-separated) with its
    /// size and modification time; at most a little over [`MAX_OUTBOX_FILES`], at most
    /// [`MAX_OUTBOX_DEPTH`] directories deep. An outbox that cannot be read gives nothing.
    pub fn scan(&self) -> Vec<(String, Seen)> {
        let mut found = Vec::new();
        if let Ok(root) = self.open_root() {
            self.walk(&root, "", 0, &mut found);
        }
        found
    }

    fn walk(&self, dir: &OwnedFd, prefix: &str, depth: usize, found: &mut Vec<(String, Seen)>) {
        let Ok(entries) = rustix::fs::Dir::read_from(dir) else { return };
        for entry in entries.flatten() {
            if found.len() > MAX_OUTBOX_FILES {
                return;
            }
            let Ok(name) = entry.file_name().to_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            let Ok(st) = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else { continue };
            let relative = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile if st.st_uid == self.owner => found.push((relative, seen(&st))),
                FileType::Directory if depth + 1 < MAX_OUTBOX_DEPTH => {
                    if let Ok(sub) = openat(dir, name, DIR_FLAGS, Mode::empty()) {
                        self.walk(&sub, &relative, depth + 1, found);
                    }
                }
                _ => {}
            }
        }
    }

    /// Opens the file at `relative` (`/`-separated, below the outbox) as [`OutboxDir::scan`] would
    /// take it: through no symbolic link, a regular file of the user's. Returns it with what it is now.
    pub fn open(&self, relative: &str) -> io::Result<(std::fs::File, Seen)> {
        let refused = |why: &str| io::Error::new(io::ErrorKind::PermissionDenied, format!("{relative}: {why}"));
        let mut parts: Vec<&str> = relative.split('/').collect();
        let name = parts.pop().filter(|n| !n.is_empty()).ok_or_else(|| refused("no file name"))?;
        let mut dir = self.open_root()?;
        for part in parts {
            if part.is_empty() || part == "." || part == ".." {
                return Err(refused("not a plain path"));
            }
            dir = openat(&dir, part, DIR_FLAGS, Mode::empty())?;
        }
        // Non-blocking: a FIFO put there opens at once (and is refused below) instead of hanging.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = openat(&dir, name, flags, Mode::empty())?;
        let st = fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(refused("not a regular file"));
        }
        if st.st_uid != self.owner {
            return Err(refused("not the session user's file"));
        }
        rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
        Ok((std::fs::File::from(fd), seen(&st)))
    }
}

fn seen(st: &Stat) -> Seen {
    Seen {
        size: u64::try_from(st.st_size).unwrap_or(0),
        modified_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox() -> (tempfile::TempDir, OutboxDir) {
        let work = tempfile::tempdir().unwrap();
        let dir = OutboxDir::prepare(work.path(), None).unwrap();
        (work, dir)
    }

    #[test]
    fn files_below_are_found_and_links_are_not_followed() {
        let (work, dir) = outbox();
        std::fs::write(dir.path().join("a.txt"), b"hello").unwrap();
        std::fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
        std::fs::write(dir.path().join("sub/deeper/b.bin"), vec![7u8; 1000]).unwrap();
        let secret = work.path().join("secret.txt");
        std::fs::write(&secret, b"not for upload").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("link.txt")).unwrap();
        std::os::unix::fs::symlink(work.path(), dir.path().join("linked-dir")).unwrap();
        let mut found = dir.scan();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<(&str, u64)> = found.iter().map(|(n, s)| (n.as_str(), s.size)).collect();
        assert_eq!(names, vec![("a.txt", 5), ("sub/deeper/b.bin", 1000)]);
        let (_, seen) = dir.open("sub/deeper/b.bin").unwrap();
        assert_eq!(seen.size, 1000);
        for bad in ["link.txt", "linked-dir/secret.txt", "../secret.txt", "sub/../a.txt", "sub", ""] {
            assert!(dir.open(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_outbox_replaced_by_a_link_is_not_read() {
        let (work, dir) = outbox();
        std::fs::remove_dir(dir.path()).unwrap();
        let elsewhere = work.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("x"), b"x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path()).unwrap();
        assert!(dir.scan().is_empty());
        assert!(dir.open("x").is_err());
        assert!(OutboxDir::prepare(work.path(), None).is_err(), "a link where the outbox goes is refused");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let (_work, dir) = outbox();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        assert!(dir.scan().is_empty());
        assert!(dir.open("fifo").is_err());
    }
}
