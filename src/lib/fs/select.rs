//! Which files a rule selects: path globs (`--match`, `--exclude`) and conditions on
//! metadata (`--where`), as a subset snapshot takes them (issue 16) and `ls --match`
//! previews them.
//!
//! Globs are matched against a path from the tree's root without its leading slash
//! (`data/train/cat.jpg`), by the `globset` crate with `*` kept within one name and `**`
//! spanning directories. A file is selected when some `--match` glob matches it (or none
//! is given), no `--exclude` glob does, and every `--where` condition holds. Rules select
//! the entries that are not directories; directories are held as the way to what is
//! selected (a directory matched alone is not a subset of anything).
//!
//! A condition is FIELD OP VALUE, conditions separated by commas: `uid`, `gid` (numbers),
//! `mode` (octal permission bits, `mode=0644`), `size` (bytes, or with K, M, G, T: powers
//! of 1024), `mtime`, `ctime` (RFC 3339, a date alone meaning its midnight UTC, or a span
//! before now such as `-7d`), `type` (`f` file, `d` directory, `l` symlink, `s` special),
//! and `xattr.NAME` (its value; `xattr.NAME` alone: it exists); OP one of `=`, `!=`, `<`,
//! `<=`, `>`, `>=` (only `=` and `!=` for type and xattr).

use crate::error::{Error, Result};
use crate::fs::inode::{FileType, Inode, Timespec};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::cmp::Ordering;
use std::str::FromStr;

/// A rule: what to take and what to leave, and the metadata the taken files must have.
#[derive(Clone, Debug)]
pub struct Rule {
    matches: GlobSet,
    match_count: usize,
    excludes: GlobSet,
    conditions: Vec<Condition>,
}

/// One condition: a test of a field against a value, compared by `op`.
#[derive(Clone, Debug, PartialEq)]
struct Condition {
    op: Op,
    test: Test,
}

/// A field and the value it is compared with, each field with its kind of value.
#[derive(Clone, Debug, PartialEq)]
enum Test {
    Uid(u64),
    Gid(u64),
    /// Permission bits, 0..=0o7777.
    Mode(u64),
    Size(u64),
    /// Nanoseconds since the epoch (negative: before it).
    Mtime(i128),
    Ctime(i128),
    Type(FileType),
    /// An extended attribute's value; None: the attribute exists.
    Xattr {
        name: Vec<u8>,
        value: Option<Vec<u8>>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// What a condition reads of a file besides its inode.
pub trait Xattrs {
    /// The value of extended attribute `name`, if the file has it.
    fn xattr(&mut self, name: &[u8]) -> Result<Option<Vec<u8>>>;
}

/// The extended attributes of inode `ino` of a file tree, as conditions read them.
pub struct FileXattrs<'f, 'a> {
    pub fs: &'f mut super::FsTree<'a>,
    pub ino: u64,
}

impl Xattrs for FileXattrs<'_, '_> {
    fn xattr(&mut self, name: &[u8]) -> Result<Option<Vec<u8>>> {
        self.fs.xattr(self.ino, name)
    }
}

impl Rule {
    /// A rule from `--match` globs, `--exclude` globs and `--where` texts (each a comma-
    /// separated list of conditions); `now_ns` is now, for times written relative to it.
    pub fn parse(matches: &[String], excludes: &[String], wheres: &[String], now_ns: u64) -> Result<Rule> {
        let mut conditions = Vec::new();
        for text in wheres {
            for term in text.split(',').map(str::trim) {
                conditions.push(Condition::parse(term, text, now_ns)?);
            }
        }
        Ok(Rule {
            matches: glob_set(matches, "--match")?,
            match_count: matches.len(),
            excludes: glob_set(excludes, "--exclude")?,
            conditions,
        })
    }

    /// Whether the file at `path` (from the root, no leading slash), with `inode`, is
    /// selected. Directories never are (see the module comment).
    pub fn selects(&self, path: &[u8], inode: &Inode, xattrs: &mut dyn Xattrs) -> Result<bool> {
        if inode.file_type() == FileType::Directory {
            return Ok(false);
        }
        if !self.selects_path(path) {
            return Ok(false);
        }
        for condition in &self.conditions {
            if !condition.holds(inode, xattrs)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Rule {
    /// Whether it judges more than paths: a file's inode or extended attributes.
    pub fn has_conditions(&self) -> bool {
        !self.conditions.is_empty()
    }

    /// Whether the globs take the path (conditions aside): a walk reads the inodes of
    /// only the paths they take.
    pub fn selects_path(&self, path: &[u8]) -> bool {
        let path = String::from_utf8_lossy(path);
        (self.match_count == 0 || self.matches.is_match(path.as_ref())) && !self.excludes.is_match(path.as_ref())
    }
}

fn glob_set(globs: &[String], option: &str) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        let pattern = glob.strip_prefix('/').unwrap_or(glob);
        let built = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| Error::invalid(format!("{option} {glob:?}: {}", e.kind())))?;
        set.add(built);
    }
    set.build().map_err(|e| Error::invalid(format!("{option}: {e}")))
}

impl Condition {
    fn parse(term: &str, text: &str, now_ns: u64) -> Result<Condition> {
        let bad = |why: String| Error::invalid(format!("--where {text:?}: in {term:?}, {why}"));
        if term.is_empty() {
            return Err(bad("a condition is empty (two commas, or one at an end)".into()));
        }
        let Some(at) = term.find(['=', '!', '<', '>']) else {
            return match term.strip_prefix("xattr.") {
                // `xattr.NAME` alone: the file has the attribute.
                Some(name) if !name.is_empty() => {
                    Ok(Condition { op: Op::Eq, test: Test::Xattr { name: name.as_bytes().to_vec(), value: None } })
                }
                _ => Err(bad("no operator: write FIELD=VALUE, FIELD<VALUE, ... (=, !=, <, <=, >, >=)".into())),
            };
        };
        let (name, rest) = term.split_at(at);
        let (op, value) = [("<=", Op::Le), (">=", Op::Ge), ("!=", Op::Ne), ("=", Op::Eq), ("<", Op::Lt), (">", Op::Gt)]
            .iter()
            .find_map(|(text, op)| rest.strip_prefix(text).map(|v| (*op, v)))
            .ok_or_else(|| bad("the operator is one of =, !=, <, <=, >, >=".into()))?;
        let (name, value) = (name.trim(), value.trim());
        if matches!(name, "type") || name.starts_with("xattr.") {
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(bad(format!("{name} is compared with = or != only")));
            }
        }
        let number = || value.parse().map_err(|_| bad(format!("{name} takes a number, not {value:?}")));
        let time = || {
            parse_time(value, now_ns).ok_or_else(|| {
                bad(format!(
                    "{name} takes an RFC 3339 time (2026-11-01T00:00:00Z), a date (2026-11-01, its midnight UTC) \
                     or a span before now (-7d), not {value:?}"
                ))
            })
        };
        let test = match name {
            "uid" => Test::Uid(number()?),
            "gid" => Test::Gid(number()?),
            "mode" => Test::Mode(
                u64::from_str_radix(value.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|&m| m <= 0o7777)
                    .ok_or_else(|| bad(format!("mode takes octal permission bits (0644, 4755), not {value:?}")))?,
            ),
            "size" => Test::Size(parse_size(value).ok_or_else(|| {
                bad(format!("size takes bytes, or a number with K, M, G or T (1M is 1048576), not {value:?}"))
            })?),
            "mtime" => Test::Mtime(time()?),
            "ctime" => Test::Ctime(time()?),
            "type" => Test::Type(match value {
                "f" | "file" => FileType::Regular,
                "d" | "dir" => FileType::Directory,
                "l" | "symlink" => FileType::Symlink,
                "s" | "special" => FileType::Special,
                _ => return Err(bad(format!("type is f, d, l or s, not {value:?}"))),
            }),
            _ => match name.strip_prefix("xattr.") {
                Some(attr) if !attr.is_empty() => {
                    Test::Xattr { name: attr.as_bytes().to_vec(), value: Some(value.as_bytes().to_vec()) }
                }
                _ => {
                    return Err(bad(format!(
                        "unknown field {name:?}: the fields are uid, gid, mode, size, mtime, ctime, type and xattr.NAME"
                    )));
                }
            },
        };
        Ok(Condition { op, test })
    }

    fn holds(&self, inode: &Inode, xattrs: &mut dyn Xattrs) -> Result<bool> {
        let ns = |t: Timespec| t.sec as i128 * 1_000_000_000 + t.nsec as i128;
        let ordered = |found: std::cmp::Ordering| match self.op {
            Op::Eq => found.is_eq(),
            Op::Ne => found.is_ne(),
            Op::Lt => found.is_lt(),
            Op::Le => found.is_le(),
            Op::Gt => found.is_gt(),
            Op::Ge => found.is_ge(),
        };
        Ok(match &self.test {
            Test::Uid(v) => ordered(u64::from(inode.uid).cmp(v)),
            Test::Gid(v) => ordered(u64::from(inode.gid).cmp(v)),
            Test::Mode(v) => ordered(u64::from(inode.mode & 0o7777).cmp(v)),
            Test::Size(v) => ordered(inode.size.cmp(v)),
            Test::Mtime(v) => ordered(ns(inode.mtime).cmp(v)),
            Test::Ctime(v) => ordered(ns(inode.ctime).cmp(v)),
            // Equality only (parse refuses the rest): `ordered` of whether they are equal.
            Test::Type(t) => ordered(if inode.file_type() == *t { Ordering::Equal } else { Ordering::Less }),
            Test::Xattr { name, value: None } => xattrs.xattr(name)?.is_some(),
            Test::Xattr { name, value: Some(v) } => {
                let found = xattrs.xattr(name)?;
                ordered(if found.as_deref() == Some(v.as_slice()) { Ordering::Equal } else { Ordering::Less })
            }
        })
    }
}

/// "4096", "1K", "1.5M": bytes, the suffixes powers of 1024.
fn parse_size(text: &str) -> Option<u64> {
    let (number, scale) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&text[..i], 1 << 20),
        (i, 'G' | 'g') => (&text[..i], 1 << 30),
        (i, 'T' | 't') => (&text[..i], 1 << 40),
        _ => (text, 1),
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(scale);
    }
    let fraction = f64::from_str(number).ok().filter(|f| f.is_finite() && *f >= 0.0)?;
    let bytes = fraction * scale as f64;
    (bytes <= u64::MAX as f64).then_some(bytes as u64)
}

/// A time in nanoseconds since the epoch: RFC 3339, a date (its midnight UTC), or a span
/// before now.
fn parse_time(text: &str, now_ns: u64) -> Option<i128> {
    if let Ok(time) = jiff::Timestamp::from_str(text) {
        return Some(time.as_nanosecond());
    }
    if let Ok(date) = jiff::civil::Date::from_str(text) {
        return jiff::Timestamp::from_str(&format!("{date}T00:00:00Z")).ok().map(|t| t.as_nanosecond());
    }
    let span = jiff::Span::from_str(text).ok()?;
    let span = span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).ok()?;
    Some(now_ns as i128 + span.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::{Result, Rule, Xattrs};
    use crate::fs::inode::{Inode, S_IFDIR, S_IFLNK, S_IFREG, Timespec};

    const NOW: u64 = 1_764_000_000 * 1_000_000_000;

    struct Attrs(Vec<(&'static str, &'static str)>);
    impl Xattrs for Attrs {
        fn xattr(&mut self, name: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self.0.iter().find(|(n, _)| n.as_bytes() == name).map(|(_, v)| v.as_bytes().to_vec()))
        }
    }

    fn file(size: u64, uid: u32, mtime: i64) -> Inode {
        let mut inode = Inode::new(S_IFREG | 0o644, Timespec { sec: mtime, nsec: 0 });
        (inode.size, inode.uid) = (size, uid);
        inode
    }

    fn rule(matches: &[&str], excludes: &[&str], wheres: &[&str]) -> Rule {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Rule::parse(&strings(matches), &strings(excludes), &strings(wheres), NOW).unwrap()
    }

    fn selects(rule: &Rule, path: &str, inode: &Inode, attrs: &[(&'static str, &'static str)]) -> bool {
        rule.selects(path.as_bytes(), inode, &mut Attrs(attrs.to_vec())).unwrap()
    }

    #[test]
    fn globs_keep_star_within_a_name_and_let_double_star_cross_directories() {
        let f = file(10, 0, 0);
        let jpgs = rule(&["data/**/*.jpg"], &["data/test/**"], &[]);
        for (path, expected) in [
            ("data/cat.jpg", true),
            ("data/train/a/cat.jpg", true),
            ("data/test/cat.jpg", false),
            ("data/train/cat.png", false),
            ("other/cat.jpg", false),
        ] {
            assert_eq!(selects(&jpgs, path, &f, &[]), expected, "{path}");
        }
        let top = rule(&["*.jpg"], &[], &[]);
        assert!(selects(&top, "cat.jpg", &f, &[]) && !selects(&top, "a/cat.jpg", &f, &[]), "* stays in one name");
        let everything = rule(&[], &[], &[]);
        assert!(selects(&everything, "any/file", &f, &[]));
        let dir = Inode::new(S_IFDIR | 0o755, Timespec::default());
        assert!(!selects(&everything, "any", &dir, &[]), "directories come only as the way to files");
        assert!(selects(&rule(&["/data/*"], &[], &[]), "data/x", &f, &[]), "a leading slash names the root");
    }

    #[test]
    fn conditions_compare_metadata_and_extended_attributes() {
        let day = 86_400;
        let nov1 = 1_761_955_200; // 2025-11-01T00:00:00Z
        let small_old = file(1000, 1000, nov1 - day);
        let big_new = file(3 << 20, 1000, nov1 + day);
        let mine = rule(&[], &[], &["uid=1000,mtime<2025-11-01,size<1M"]);
        assert!(selects(&mine, "a", &small_old, &[]));
        assert!(!selects(&mine, "a", &big_new, &[]));
        assert!(selects(&rule(&[], &[], &["size>=3M", "mtime>=2025-11-01T00:00:00Z"]), "a", &big_new, &[]));
        assert!(selects(&rule(&[], &[], &["mtime>-30d"]), "a", &big_new, &[]), "a span before now");
        assert!(selects(&rule(&[], &[], &["size<1.5K,mode=0644,gid!=5"]), "a", &small_old, &[]));
        let link = Inode::new(S_IFLNK | 0o777, Timespec::default());
        assert!(selects(&rule(&[], &[], &["type=l"]), "a", &link, &[]));
        assert!(!selects(&rule(&[], &[], &["type=f"]), "a", &link, &[]));
        let cat = [("user.label", "cat")];
        assert!(selects(&rule(&[], &[], &["xattr.user.label=cat"]), "a", &small_old, &cat));
        assert!(!selects(&rule(&[], &[], &["xattr.user.label=dog"]), "a", &small_old, &cat));
        assert!(selects(&rule(&[], &[], &["xattr.user.label"]), "a", &small_old, &cat));
        assert!(!selects(&rule(&[], &[], &["xattr.user.label"]), "a", &small_old, &[]));
        assert!(selects(&rule(&[], &[], &["xattr.user.label!=dog"]), "a", &small_old, &[]));
    }

    #[test]
    fn a_bad_glob_or_condition_is_refused_pointing_at_the_bad_part() {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (matches, wheres, says) in [
            (&["data/[a"][..], &[][..], "--match \"data/[a\""),
            (&[], &["uid=1000,colour=red"], "unknown field \"colour\""),
            (&[], &["uid=me"], "in \"uid=me\", uid takes a number"),
            (&[], &["size<1Q"], "size takes bytes"),
            (&[], &["mode=999"], "octal"),
            (&[], &["mtime<yesterday"], "RFC 3339"),
            (&[], &["type<f"], "= or != only"),
            (&[], &["type=x"], "f, d, l or s"),
            (&[], &["uid"], "no operator"),
            (&[], &["uid=1,,gid=2"], "empty"),
            (&[], &["uid!1000"], "the operator is one of"),
        ] {
            let error = Rule::parse(&strings(matches), &[], &strings(wheres), NOW).unwrap_err().to_string();
            assert!(error.contains(says), "{matches:?} {wheres:?}: {error}");
        }
    }
}
