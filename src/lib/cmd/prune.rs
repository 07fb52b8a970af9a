//! Retention for cron: `snapshot --auto` names a snapshot from the time, and `prune
//! --keep 'hourly=24,daily=7,...'` destroys, in one commit, the automatic snapshots no
//! rule keeps.
//!
//! A rule counts snapshots, not wall-clock periods (as sanoid does): `hourly=24` keeps
//! the newest snapshot of each of the 24 newest hours that have one, however long ago
//! they are, so a weekend with the machine off does not wipe the hourlies (btrbk#308).
//! Periods are UTC hours, days, ISO weeks (from Monday), months and years of each
//! snapshot's creation time, which a replica keeps from its source, so both sides prune
//! by the same calendar. Never destroyed: the newest automatic snapshot, a held one (a
//! replica holds the base its next incremental needs), a clone's origin, and any
//! snapshot not named `auto-...`.

use super::snapshot::Taken;
use crate::error::{Error, Result};
use crate::pool::Pool;
use crate::utc::{civil_from_days, format_time};
use serde::Serialize;

/// Snapshots `snapshot --auto` names, and the only ones `prune` destroys.
pub const AUTO_PREFIX: &str = "auto-";

/// The name `snapshot --auto` gives at `now_ns`: "auto-2026-11-25T0200Z" (UTC, to the
/// minute); to the second if `taken` says the minute's name exists, and then "-2", "-3"...
/// within one second.
pub fn auto_name(now_ns: u64, mut taken: impl FnMut(&str) -> bool) -> String {
    let text = format_time((now_ns / 1_000_000_000) as i64); // 2026-11-25T02:00:07Z
    let minute = format!("{AUTO_PREFIX}{}{}Z", &text[..13], &text[14..16]);
    if !taken(&minute) {
        return minute;
    }
    let second = format!("{AUTO_PREFIX}{}{}{}Z", &text[..13], &text[14..16], &text[17..19]);
    (1..)
        .map(|k| if k == 1 { second.clone() } else { format!("{second}-{k}") })
        .find(|n| !taken(n))
        .expect("a free name")
}

/// `snapshot --auto`: takes a snapshot of `tree` named from the time now (or, with
/// `moment`, of the past moment it holds, as `snapshot_at` finds it), and commits it.
/// Each candidate name is one lookup: the snapshots table is not read whole.
pub fn snapshot_auto(pool: &mut Pool, tree: u64, moment: Option<u64>) -> Result<Taken> {
    // A past moment is named by the commit it finds, so the name and the calendar prune
    // keeps it by agree.
    let past = moment.map(|m| super::snapshot::retained_commit_at(pool, m)).transpose()?;
    let named = past.map_or_else(|| pool.clock().now_ns(), |(_, time)| time);
    let mut failure = None;
    let name = auto_name(named, |n| match pool.snapshot_exists(tree, n) {
        Ok(exists) => exists,
        Err(e) => {
            failure.get_or_insert(e);
            false
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    match moment {
        None => super::snapshot::snapshot(pool, tree, &name),
        Some(moment) => super::snapshot::snapshot_at(pool, tree, &name, moment),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Period {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    const ALL: [(&'static str, Period); 5] = [
        ("hourly", Period::Hourly),
        ("daily", Period::Daily),
        ("weekly", Period::Weekly),
        ("monthly", Period::Monthly),
        ("yearly", Period::Yearly),
    ];

    /// Which period of this kind the time falls in: equal for two times in the same one.
    fn bucket(self, time_ns: u64) -> i64 {
        let sec = (time_ns / 1_000_000_000) as i64;
        let days = sec.div_euclid(86400);
        match self {
            Period::Hourly => sec.div_euclid(3600),
            Period::Daily => days,
            // 1970-01-01 was a Thursday: weeks start on the Monday before it.
            Period::Weekly => (days + 3).div_euclid(7),
            Period::Monthly => {
                let (y, m, _) = civil_from_days(days);
                y * 12 + m as i64
            }
            Period::Yearly => civil_from_days(days).0,
        }
    }
}

/// How many periods of each kind keep a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeepRules {
    counts: Vec<(Period, usize)>,
}

impl KeepRules {
    /// "hourly=24,daily=7,weekly=4,monthly=12,yearly=2" (any of them, each once).
    pub fn parse(text: &str) -> Result<KeepRules> {
        let names: Vec<&str> = Period::ALL.iter().map(|(n, _)| *n).collect();
        let mut counts: Vec<(Period, usize)> = Vec::new();
        for part in text.split(',') {
            let bad = |why: &str| {
                Error::invalid(format!(
                    "bad --keep rule {part:?} in {text:?}: {why}; write PERIOD=COUNT[,...] with PERIOD one of {}",
                    names.join(", ")
                ))
            };
            let (name, count) = part.split_once('=').ok_or_else(|| bad("no '='"))?;
            let period = Period::ALL
                .iter()
                .find(|(n, _)| *n == name.trim())
                .map(|(_, p)| *p)
                .ok_or_else(|| bad(&format!("unknown period {:?}", name.trim())))?;
            let count: usize = count.trim().parse().map_err(|_| bad(&format!("{:?} is not a count", count.trim())))?;
            if counts.iter().any(|(p, _)| *p == period) {
                return Err(bad("that period is given twice"));
            }
            counts.push((period, count));
        }
        counts.sort();
        Ok(KeepRules { counts })
    }
}

/// An automatic snapshot as `prune` weighs it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub name: String,
    pub time_ns: u64,
    pub held: bool,
}

/// The candidates (any order) that no rule keeps, oldest first: each rule keeps the
/// newest candidate of each of its newest COUNT periods that have one; the newest
/// candidate and held ones are always kept.
pub fn doomed(candidates: &[Candidate], rules: &KeepRules) -> Vec<String> {
    let mut newest_first: Vec<&Candidate> = candidates.iter().collect();
    newest_first.sort_by(|a, b| (b.time_ns, &b.name).cmp(&(a.time_ns, &a.name)));
    let mut keep = vec![false; newest_first.len()];
    if let Some(first) = keep.first_mut() {
        *first = true;
    }
    for (period, count) in &rules.counts {
        let mut last_bucket = None;
        let mut kept = 0;
        for (i, c) in newest_first.iter().enumerate() {
            let bucket = period.bucket(c.time_ns);
            if last_bucket == Some(bucket) {
                continue;
            }
            if kept == *count {
                break;
            }
            last_bucket = Some(bucket);
            kept += 1;
            keep[i] = true;
        }
    }
    let mut out: Vec<&Candidate> =
        newest_first.iter().zip(&keep).filter(|(c, keep)| !**keep && !c.held).map(|(c, _)| *c).collect();
    out.sort_by_key(|c| (c.time_ns, c.name.clone()));
    out.into_iter().map(|c| c.name.clone()).collect()
}

/// What `prune` did, or would do.
#[derive(Clone, Debug, Serialize)]
pub struct Pruned {
    /// Destroyed (or that would be), oldest first.
    pub destroyed: Vec<String>,
    /// Automatic snapshots kept.
    pub kept: usize,
    pub dry_run: bool,
    /// Freed by the commit (a dry run: exactly what it would free now).
    pub freed_bytes: u64,
}

/// Destroys in one commit the automatic snapshots of `tree` that `rules` do not keep
/// (with `dry_run`, only says which, and what that would free).
pub fn prune(pool: &mut Pool, tree: u64, rules: &KeepRules, dry_run: bool) -> Result<Pruned> {
    // One a reader is sending or reading stays too, until the next prune.
    let pinned = pool.pinned_now()?;
    let mut candidates: Vec<Candidate> = Vec::new();
    for s in pool.snapshots_of(tree)?.into_iter().filter(|s| s.name.starts_with(AUTO_PREFIX)) {
        // A clone's origin stays as long as the clone (clones.rs).
        let origin = !pool.clones_of(tree, s.txg)?.is_empty();
        let held = !s.holds.is_empty() || pinned.contains(&(tree, s.txg)) || origin;
        candidates.push(Candidate { name: s.name, time_ns: s.time_ns, held });
    }
    let destroyed = doomed(&candidates, rules);
    let kept = candidates.len() - destroyed.len();
    if destroyed.is_empty() {
        return Ok(Pruned { destroyed, kept, dry_run, freed_bytes: 0 });
    }
    if dry_run {
        let freed_bytes = pool.destroy_estimate(tree, &destroyed)?.freed_bytes;
        return Ok(Pruned { destroyed, kept, dry_run, freed_bytes });
    }
    let outcome = super::snapshot::destroy(pool, tree, &destroyed, false)?;
    Ok(Pruned { destroyed, kept, dry_run, freed_bytes: outcome.freed_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600 * 1_000_000_000;

    fn candidates(hours: &[u64]) -> Vec<Candidate> {
        hours
            .iter()
            .map(|&h| Candidate {
                name: format!("auto-{h}"),
                time_ns: 1_767_225_600_000_000_000 + h * HOUR,
                held: false,
            })
            .collect()
    }

    #[test]
    fn rules_count_snapshots_not_wall_clock_periods() {
        // Goal: hourly=3 keeps the newest of the 3 newest hours that have a snapshot,
        // even when those hours are days apart (a machine that was off), and the daily
        // rule keeps the newest of each day on top.
        let rules = KeepRules::parse("hourly=3,daily=2").unwrap();
        // Two a day on days 0 and 1, then nothing until day 5, three there.
        let mut snaps = candidates(&[1, 2, 25, 26, 121, 122, 123]);
        snaps.push(Candidate { name: "auto-122b".into(), time_ns: snaps[5].time_ns + 1, held: false });
        let doomed = doomed(&snaps, &rules);
        // Kept: 123, 122b (newest of hour 122), 121 (hourly); day 5's newest (123) and
        // day 1's newest (26) (daily). Doomed: 1, 2, 25, and 122 (beaten by 122b).
        assert_eq!(doomed, ["auto-1", "auto-2", "auto-25", "auto-122"]);
    }

    #[test]
    fn the_newest_and_held_snapshots_are_never_doomed() {
        let rules = KeepRules::parse("hourly=0").unwrap();
        let mut snaps = candidates(&[1, 2, 3]);
        snaps[0].held = true;
        assert_eq!(doomed(&snaps, &rules), ["auto-2"]);
        assert!(doomed(&[], &rules).is_empty());
    }

    #[test]
    fn weeks_start_on_monday_and_months_follow_the_calendar() {
        let day = 24 * HOUR;
        let monday = 1_767_571_200_000_000_000; // 2026-01-05, a Monday
        assert_eq!(Period::Weekly.bucket(monday), Period::Weekly.bucket(monday + 6 * day + HOUR));
        assert_ne!(Period::Weekly.bucket(monday - 1), Period::Weekly.bucket(monday));
        let jan31 = 1_769_817_600_000_000_000; // 2026-01-31
        assert_ne!(Period::Monthly.bucket(jan31), Period::Monthly.bucket(jan31 + day));
        assert_eq!(Period::Yearly.bucket(jan31), 2026);
    }

    #[test]
    fn rules_parse_or_point_at_the_bad_part() {
        assert_eq!(
            KeepRules::parse("daily=7,hourly=24").unwrap(),
            KeepRules { counts: vec![(Period::Hourly, 24), (Period::Daily, 7)] }
        );
        for (text, part) in [
            ("hourly=24,daily", "\"daily\""),
            ("hourly=x", "\"x\" is not a count"),
            ("fortnightly=2", "unknown period \"fortnightly\""),
            ("daily=1,daily=2", "given twice"),
        ] {
            let e = KeepRules::parse(text).unwrap_err().to_string();
            assert!(e.contains(part), "{text}: {e}");
        }
    }

    #[test]
    fn auto_names_go_to_the_second_only_when_the_minute_is_taken() {
        let t = 1_764_036_007_000_000_000; // 2025-11-25T02:00:07Z
        assert_eq!(auto_name(t, |_| false), "auto-2025-11-25T0200Z");
        assert_eq!(auto_name(t, |n| n == "auto-2025-11-25T0200Z"), "auto-2025-11-25T020007Z");
        let taken = ["auto-2025-11-25T0200Z", "auto-2025-11-25T020007Z", "auto-2025-11-25T020007Z-2"];
        assert_eq!(auto_name(t, |n| taken.contains(&n)), "auto-2025-11-25T020007Z-3");
    }
}
