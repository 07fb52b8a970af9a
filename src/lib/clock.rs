//! Time and guids: the host's only inputs to a pool that a test cannot otherwise choose.
//!
//! Invariants:
//! - Library code reads the time of day and draws guids only through a `Clock`: the pool
//!   holds one (`Pool::open_with_clock`, `format_pool_with_clock`; `Pool::open` and
//!   `format_pool` take the system's) and the commands ask the pool's
//!   (`Pool::clock`). tests/layering.rs fails if any other file of src/lib calls
//!   `SystemTime::now` or reads the kernel's random source.
//! - `SystemClock` is what the binaries use, always: there is no switch in the product.
//! - `SimClock` (feature `testing` only) is fully determined by its seed and by what the
//!   test does to it: the same seed and the same calls give the same times and guids, so a
//!   pool built on it is the same bytes on every run, and retention can be tested at
//!   chosen times rather than by sleeping.
//!
//! Time and guids share one trait because every caller that needs to replay one needs to
//! replay the other (a format takes both, a snapshot takes both), and one handle is
//! simpler to pass than two. Monotonic time for progress reports (`Instant`) is not here:
//! it never reaches the device.
//!
//! A leaf below `error`, so that every layer formats a guid with the same `guid_hex`.

use std::sync::Arc;

/// Where a pool's times (commit, snapshot, inode, creation) and new guids come from.
pub trait Clock: Send + Sync {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    fn now_ns(&self) -> u64;
    /// A guid for a new pool or snapshot: unique among every pool that may ever meet it.
    fn guid(&self) -> [u8; 16];
}

/// The host's clock and its kernel's random source.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        // Before 1970 (a clock set wrong) reads as 0; commit times stay monotonic anyway.
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    }

    fn guid(&self) -> [u8; 16] {
        let mut guid = [0u8; 16];
        if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
            use std::io::Read;
            if f.read_exact(&mut guid).is_ok() {
                return guid;
            }
        }
        // No /dev/urandom: time and pid still make a collision unlikely on one machine.
        let seed = self.now_ns() ^ ((std::process::id() as u64) << 32);
        guid[..8].copy_from_slice(&seed.to_le_bytes());
        guid[8..].copy_from_slice(&blake3::hash(&seed.to_le_bytes()).as_bytes()[..8]);
        guid
    }
}

/// The system clock, as the handle a pool keeps.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A guid as 32 lowercase hex digits, as listings, dumps and messages show it.
pub fn guid_hex(guid: &[u8; 16]) -> String {
    guid.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(any(test, feature = "testing"))]
pub use sim::{SIM_START_NS, SimClock};

#[cfg(any(test, feature = "testing"))]
mod sim {
    use super::Clock;
    use std::sync::Mutex;

    /// Where a simulated clock starts: 2026-01-01T00:00:00Z, a plausible time of day, so
    /// that what a test prints reads like a real listing.
    pub const SIM_START_NS: u64 = 1_767_225_600 * 1_000_000_000;

    /// A clock that moves only when told, and guids from a seeded generator (splitmix64).
    /// Shared between the pool and the test (through an `Arc`): the test sets or advances
    /// the time between the pool's calls.
    #[derive(Debug)]
    pub struct SimClock {
        state: Mutex<State>,
    }

    #[derive(Debug)]
    struct State {
        now_ns: u64,
        /// Added after each reading: 0 holds time still until the test moves it.
        tick_ns: u64,
        rng: u64,
    }

    impl SimClock {
        /// Time stands at `SIM_START_NS`; guids follow from `seed`.
        pub fn new(seed: u64) -> SimClock {
            SimClock { state: Mutex::new(State { now_ns: SIM_START_NS, tick_ns: 0, rng: seed }) }
        }

        /// Every reading advances the time by `tick_ns` after it is taken, as a real clock
        /// moves between two calls: successive commits get distinct times.
        pub fn ticking(seed: u64, tick_ns: u64) -> SimClock {
            let clock = SimClock::new(seed);
            clock.state().tick_ns = tick_ns;
            clock
        }

        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            // A test that panicked while holding it left plain numbers: still usable.
            self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        /// Sets the time, also backwards (a host clock stepped back by NTP or by hand).
        pub fn set_ns(&self, now_ns: u64) {
            self.state().now_ns = now_ns;
        }

        pub fn advance_ns(&self, ns: u64) {
            let mut state = self.state();
            state.now_ns = state.now_ns.saturating_add(ns);
        }

        pub fn advance_seconds(&self, seconds: u64) {
            self.advance_ns(seconds.saturating_mul(1_000_000_000));
        }

        /// The time the next reading returns, without taking a reading.
        pub fn peek_ns(&self) -> u64 {
            self.state().now_ns
        }

        /// The next number of the seeded sequence (splitmix64: every seed gives a full-period
        /// sequence whose outputs are well mixed, so consecutive guids share no bits by
        /// construction).
        fn next_u64(state: &mut State) -> u64 {
            state.rng = state.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    impl Clock for SimClock {
        fn now_ns(&self) -> u64 {
            let mut state = self.state();
            let now = state.now_ns;
            state.now_ns = now.saturating_add(state.tick_ns);
            now
        }

        fn guid(&self) -> [u8; 16] {
            let mut state = self.state();
            let mut guid = [0u8; 16];
            guid[..8].copy_from_slice(&Self::next_u64(&mut state).to_le_bytes());
            guid[8..].copy_from_slice(&Self::next_u64(&mut state).to_le_bytes());
            guid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the system clock reads the time of day and draws distinct guids.
    /// Method: compare with the std clock around the call; draw guids and look for repeats.
    #[test]
    fn the_system_clock_reads_the_host() {
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let read = SystemClock.now_ns();
        let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        assert!(before <= read && read <= after, "{before} <= {read} <= {after}");
        let guids: std::collections::BTreeSet<_> = (0..64).map(|_| SystemClock.guid()).collect();
        assert_eq!(guids.len(), 64);
        assert!(!guids.contains(&[0u8; 16]));
    }

    /// Goal: a simulated clock is a function of its seed and of the test's calls.
    /// Method: two clocks of one seed give the same guids and times through the same
    /// calls; another seed gives other guids; time moves only as told (and by the tick).
    #[test]
    fn a_simulated_clock_replays_from_its_seed() {
        let run = |seed: u64| {
            let clock = SimClock::ticking(seed, 7);
            let mut seen = Vec::new();
            for step in 0..20u64 {
                seen.push((clock.now_ns(), clock.guid()));
                clock.advance_seconds(step % 3);
            }
            seen
        };
        assert_eq!(run(5), run(5));
        let (a, b) = (run(5), run(6));
        assert!(a.iter().zip(&b).all(|(x, y)| x.0 == y.0 && x.1 != y.1), "the seed picks the guids, not the times");
        let guids: std::collections::BTreeSet<_> = a.iter().map(|(_, g)| *g).collect();
        assert_eq!(guids.len(), a.len(), "no guid repeats");

        let still = SimClock::new(1);
        assert_eq!((still.now_ns(), still.now_ns()), (sim::SIM_START_NS, sim::SIM_START_NS));
        still.advance_seconds(90);
        assert_eq!(still.now_ns(), sim::SIM_START_NS + 90_000_000_000);
        still.set_ns(5);
        assert_eq!((still.peek_ns(), still.now_ns()), (5, 5), "set moves it backwards too");
        let ticking = SimClock::ticking(1, 1_000);
        assert_eq!([ticking.now_ns(), ticking.now_ns()], [sim::SIM_START_NS, sim::SIM_START_NS + 1_000]);
    }

    #[test]
    fn guids_print_as_32_hex_digits() {
        let mut guid = [0u8; 16];
        guid[0] = 0xab;
        guid[15] = 0x01;
        assert_eq!(guid_hex(&guid), "ab000000000000000000000000000001");
    }
}
