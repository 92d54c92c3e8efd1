//! A dump into a file: dump level fallback (the next level of `-d A,B,..` when the dump
//! did not fit) and `--atomic` staging (the dump is `DUMPFILE.incomplete` until it is
//! complete, then renamed).

use std::path::{Path, PathBuf};

use super::Dumped;
use crate::error::{Error, ErrorKind, Result};
use crate::filter::DumpLevel;
use crate::target::{self, FileSink, Sink};

/// Where and how a dump file is written.
pub struct FileTarget<'a> {
    /// The dump file's name.
    pub path: &'a Path,
    /// `--atomic`: stage the dump under `path.incomplete`.
    pub atomic: bool,
    /// `-f`: an existing file may be replaced.
    pub force: bool,
    /// `--size-limit`: the most bytes the file may take.
    pub size_limit: Option<u64>,
}

/// Writes the dump with `write` at the first of `levels` whose dump fits (a full disk or
/// the size limit moves on to the next level, with a fresh file). Returns the dump and
/// where it is: its final name, or the staged one when it is incomplete. A failure
/// before any page removes the file.
pub fn write_with_fallback(
    to: &FileTarget<'_>,
    levels: &[DumpLevel],
    mut write: impl FnMut(DumpLevel, &mut dyn Sink) -> Result<Dumped>,
) -> Result<(Dumped, PathBuf)> {
    let path = to.path;
    let staged = to.atomic.then(|| {
        let mut name = path.as_os_str().to_owned();
        name.push(".incomplete");
        PathBuf::from(name)
    });
    if staged.is_some() && !to.force && path.symlink_metadata().is_ok() {
        return Err(Error::new(
            ErrorKind::Exists,
            format!("{} already exists (use -f to overwrite it)", path.display()),
        ));
    }
    let file_path = staged.as_deref().unwrap_or(path);
    let mut file = target::create_output(file_path, to.force)?;
    for (i, &level) in levels.iter().enumerate() {
        let mut sink = FileSink::new(file, file_path).with_limit(to.size_limit);
        let result = write(level, &mut sink);
        drop(sink);
        let failure = match &result {
            Ok(done) => done.failure.as_ref(),
            Err(e) => Some(e),
        };
        if let (Some(e), Some(next)) = (failure, levels.get(i + 1))
            && e.kind() == ErrorKind::NoSpace
        {
            crate::common!(
                "The dump at level {level} did not fit ({e}); trying dump level {next}."
            );
            let _ = std::fs::remove_file(file_path);
            file = target::create_output(file_path, false)?;
            continue;
        }
        return match result {
            Ok(done) if done.failure.is_none() && staged.is_some() => {
                target::publish(file_path, path, to.force)?;
                Ok((done, path.to_path_buf()))
            }
            Ok(done) => Ok((done, file_path.to_path_buf())),
            Err(e) => {
                // Failed before any page: nothing in the file is worth keeping.
                let _ = std::fs::remove_file(file_path);
                Err(e.context(format!("writing {}", file_path.display())))
            }
        };
    }
    Err(Error::usage("no dump level to try"))
}
