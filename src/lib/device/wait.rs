//! How long a process waits for another: a writer for a writer (lock.rs), a commit for
//! readers opening the pool (pins.rs).

use crate::error::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a writer waits for another writer, or for readers opening the pool.
#[derive(Clone)]
pub struct WaitPolicy {
    pub limit: WaitLimit,
    /// Told whom the process waits for, once, after a second of waiting.
    pub announce: Arc<dyn Fn(&str) + Send + Sync>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitLimit {
    /// Until the other process is done (the default).
    Forever,
    /// At most this long (`--wait SECONDS`).
    For(Duration),
    /// Not at all (`--nowait`): refused at once, as before.
    No,
}

/// After this long a waiting process says whom it waits for.
pub(super) const ANNOUNCE_AFTER: Duration = Duration::from_secs(1);
pub(super) const POLL: Duration = Duration::from_millis(20);

impl WaitPolicy {
    /// No wait, no word: tests and library callers that want the old refusal.
    pub fn nowait() -> WaitPolicy {
        WaitPolicy { limit: WaitLimit::No, announce: Arc::new(|_| {}) }
    }

    /// Calls `attempt` until it gives Ok(Some), waiting as the policy allows. `holder`
    /// names whom a failed attempt waits for; None back means the wait ran out.
    pub fn wait_for<T>(
        &self,
        mut attempt: impl FnMut() -> Result<Option<T>>,
        mut holder: impl FnMut() -> String,
    ) -> Result<Option<T>> {
        let start = Instant::now();
        let mut announced = false;
        loop {
            if let Some(done) = attempt()? {
                return Ok(Some(done));
            }
            let waited = start.elapsed();
            match self.limit {
                WaitLimit::No => return Ok(None),
                WaitLimit::For(limit) if waited >= limit => return Ok(None),
                _ => {}
            }
            if !announced && waited >= ANNOUNCE_AFTER {
                (self.announce)(&holder());
                announced = true;
            }
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_wait_gives_up_after_its_limit_and_says_for_whom_once() {
        let said = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = said.clone();
        let policy = WaitPolicy {
            limit: WaitLimit::For(Duration::from_millis(1300)),
            announce: Arc::new(move |whom| log.lock().unwrap().push(whom.to_string())),
        };
        let started = Instant::now();
        let got: Option<()> = policy.wait_for(|| Ok(None), || "pid 1 (writing)".into()).unwrap();
        assert!(got.is_none());
        assert!(started.elapsed() >= Duration::from_millis(1300));
        assert_eq!(*said.lock().unwrap(), ["pid 1 (writing)"]);
        let mut tries = 0;
        let got = WaitPolicy::nowait()
            .wait_for(
                || {
                    tries += 1;
                    Ok(Some(tries))
                },
                String::new,
            )
            .unwrap();
        assert_eq!(got, Some(1));
    }
}
