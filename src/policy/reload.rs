//! Reloadable policies: an `ArcSwap` of the current set, replaced only by a set that loads.
//!
//! Requests take the current set with one atomic load ([`PolicyHandle::current`]) and keep
//! it for the whole response, so a reload never changes the policy halfway through one. A
//! file that fails to load is refused with a logged error and the old set stays in force
//! (issue 3 point 4): an operator's typo must not take caching down.

use super::{PolicyError, PolicySet};
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The current policy set and where it came from.
#[derive(Debug)]
pub struct PolicyHandle {
    /// `None` for a set built in memory (e.g. the defaults embedded in the binary).
    path: Option<PathBuf>,
    current: ArcSwap<PolicySet>,
}

impl PolicyHandle {
    /// Loads `path` (a file or a directory, see [`PolicySet::load`]). Blocking file IO.
    pub fn load(path: &Path) -> Result<PolicyHandle, PolicyError> {
        let set = PolicySet::load(path)?;
        Ok(PolicyHandle {
            path: Some(path.to_owned()),
            current: ArcSwap::from_pointee(set),
        })
    }

    /// Wraps a set built in memory (such as the embedded defaults); [`reload`](Self::reload)
    /// then has no files to read and keeps it.
    pub fn from_set(set: PolicySet) -> PolicyHandle {
        PolicyHandle {
            path: None,
            current: ArcSwap::from_pointee(set),
        }
    }

    /// The set in force; cheap, and stable for as long as the caller holds it.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// Loads the files again. On success the new set replaces the old one; on failure the
    /// error is logged and returned and the old set stays. Blocking file IO: from async code
    /// call it through `spawn_blocking`.
    /// A handle built with [`from_set`](Self::from_set) has no files: it logs that and keeps
    /// its set.
    pub fn reload(&self) -> Result<(), PolicyError> {
        let Some(path) = &self.path else {
            tracing::info!("policies are built in, not loaded from files: nothing to reload");
            return Ok(());
        };
        match PolicySet::load(path) {
            Ok(set) => {
                let rules = set.rule_count();
                let files = set.sources().len();
                self.current.store(Arc::new(set));
                tracing::info!(path = %path.display(), files, rules, "policies reloaded");
                Ok(())
            }
            Err(error) => {
                tracing::error!(
                    path = %path.display(),
                    error = %error,
                    "policy reload refused; the previous policies stay in force"
                );
                Err(error)
            }
        }
    }

    /// The file or directory this handle loads, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// Reloads `handle` on every SIGHUP until the process ends, logging each outcome. The signal
/// handler is installed before this returns, so a SIGHUP sent afterwards is never lost (nor
/// does it kill the process). Must be called inside a Tokio runtime.
pub fn spawn_reload_on_sighup(handle: Arc<PolicyHandle>) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let hangups = signal(SignalKind::hangup());
    tokio::spawn(async move {
        let mut hangups = match hangups {
            Ok(stream) => stream,
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGHUP; policy reload by signal is off");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading policies");
            let h = Arc::clone(&handle);
            // reload() logs its own outcome; a panic in the blocking task is logged here.
            if let Err(error) = tokio::task::spawn_blocking(move || h.reload()).await {
                tracing::error!(error = %error, "policy reload task failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const GOOD: &str = "[default]\nmax-age = 60\n[errors]\nmax-age = 10\n";
    const BETTER: &str = "[default]\nmax-age = 120\n[errors]\nmax-age = 10\n";
    const BAD: &str = "[default]\nmax-age = \"soon\"\n[errors]\n";

    fn cache_control(handle: &PolicyHandle) -> String {
        let set = handle.current();
        let value = set.default_policy().cache_control.clone();
        value
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn reload_swaps_in_a_good_set_and_keeps_the_old_one_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, GOOD).unwrap();
        let handle = PolicyHandle::load(dir.path()).unwrap();
        assert_eq!(cache_control(&handle), "max-age=60");
        let held = handle.current();

        std::fs::write(&file, BAD).unwrap();
        let err = handle.reload().unwrap_err();
        assert!(
            err.to_string().contains("p.toml:2:11: field `max-age`"),
            "{err}"
        );
        assert_eq!(cache_control(&handle), "max-age=60");

        std::fs::write(&file, BETTER).unwrap();
        handle.reload().unwrap();
        assert_eq!(cache_control(&handle), "max-age=120");
        // a set already taken by a request is unchanged by the reload
        assert_eq!(
            held.default_policy().cache_control.as_ref().unwrap(),
            "max-age=60"
        );
    }

    #[test]
    fn a_handle_built_in_memory_keeps_its_set_on_reload() {
        let handle = PolicyHandle::from_set(PolicySet::from_str(GOOD, "embedded").unwrap());
        assert_eq!(handle.path(), None);
        handle.reload().unwrap();
        assert_eq!(cache_control(&handle), "max-age=60");
    }

    #[tokio::test]
    async fn sighup_reloads_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, GOOD).unwrap();
        let handle = Arc::new(PolicyHandle::load(&file).unwrap());
        let task = spawn_reload_on_sighup(Arc::clone(&handle));
        std::fs::write(&file, BETTER).unwrap();
        // The shell's builtin kill, aimed at its parent (this test process): no extra binary
        // or crate needed.
        let status = tokio::process::Command::new("sh")
            .args(["-c", "kill -HUP $PPID"])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while cache_control(&handle) != "max-age=120" {
            assert!(
                tokio::time::Instant::now() < deadline,
                "SIGHUP did not reload"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
    }
}
