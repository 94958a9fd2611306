//! Which program a request path names, found by the one resolver
//! ([`Root::locate`]) and remembered: a program asked for again is confirmed by a
//! single `fstatat` of its path (the very file, unchanged, as the static handler's
//! hot cache confirms files) instead of being resolved again.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use http::StatusCode;

use crate::fs::{FileState, Located, Root};
use crate::http::path::SitePath;

/// Paths remembered at most; the memory is emptied when it is full.
const MAX_KNOWN: usize = 4096;

/// The program a request path names, split as the meta-variables need it.
#[derive(Debug)]
pub struct Found {
    /// The program's file, resolved.
    pub filename: PathBuf,
    /// Its file name, for the `nph-` prefix and interpreters.
    pub file_name: Vec<u8>,
    /// `SCRIPT_NAME`.
    pub script_name: String,
    /// `PATH_INFO`.
    pub path_info: Vec<u8>,
    /// Whether any execute bit is set.
    pub executable: bool,
    /// How many segments of the request path name the program.
    pub depth: usize,
}

/// Request paths and the programs they named.
#[derive(Debug, Default)]
pub struct KnownPrograms {
    paths: Mutex<HashMap<SitePath, Known>>,
}

#[derive(Debug)]
struct Known {
    /// The program's path relative to the root.
    rel: CString,
    /// The state of the file it was.
    state: FileState,
    found: Arc<Found>,
}

impl KnownPrograms {
    /// The program `path` names under `root`: 404 when nothing does, 403 for a
    /// folder. Unless `hidden`, no dotfile or dot-folder leads to the program;
    /// its `PATH_INFO` names no file and may hold any (`/app.cgi/.well-known/x`).
    pub fn find(
        &self,
        root: &Root,
        path: &SitePath,
        hidden: bool,
    ) -> Result<Arc<Found>, StatusCode> {
        let found = self.find_any(root, path).map_err(|status| {
            // A hidden folder is not there, nor is a path with no program before one.
            if !hidden && path.is_hidden() {
                StatusCode::NOT_FOUND
            } else {
                status
            }
        })?;
        let segments = path.segments();
        let script = &segments[..found.depth.min(segments.len())];
        if !hidden && SitePath::from_segments(script.to_vec()).is_hidden() {
            return Err(StatusCode::NOT_FOUND);
        }
        Ok(found)
    }

    /// [`KnownPrograms::find`], hidden names or not.
    fn find_any(&self, root: &Root, path: &SitePath) -> Result<Arc<Found>, StatusCode> {
        let known = self
            .lock()
            .get(path)
            .map(|k| (k.rel.clone(), k.state, Arc::clone(&k.found)));
        if let Some((rel, state, found)) = known {
            if root.state_of(&rel) == Some(state) {
                return Ok(found);
            }
        }
        // A few system calls on a path just asked for (a program is about to be
        // started, which costs far more): done here, not on the blocking pool.
        let program = match root.locate(path) {
            Ok(Located::Program(program)) => program,
            Ok(Located::Folder) => return Err(StatusCode::FORBIDDEN),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(StatusCode::FORBIDDEN)
            }
            Err(_) => return Err(StatusCode::NOT_FOUND),
        };
        let segments = path.segments();
        let (script, rest) = segments.split_at(program.depth.min(segments.len()));
        // `/app.cgi/` gives `PATH_INFO=/` (RFC 3875 §4.1.5), as `/app.cgi/a/` keeps
        // its last `/`.
        let mut path_info = join(rest);
        if path.has_trailing_slash() {
            path_info.push(b'/');
        }
        let found = Arc::new(Found {
            filename: program.real_path,
            file_name: script.last().cloned().unwrap_or_default(),
            script_name: String::from_utf8_lossy(&join(script)).into_owned(),
            path_info,
            executable: program.file.meta.permissions().mode() & 0o111 != 0,
            depth: script.len(),
        });
        let rel = SitePath::from_segments(script.to_vec()).relative_fs_path();
        if let Ok(rel) = CString::new(rel.as_os_str().as_bytes()) {
            let mut paths = self.lock();
            if paths.len() >= MAX_KNOWN {
                paths.clear();
            }
            paths.insert(
                path.clone(),
                Known {
                    rel,
                    state: FileState::of(&program.file.meta),
                    found: Arc::clone(&found),
                },
            );
        }
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SitePath, Known>> {
        self.paths.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `/a/b` from `["a", "b"]`.
fn join(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    out
}
