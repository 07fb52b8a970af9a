//! One flip, one judgement: what a damaged image must and must not do.

use super::pool::{Built, Contents, open, read_each, read_view};
use crate::rng::Rng;
use snapfs::block::{BLOCK_BYTES, BlockAddr, BlockPtr};
use snapfs::check::{check_pool, check_pool_with_inventory};
use snapfs::device::OpenMode;
use snapfs::format::label::{RING_SLOTS, region_start};
use snapfs::pool::{LIVE_TREE_ID, Pool};
use snapfs::scrub::{ScrubOptions, ScrubReport, scrub_pool};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What the trials found; every count is of flips (or label and ring trials).
#[derive(Debug, Default)]
pub struct Tally {
    pub metadata_flips: u64,
    /// Every file of every view read the right bytes.
    pub metadata_survived: u64,
    pub metadata_check_detected: u64,
    pub metadata_scrub_detected: u64,
    /// Scrub restored the image byte for byte.
    pub metadata_repaired: u64,
    pub data_flips: u64,
    /// Every file holding the block failed to read (blocks only retained history holds
    /// have no such file; they count in `data_history_only`).
    pub data_reads_failed: u64,
    pub data_history_only: u64,
    pub data_check_detected: u64,
    /// Scrub named the block as lost, with every file of a view that held it.
    pub data_scrub_detected: u64,
    pub label_ring_trials: u64,
    pub label_ring_recovered: u64,
    pub wrong_bytes: u64,
    pub panics: u64,
    pub failures: Vec<String>,
}

impl Tally {
    /// The summary the README quotes, then each failure with what reproduces it.
    pub fn print(&self, seconds: f64) {
        println!(
            "metadata: {} copies flipped; reads right {}, check reported {}, scrub reported {}, scrub restored {}",
            self.metadata_flips,
            self.metadata_survived,
            self.metadata_check_detected,
            self.metadata_scrub_detected,
            self.metadata_repaired
        );
        println!(
            "file data: {} blocks flipped; the files holding them failed to read {} (+{} held by history only), check reported {}, scrub named {}",
            self.data_flips,
            self.data_reads_failed,
            self.data_history_only,
            self.data_check_detected,
            self.data_scrub_detected
        );
        println!(
            "labels and commit rings: {} damaged, {} opened from the other copy or the previous commit",
            self.label_ring_trials, self.label_ring_recovered
        );
        for failure in &self.failures {
            println!("FAILURE: {failure}");
        }
        println!(
            "snaptorture corrupt: {} flips and {} label/ring trials in {seconds:.1} s: {} wrong bytes returned, {} panics, {} failures",
            self.flips(),
            self.label_ring_trials,
            self.wrong_bytes,
            self.panics,
            self.failures.len()
        );
    }

    pub fn flips(&self) -> u64 {
        self.metadata_flips + self.data_flips
    }

    fn fail(&mut self, what: String) {
        if self.failures.len() < 100 {
            self.failures.push(what);
        }
    }
}

/// Flips one bit of every copy of every metadata block, then of up to `data_max` data
/// blocks, each alone.
pub fn metadata_and_data(built: &Built, seed: u64, data_max: usize, rng: &mut Rng, tally: &mut Tally) {
    let mut pool = open(&built.image, OpenMode::Read).expect("the undamaged pool opens");
    let (report, mut inventory) = check_pool_with_inventory(&mut pool).expect("check the undamaged pool");
    assert!(report.is_clean(), "the undamaged pool is clean: {:?}", report.problems);
    inventory.sort_by_key(|p| p.addr.0);
    let (metadata, mut data): (Vec<BlockPtr>, Vec<BlockPtr>) =
        inventory.into_iter().partition(|p| p.kind.is_metadata());
    rng.shuffle(&mut data);
    data.truncate(data_max);
    for ptr in &metadata {
        for (index, addr) in ptr.copies().enumerate() {
            let bit = rng.below(u64::from(ptr.stored_bytes) * 8);
            let place = format!(
                "seed {seed}: bit {bit} of copy {} (block {}) of {} block {}",
                index + 1,
                addr.0,
                ptr.kind.name(),
                ptr.addr.0
            );
            let image = flipped(&built.image, addr, bit);
            tally.metadata_flips += 1;
            guarded(tally, &place, |tally| judge_metadata(built, &image, ptr, index, tally));
        }
    }
    for ptr in &data {
        let bit = rng.below(u64::from(ptr.stored_bytes) * 8);
        let place = format!("seed {seed}: bit {bit} of {} block {}", ptr.kind.name(), ptr.addr.0);
        let image = flipped(&built.image, ptr.addr, bit);
        tally.data_flips += 1;
        guarded(tally, &place, |tally| judge_data(built, &image, ptr, tally));
    }
}

fn flipped(image: &[u8], addr: BlockAddr, bit: u64) -> Vec<u8> {
    let mut image = image.to_vec();
    image[(addr.0 * BLOCK_BYTES + bit / 8) as usize] ^= 1 << (bit % 8);
    image
}

/// Runs a judgement; a panic anywhere in snapfs is a failure of its own.
fn guarded(tally: &mut Tally, place: &str, judge: impl FnOnce(&mut Tally) -> Result<(), String>) {
    match catch_unwind(AssertUnwindSafe(|| {
        let mut local = Tally::default();
        let verdict = judge(&mut local);
        (local, verdict)
    })) {
        Ok((local, verdict)) => {
            tally.add(local);
            if let Err(what) = verdict {
                tally.fail(format!("{place}: {what}"));
            }
        }
        Err(_) => {
            tally.panics += 1;
            tally.fail(format!("{place}: snapfs panicked"));
        }
    }
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.metadata_survived += other.metadata_survived;
        self.metadata_check_detected += other.metadata_check_detected;
        self.metadata_scrub_detected += other.metadata_scrub_detected;
        self.metadata_repaired += other.metadata_repaired;
        self.data_reads_failed += other.data_reads_failed;
        self.data_history_only += other.data_history_only;
        self.data_check_detected += other.data_check_detected;
        self.data_scrub_detected += other.data_scrub_detected;
        self.label_ring_recovered += other.label_ring_recovered;
        self.wrong_bytes += other.wrong_bytes;
        self.failures.extend(other.failures);
    }
}

fn views(pool: &mut Pool) -> Vec<Option<String>> {
    let mut views: Vec<Option<String>> =
        pool.snapshots_of(LIVE_TREE_ID).expect("the snapshots read").iter().map(|s| Some(s.name.clone())).collect();
    views.push(None);
    views
}

fn scrub(pool: &mut Pool, repair: bool) -> Result<ScrubReport, String> {
    scrub_pool(pool, ScrubOptions { repair }, &mut |_| {}).map_err(|e| format!("scrub failed: {e}"))
}

fn judge_metadata(built: &Built, image: &[u8], ptr: &BlockPtr, index: usize, tally: &mut Tally) -> Result<(), String> {
    let mut pool = open(image, OpenMode::Read).map_err(|e| format!("did not open: {e}"))?;
    let mut seen = Contents::new();
    for view in views(&mut pool) {
        for (key, read) in read_each(&mut pool, view.as_deref()).map_err(|e| format!("a view failed: {e}"))? {
            let bytes = read.map_err(|e| format!("{key:?} failed to read with a good copy left: {e}"))?;
            seen.insert(key, bytes);
        }
    }
    if seen != built.contents {
        tally.wrong_bytes +=
            seen.iter().filter(|(k, v)| built.contents.get(*k).is_some_and(|b| b != *v)).count() as u64;
        return Err("the views read other files or bytes than before the flip".into());
    }
    tally.metadata_survived += 1;
    if check_pool(&mut pool).map_or(true, |r| !r.is_clean()) {
        tally.metadata_check_detected += 1;
    } else {
        return Err("check found nothing".into());
    }
    let report = scrub(&mut pool, false)?;
    if report.damage.iter().any(|d| d.block == ptr.addr.0 && d.copy == index + 1 && d.recoverable) {
        tally.metadata_scrub_detected += 1;
    } else {
        return Err(format!("scrub -n did not report it: {:?}", report.damage));
    }
    let mut pool = open(image, OpenMode::Write).map_err(|e| format!("did not open for writing: {e}"))?;
    let report = scrub(&mut pool, true)?;
    let mut repaired = vec![0u8; image.len()];
    pool.store.dev.read_at(0, &mut repaired).map_err(|e| e.to_string())?;
    if report.is_clean() && repaired == built.image {
        tally.metadata_repaired += 1;
        Ok(())
    } else {
        Err(format!("scrub did not restore the image: {:?}", report.damage))
    }
}

fn judge_data(built: &Built, image: &[u8], ptr: &BlockPtr, tally: &mut Tally) -> Result<(), String> {
    let owners = built.owners.get(&ptr.addr.0).cloned().unwrap_or_default();
    let mut pool = open(image, OpenMode::Read).map_err(|e| format!("did not open: {e}"))?;
    for view in views(&mut pool) {
        for (key, read) in read_each(&mut pool, view.as_deref()).map_err(|e| format!("a view failed: {e}"))? {
            match read {
                Ok(bytes) if Some(&bytes) != built.contents.get(&key) => {
                    tally.wrong_bytes += 1;
                    return Err(format!("{key:?} read wrong bytes"));
                }
                Ok(_) if owners.contains(&key) => return Err(format!("{key:?} read through the damaged block")),
                Ok(_) => {}
                Err(e) if !owners.contains(&key) => return Err(format!("{key:?} failed though undamaged: {e}")),
                Err(_) => {}
            }
        }
    }
    if owners.is_empty() {
        tally.data_history_only += 1;
    } else {
        tally.data_reads_failed += 1;
    }
    if check_pool(&mut pool).map_or(true, |r| !r.is_clean()) {
        tally.data_check_detected += 1;
    } else {
        return Err("check found nothing".into());
    }
    let report = scrub(&mut pool, false)?;
    let named = |(view, path): &(Option<String>, String)| match view {
        Some(snapshot) => format!("@{snapshot}:{path}"),
        None => path.clone(),
    };
    let found = report.damage.iter().find(|d| d.block == ptr.addr.0 && !d.recoverable);
    match found {
        Some(d) if owners.iter().all(|o| d.files.contains(&named(o))) && !d.affects.is_empty() => {
            tally.data_scrub_detected += 1;
            Ok(())
        }
        _ => Err(format!("scrub did not name the block and its files {owners:?}: {:?}", report.damage)),
    }
}

/// Labels and commit rings: damage one copy, or the newest commit in both.
pub fn labels_and_rings(built: &Built, seed: u64, tally: &mut Tally) {
    let device_bytes = built.image.len() as u64;
    let newest = open(&built.image, OpenMode::Read).expect("opens").commit.txg.0;
    let block = move |region: u32, index: u64| ((region_start(region, device_bytes) + index) * BLOCK_BYTES) as usize;
    let page = BLOCK_BYTES as usize;
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Damage, bool)> = vec![
        ("label 0 zeroed", Box::new(move |i| i[block(0, 0)..block(0, 0) + page].fill(0)), false),
        ("label 1 zeroed", Box::new(move |i| i[block(1, 0)..block(1, 0) + page].fill(0)), false),
        ("label 0 torn", Box::new(move |i| i[block(0, 0) + page / 2..block(0, 0) + page].fill(0)), false),
        ("label 1 torn", Box::new(move |i| i[block(1, 0) + page / 2..block(1, 0) + page].fill(0)), false),
        ("ring 0 zeroed", Box::new(move |i| i[block(0, 1)..block(0, 1 + RING_SLOTS)].fill(0)), false),
        ("ring 1 zeroed", Box::new(move |i| i[block(1, 1)..block(1, 1 + RING_SLOTS)].fill(0)), false),
        (
            "newest commit zeroed in both rings",
            Box::new(move |i| {
                for region in 0..2 {
                    let slot = block(region, 1 + newest % RING_SLOTS);
                    i[slot..slot + page].fill(0);
                }
            }),
            true,
        ),
    ];
    for (what, damage, previous) in cases {
        let mut image = built.image.clone();
        damage(&mut image);
        tally.label_ring_trials += 1;
        let place = format!("seed {seed}: {what}");
        guarded(tally, &place, |tally| {
            let mut pool = open(&image, OpenMode::Read).map_err(|e| format!("did not open: {e}"))?;
            let live = read_view(&mut pool, None).map_err(|e| format!("the live tree failed: {e}"))?;
            let expected: Contents = if previous {
                built.previous_live.clone()
            } else {
                built
                    .contents
                    .iter()
                    .filter(|((view, _), _)| view.is_none())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            if live != expected {
                tally.wrong_bytes += 1;
                return Err(format!(
                    "the live tree is not the {} commit's",
                    if previous { "previous" } else { "newest" }
                ));
            }
            let expected_txg = if previous { newest - 1 } else { newest };
            if pool.commit.txg.0 != expected_txg {
                return Err(format!("opened txg {}, not {expected_txg}", pool.commit.txg.0));
            }
            tally.label_ring_recovered += 1;
            Ok(())
        });
    }
}
