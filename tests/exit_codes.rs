//! The exit-code table (snapfs::cli::exit_code) against the docs that repeat it, and against
//! the code that exits.
//!
//! Goal: the man pages' EXIT STATUS sections and the README's table say what the table
//! says: every code of a binary is listed with its meaning, and no page lists a code the
//! table lacks or the binary cannot exit with; no binary exits with a bare number.
//! Method: parse each EXIT STATUS section (`.TP` / `.B CODE` / prose) and the README's
//! `| exit | meaning |` table, and compare them with `exit_code::ALL` and
//! `exit_code::BY_PROGRAM`. The checker is also run on altered copies of a page, to show
//! that it catches each kind of drift. (That a binary never exits with a code outside
//! BY_PROGRAM is checked where it exits, in `cli::report`, on every run of the tests.)

use snapfs::cli::exit_code::{self, ALL, BY_PROGRAM};
use std::collections::BTreeMap;
use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Text as a reader sees it, lower case, spaces collapsed: what meanings are matched in.
fn normalize(text: &str) -> String {
    let text = text
        .replace("\\-", "-")
        .replace("\\c", "")
        .replace("\\&", "")
        .replace("\\(lq", "\"")
        .replace("\\(rq", "\"")
        .replace("\\ ", " ")
        .replace('`', "");
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// A macro's arguments, double quotes grouping words.
fn macro_args(rest: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in rest.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

/// One roff line as text: font macros keep their words (the alternating ones, such as
/// `.BR`, without spaces between them); other requests give nothing.
fn roff_line_text(line: &str) -> String {
    let Some(request) = line.strip_prefix('.') else {
        return line.to_string();
    };
    let (name, rest) = request.split_once(' ').unwrap_or((request, ""));
    let args = macro_args(rest);
    match name {
        "B" | "I" | "SM" => args.join(" "),
        "BR" | "RB" | "BI" | "IB" | "IR" | "RI" => args.concat(),
        _ => String::new(),
    }
}

/// The entries of a man page's EXIT STATUS section: code, then its prose, normalized.
fn man_exit_status(page: &str) -> Result<Vec<(i32, String)>, String> {
    let lines: Vec<&str> = page.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == ".SH EXIT STATUS" || l.trim() == ".SH \"EXIT STATUS\"")
        .ok_or("no EXIT STATUS section")?;
    let mut entries: Vec<(i32, String)> = Vec::new();
    let mut body: Option<String> = None; // the prose of the entry being read
    let mut i = start + 1;
    while i < lines.len() && !lines[i].starts_with(".SH") {
        let line = lines[i];
        if line == ".TP" {
            let tag = lines.get(i + 1).copied().unwrap_or("");
            let code = tag
                .strip_prefix(".B ")
                .and_then(|c| c.trim().parse::<i32>().ok())
                .ok_or_else(|| format!("an entry's tag is {tag:?}, not `.B CODE`"))?;
            if let Some(text) = body.take() {
                entries.last_mut().expect("a body follows a tag").1 = normalize(&text);
            }
            entries.push((code, String::new()));
            body = Some(String::new());
            i += 2;
            continue;
        }
        if line == ".PP" || line == ".P" || line == ".LP" {
            if let Some(text) = body.take() {
                entries.last_mut().expect("a body follows a tag").1 = normalize(&text);
            }
        } else if let Some(text) = body.as_mut() {
            text.push(' ');
            text.push_str(&roff_line_text(line));
        }
        i += 1;
    }
    if let Some(text) = body.take() {
        entries.last_mut().expect("a body follows a tag").1 = normalize(&text);
    }
    Ok(entries)
}

/// The README's `| exit | meaning |` table: code, then its meaning, normalized.
fn readme_exit_table(readme: &str) -> Result<Vec<(i32, String)>, String> {
    let mut lines = readme.lines().skip_while(|l| l.trim() != "| exit | meaning |");
    lines.next().ok_or("no `| exit | meaning |` table")?;
    let mut rows = Vec::new();
    for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').splitn(2, '|').map(str::trim).collect();
        let code = cells[0].parse::<i32>().map_err(|_| format!("a row's code is {:?}, not a number", cells[0]))?;
        rows.push((code, normalize(cells.get(1).copied().unwrap_or(""))));
    }
    Ok(rows)
}

/// What is wrong with a documented table (`doc` names it in messages) that should list
/// exactly `expected`, each entry containing its code's meaning from ALL.
fn disagreements(doc: &str, entries: &[(i32, String)], expected: &[i32]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    for (code, text) in entries {
        if seen.insert(*code, ()).is_some() {
            problems.push(format!("{doc} lists code {code} twice"));
        }
        match ALL.iter().find(|(value, _, _)| value == code) {
            None => problems.push(format!("{doc} lists code {code}, which exit_code::ALL lacks")),
            Some((_, name, meaning)) => {
                if !expected.contains(code) {
                    problems.push(format!("{doc} lists code {code} ({name}), which this command cannot exit with"));
                }
                if !text.contains(&meaning.to_lowercase()) {
                    problems.push(format!("{doc}: the entry for {code} ({name}) does not say {meaning:?}: {text:?}"));
                }
            }
        }
    }
    for code in expected {
        if !seen.contains_key(code) {
            let name = exit_code::name(*code).unwrap_or("?");
            problems.push(format!("{doc} does not list code {code} ({name}), which the command can exit with"));
        }
    }
    problems
}

fn all_codes() -> Vec<i32> {
    ALL.iter().map(|(code, _, _)| *code).collect()
}

/// The codes a binary's man page must list: snapctl.1 holds the table every command
/// shares, the others exactly what their binary can exit with.
fn expected_in_page(program: &str) -> Vec<i32> {
    match program {
        "snapctl" => all_codes(),
        _ => exit_code::of_program(program).unwrap_or_else(|| panic!("{program} not in BY_PROGRAM")).to_vec(),
    }
}

#[test]
fn each_man_page_lists_the_codes_its_binary_exits_with_and_their_meanings() {
    let mut problems = Vec::new();
    for (program, _) in BY_PROGRAM {
        let doc = format!("man/{program}.1 EXIT STATUS");
        let entries = man_exit_status(&read(&format!("man/{program}.1"))).unwrap_or_else(|e| panic!("{doc}: {e}"));
        problems.extend(disagreements(&doc, &entries, &expected_in_page(program)));
    }
    assert!(problems.is_empty(), "the man pages disagree with snapfs::cli::exit_code:\n{}", problems.join("\n"));
}

#[test]
fn the_readme_table_is_the_whole_table() {
    let rows = readme_exit_table(&read("README.md")).unwrap_or_else(|e| panic!("README.md: {e}"));
    let problems = disagreements("README.md's exit table", &rows, &all_codes());
    assert!(problems.is_empty(), "README.md disagrees with snapfs::cli::exit_code:\n{}", problems.join("\n"));
}

#[test]
fn the_checker_catches_each_kind_of_drift() {
    // Goal: the comparisons above can fail. Method: alter a correct page and table in
    // each way the docs could drift, and expect the problem named.
    let page = read("man/snapsend.1");
    let expected = expected_in_page("snapsend");
    let check = |page: &str| disagreements("page", &man_exit_status(page).unwrap(), &expected);
    assert_eq!(check(&page), Vec::<String>::new());

    let extra = page.replace(".TP\n.B 7\n", ".TP\n.B 12\nSomething new.\n.TP\n.B 7\n");
    assert!(check(&extra).iter().any(|p| p.contains("code 12, which exit_code::ALL lacks")), "{:?}", check(&extra));
    let not_this_binary = page.replace(".TP\n.B 7\n", ".TP\n.B 8\nA bad stream.\n.TP\n.B 7\n");
    assert!(check(&not_this_binary).iter().any(|p| p.contains("code 8 (BAD_STREAM), which this command cannot")));
    let missing = page.replace(".TP\n.B 6\nCorruption found while reading the pool.\n", "");
    assert_ne!(missing, page, "the snapsend.1 entry for 6 changed: update this test");
    assert!(check(&missing).iter().any(|p| p.contains("does not list code 6 (CORRUPT)")), "{:?}", check(&missing));
    let reworded = page.replace("Corruption found while", "Damage met while");
    assert!(check(&reworded).iter().any(|p| p.contains("does not say \"corruption found\"")));
    let twice = page.replace(".TP\n.B 7\n", ".TP\n.B 6\nCorruption found.\n.TP\n.B 7\n");
    assert!(check(&twice).iter().any(|p| p.contains("lists code 6 twice")));
    let bad_tag = page.replace(".B 7\n", ".B seven\n");
    assert!(man_exit_status(&bad_tag).is_err());

    let readme = read("README.md");
    let table = |text: &str| disagreements("t", &readme_exit_table(text).unwrap(), &all_codes());
    assert_eq!(table(&readme), Vec::<String>::new());
    let without_five = readme.lines().filter(|l| !l.starts_with("| 5 |")).collect::<Vec<_>>().join("\n");
    assert!(table(&without_five).iter().any(|p| p.contains("does not list code 5 (NO_SPACE)")));
}

#[test]
fn no_binary_and_no_error_exits_with_a_bare_number() {
    // Goal: every exit code comes from snapfs::cli::exit_code, so the table above is the
    // whole truth. Method: in the binaries and cli/, no `exit(` takes a
    // number and no arm of `exit_code::of_error` returns one.
    let mut sources: Vec<String> = ["src/lib/cli/mod.rs", "src/lib/cli/exit_code.rs"].map(String::from).to_vec();
    // The binaries and their modules (src/bin/snapctl/*.rs).
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
    for entry in std::fs::read_dir(&bin).unwrap() {
        let path = entry.unwrap().path();
        let files = match path.is_dir() {
            true => std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()).collect(),
            false => vec![path],
        };
        for file in files.into_iter().filter(|f| f.extension().is_some_and(|e| e == "rs")) {
            sources.push(file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().to_string_lossy().into_owned());
        }
    }
    let mut literals = Vec::new();
    for source in &sources {
        let text = read(source);
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let bare = |marker: &str| {
                code.split(marker).skip(1).any(|after| after.trim_start().starts_with(|c: char| c.is_ascii_digit()))
            };
            let in_exit_code = source.ends_with("cli/exit_code.rs") && code.contains("=> ") && code.contains("Error::");
            if bare("exit(") || bare("ExitCode::from(") || (in_exit_code && bare("=> ")) {
                literals.push(format!("{source}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(literals.is_empty(), "exit codes as bare numbers (use snapfs::cli::exit_code):\n{}", literals.join("\n"));
}
