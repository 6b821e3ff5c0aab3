//! The simulator's state file (`sim.state_file`): what it must remember across a restart for
//! the Items plaidhook holds to keep working, written atomically (temp file, fsync, rename)
//! shortly after each change and once more at shutdown.
//!
//! Kept: every Item (ids, access token, webhook URL, error, removal, readiness, consent
//! expiry) with its data as a recipe (seeds, size, first bank date, the changes applied since;
//! see `data`), unexpired public and Link tokens, and the signing keys with their private
//! halves. Not kept: settings (they come from the configuration at every start, including
//! the seed), run-time changes made through `POST /sim/config`, queued faults, rate-limit
//! windows, the delivery log and webhooks waiting for redelivery.
//!
//! One simulator per file: a lock file beside it (`<file>.lock`, holding the owner's process id)
//! refuses a second simulator on the same file, whether in another process (while that process
//! lives: a lock left by a killed one is taken over) or in this one.

use super::keys::KeyRing;
use super::state::{ItemRecord, LinkTokenRecord, PublicTokenRecord, SimState};
use super::Sim;
use anyhow::Context as _;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Format of the file; a file of another format is refused, never guessed at.
const FORMAT: u32 = 1;

/// Changes within this long of each other are written once.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Where the simulator keeps its state, and whether to start over.
#[derive(Debug, Clone)]
pub struct Persistence {
    pub path: PathBuf,
    /// Ignore what the file holds and start with no Items (the file is overwritten).
    pub fresh: bool,
}

/// An open state file: its path, the lock that makes it this simulator's, and what was last
/// written (a state that did not change is not written again).
pub(crate) struct StateFile {
    path: PathBuf,
    _lock: Lock,
    last: tokio::sync::Mutex<Vec<u8>>,
}

/// State files held by simulators of this process.
static HELD: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// `<file>.lock` with this process's id, released (and removed) on drop.
struct Lock {
    path: PathBuf,
    file: PathBuf,
}

impl Lock {
    /// `Err(owner)` when a live simulator holds `file` (`None`: one of this process).
    fn take(file: &Path) -> anyhow::Result<Result<Self, Option<u32>>> {
        let file = std::path::absolute(file)?;
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        if held.contains(&file) {
            return Ok(Err(None));
        }
        let path = sibling(&file, ".lock");
        let owner = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        if let Some(pid) = owner.filter(|&pid| pid != std::process::id() && alive(pid)) {
            return Ok(Err(Some(pid)));
        }
        std::fs::write(&path, std::process::id().to_string())
            .with_context(|| format!("writing the lock file {}", path.display()))?;
        held.push(file.clone());
        Ok(Ok(Self { path, file }))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|f| f != &self.file);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether process `pid` runs. Where that cannot be told (no `/proc`), a lock is taken over.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[derive(Serialize)]
struct Out<'a> {
    format: u32,
    about: &'static str,
    items: Vec<&'a ItemRecord>,
    public_tokens: BTreeMap<&'a String, &'a PublicTokenRecord>,
    link_tokens: BTreeMap<&'a String, &'a LinkTokenRecord>,
    keys: &'a KeyRing,
}

#[derive(Deserialize)]
struct In {
    format: u32,
    items: Vec<ItemRecord>,
    public_tokens: HashMap<String, PublicTokenRecord>,
    link_tokens: HashMap<String, LinkTokenRecord>,
    keys: KeyRing,
}

impl StateFile {
    /// Lock the file for this simulator. Fails when another simulator holds it.
    pub(crate) fn lock(persistence: &Persistence) -> anyhow::Result<Self> {
        let path = persistence.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the directory of {}", path.display()))?;
        }
        let lock = match Lock::take(&path)? {
            Ok(lock) => lock,
            Err(owner) => anyhow::bail!(
                "the simulator's state file {} is in use by another simulator ({}); use that \
                 one (sim.embedded = false), or give this one its own file with sim.state_file \
                 (PLAIDHOOK__SIM__STATE_FILE)",
                path.display(),
                match owner {
                    Some(pid) => format!(
                        "process {pid}, another plaidhook all or sim? if it is not a simulator, \
                         delete {}.lock",
                        path.display()
                    ),
                    None => "in this process".to_owned(),
                }
            ),
        };
        Ok(Self {
            path,
            _lock: lock,
            last: tokio::sync::Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Restore what the file holds into `state`; `false` when there is no file yet.
    pub(crate) fn load_into(&self, state: &mut SimState) -> anyhow::Result<bool> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).context(self.unreadable()),
        };
        let stored: In = serde_json::from_slice(&bytes).with_context(|| self.unreadable())?;
        anyhow::ensure!(
            stored.format == FORMAT,
            "{}: format {} (this plaidhook reads format {FORMAT})",
            self.unreadable(),
            stored.format
        );
        for item in stored.items {
            state.order.push(item.item_id.clone());
            state
                .by_token
                .insert(item.access_token.clone(), item.item_id.clone());
            state.items.insert(item.item_id.clone(), item);
        }
        state.public_tokens = stored.public_tokens;
        state.link_tokens = stored.link_tokens;
        state.keys = stored.keys;
        Ok(true)
    }

    fn unreadable(&self) -> String {
        format!(
            "the simulator's state file {} could not be read; start over with `plaidhook sim \
             --fresh` (or PLAIDHOOK__SIM__FRESH=true), or point sim.state_file elsewhere",
            self.path.display()
        )
    }

    /// Write `bytes` as the new state: a temp file beside it, flushed, renamed over it.
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let temp = sibling(&self.path, ".tmp");
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, &self.path)?;
        // Make the rename itself durable; not every platform can open a directory.
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The state as the file holds it.
fn serialize(state: &SimState) -> Vec<u8> {
    let now = Utc::now();
    let out = Out {
        format: FORMAT,
        about: "plaidhook Plaid simulator state; delete it or run `plaidhook sim --fresh` to start over",
        items: state
            .order
            .iter()
            .filter_map(|id| state.items.get(id))
            .collect(),
        public_tokens: state
            .public_tokens
            .iter()
            .filter(|(_, t)| !t.used && t.expires_at > now)
            .collect(),
        link_tokens: state
            .link_tokens
            .iter()
            .filter(|(_, t)| t.expires_at + super::state::LINK_TOKEN_KEPT_AFTER_EXPIRY > now)
            .collect(),
        keys: &state.keys,
    };
    serde_json::to_vec_pretty(&out).expect("the simulator's state serialises")
}

impl StateFile {
    /// Write the state if it changed since the last write. A failure is logged (the simulator
    /// keeps serving) and retried at the next change.
    pub(crate) async fn save(self: &Arc<Self>, sim: &Sim) {
        let mut last = self.last.lock().await;
        let bytes = serialize(&sim.lock());
        if bytes == *last {
            return;
        }
        let file = self.clone();
        let written = tokio::task::spawn_blocking(move || file.write(&bytes).map(|()| bytes)).await;
        match written {
            Ok(Ok(bytes)) => *last = bytes,
            Ok(Err(error)) => {
                tracing::error!(%error, path = %self.path.display(), "could not write the simulator's state file");
            }
            Err(error) => tracing::error!(%error, "the simulator's state writer failed"),
        }
    }
}

/// Write the state shortly after each change until cancelled (the final write is the
/// shutdown's, after the last request has finished).
pub(crate) async fn run_writer(sim: Sim, file: Arc<StateFile>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = sim.inner.changed.notified() => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(DEBOUNCE) => {}
        }
        file.save(&sim).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_of_a_live_process_refuses_and_one_of_a_dead_process_is_taken_over() {
        let dir = std::env::temp_dir().join(format!("plaidhook-lock-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("state.json");
        let lock_file = sibling(&file, ".lock");
        // Process 1 always runs on Linux; a pid past the kernel's maximum never does.
        if alive(1) {
            std::fs::write(&lock_file, "1").unwrap();
            assert!(matches!(Lock::take(&file).unwrap(), Err(Some(1))));
        }
        std::fs::write(&lock_file, "4294967295").unwrap();
        let lock = Lock::take(&file)
            .unwrap()
            .expect("a dead owner's lock is taken over");
        assert!(matches!(Lock::take(&file).unwrap(), Err(None)));
        drop(lock);
        assert!(!lock_file.exists());
        assert!(Lock::take(&file).unwrap().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
