//! The man pages in man/ against the binaries' --help.
//!
//! The help text is parsed generically, so adding a command, an option, a value name, a
//! default or a positional argument without documenting it fails here, as does
//! documenting a command or option that no longer exists.
//!
//! What the man pages must look like for this to work:
//! - snapfmt.1, snapsend.1, snaprecv.1 (commands without subcommands): OPTIONS holds one
//!   `.TP` entry per option; its tag names the flags and the value name, its body says
//!   `Default: VALUE.` when there is a default. SYNOPSIS holds the forms of --help's usage
//!   (one line each there), in the same order and separated by `.br`, each with its
//!   positional arguments in order; every option appears in one of them, followed by its
//!   value name. Forms after those name only -h/--help and -V/--version.
//! - snapctl.1: OPTIONS holds the global options. COMMANDS holds one outer `.TP` entry
//!   per command whose tag is the command's synopsis (name, every option, positional
//!   arguments in order); its options are nested `.TP` entries between `.RS` and `.RE`.

use assert_cmd::Command;
use std::collections::BTreeSet;
use std::path::Path;

// ---------------------------------------------------------------------------------------
// --help

#[derive(Debug, Clone)]
struct HelpOption {
    short: Option<String>,
    long: Option<String>,
    value: Option<String>,
    default: Option<String>,
}

impl HelpOption {
    fn flags(&self) -> Vec<&str> {
        self.short.iter().chain(self.long.iter()).map(String::as_str).collect()
    }

    fn display(&self) -> String {
        self.flags().join(", ")
    }

    fn is_help_or_version(&self) -> bool {
        matches!(self.long.as_deref(), Some("--help" | "--version"))
    }
}

#[derive(Debug, Default)]
struct Help {
    /// The first usage form.
    usage: String,
    /// Every usage form: a command may show several, one a line, as snaprecv does.
    usages: Vec<String>,
    commands: Vec<String>,
    options: Vec<HelpOption>,
}

fn run_help(bin: &str, args: &[&str]) -> String {
    let output = Command::cargo_bin(bin)
        .unwrap_or_else(|e| panic!("cannot find binary {bin}: {e}"))
        .args(args)
        .env("COLUMNS", "1000")
        .env("TERM", "dumb")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin} {args:?}: {e}"));
    assert!(
        output.status.success(),
        "{bin} {args:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

/// The help of a subcommand: `BIN SUB --help`, or `BIN help SUB` for the commands that
/// take no --help (clap's own `help`).
fn subcommand_help(bin: &str, sub: &str) -> String {
    let output = Command::cargo_bin(bin).unwrap().args([sub, "--help"]).output().unwrap();
    if output.status.success() {
        return String::from_utf8(output.stdout).expect("help is UTF-8");
    }
    run_help(bin, &["help", sub])
}

fn parse_help(text: &str) -> Help {
    let mut help = Help::default();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(usage) = line.strip_prefix("Usage: ") {
            help.usage = usage.trim().to_string();
            help.usages.push(help.usage.clone());
            section = "Usage".into();
            continue;
        }
        if !line.starts_with(' ') && line.trim_end().ends_with(':') {
            section = line.trim_end().trim_end_matches(':').to_string();
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        match section.as_str() {
            // Further forms of the usage, indented under the first. A line that does not
            // start with the command's name continues the form before it.
            "Usage" => {
                let name = help.usage.split_whitespace().next().unwrap_or_default();
                match help.usages.last_mut() {
                    Some(form) if trimmed.split_whitespace().next() != Some(name) => {
                        form.push(' ');
                        form.push_str(trimmed);
                    }
                    _ => help.usages.push(trimmed.to_string()),
                }
            }
            "Commands" => {
                // Continuation lines of a long description are indented further.
                let indent = line.len() - line.trim_start().len();
                if indent <= 2 {
                    help.commands.push(trimmed.split_whitespace().next().unwrap().to_string());
                }
            }
            "Options" if trimmed.starts_with('-') => help.options.push(parse_option_line(trimmed)),
            _ => {}
        }
    }
    help
}

/// "-f, --force   Overwrite ..." or "--history <DURATION>  How long ... [default: 24h]".
fn parse_option_line(line: &str) -> HelpOption {
    let (spec, description) = match line.find("  ") {
        Some(i) => (&line[..i], line[i..].trim()),
        None => (line, ""),
    };
    let mut option = HelpOption { short: None, long: None, value: None, default: None };
    for part in spec.split(", ") {
        let mut words = part.split_whitespace();
        let flag = words.next().expect("a flag").to_string();
        if let Some(value) = words.next() {
            option.value = Some(value.trim_matches(|c| matches!(c, '<' | '>' | '[' | ']' | '.')).to_string());
        }
        if flag.starts_with("--") {
            option.long = Some(flag);
        } else {
            option.short = Some(flag);
        }
    }
    if let Some(i) = description.find("[default: ") {
        let rest = &description[i + "[default: ".len()..];
        option.default = Some(rest[..rest.find(']').expect("closing ]")].to_string());
    }
    option
}

// ---------------------------------------------------------------------------------------
// roff

fn man_source(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Text with roff escapes resolved: fonts dropped, `\-` to '-', and so on.
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => match chars.next() {
                Some('(') => {
                    chars.next();
                    chars.next();
                }
                Some('[') => {
                    for c in chars.by_ref() {
                        if c == ']' {
                            break;
                        }
                    }
                }
                _ => {}
            },
            Some('(') => {
                let name: String = [chars.next(), chars.next()].into_iter().flatten().collect();
                out.push_str(match name.as_str() {
                    "em" | "en" => "-",
                    "aq" => "'",
                    "lq" | "rq" | "dq" => "\"",
                    _ => "",
                });
            }
            Some('&' | 'c' | '%') | None => {}
            Some('e') => out.push('\\'),
            Some(other) => out.push(other),
        }
    }
    out
}

/// Splits macro arguments, honouring double quotes.
fn macro_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' | '\t' if !quoted => {
                if any {
                    args.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            _ => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(current);
    }
    args
}

/// One source line as plain text: font macros give their text, other requests nothing.
fn plain_line(line: &str) -> String {
    let Some(request) = line.strip_prefix('.') else {
        return unescape(line);
    };
    let (name, rest) = request.split_once([' ', '\t']).unwrap_or((request, ""));
    let args = macro_args(rest);
    let joined = match name {
        "B" | "I" | "SM" | "SB" => args.join(" "),
        "BR" | "RB" | "BI" | "IB" | "IR" | "RI" => args.concat(),
        _ => return String::new(),
    };
    unescape(&joined)
}

/// The source lines of section `name` (.SH), without comments.
fn section<'a>(source: &'a str, name: &str) -> Vec<&'a str> {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in source.lines() {
        if let Some(title) = line.strip_prefix(".SH") {
            inside = title.trim().trim_matches('"') == name;
            continue;
        }
        if inside && !line.starts_with(".\\\"") && !line.starts_with("'\\\"") {
            lines.push(line);
        }
    }
    assert!(!lines.is_empty(), "the man page has no section {name:?}");
    lines
}

#[derive(Debug, Default)]
struct Entry {
    tag: String,
    body: String,
    children: Vec<Entry>,
}

impl Entry {
    fn tag_tokens(&self) -> Vec<String> {
        tokens(&self.tag)
    }

    fn all_text(&self) -> String {
        let mut text = format!("{} {}", self.tag, self.body);
        for child in &self.children {
            text.push(' ');
            text.push_str(&child.all_text());
        }
        text
    }
}

/// The `.TP` entries of a section: outer ones, with the ones nested in `.RS`/`.RE` as
/// their children.
fn entries(lines: &[&str]) -> Vec<Entry> {
    let mut top: Vec<Entry> = Vec::new();
    let mut depth = 0usize;
    let mut lines = lines.iter();
    while let Some(line) = lines.next() {
        let request = line.split_whitespace().next().unwrap_or("");
        match request {
            ".RS" => depth += 1,
            ".RE" => depth = depth.saturating_sub(1),
            ".TP" => {
                let tag = lines.next().map(|l| plain_line(l)).unwrap_or_default();
                let entry = Entry { tag, ..Entry::default() };
                match (depth, top.last_mut()) {
                    (0, _) | (_, None) => top.push(entry),
                    (_, Some(parent)) => parent.children.push(entry),
                }
            }
            _ => {
                let text = plain_line(line);
                if let Some(parent) = top.last_mut() {
                    let target = match parent.children.last_mut() {
                        Some(child) if depth > 0 => child,
                        _ => parent,
                    };
                    target.body.push(' ');
                    target.body.push_str(&text);
                }
            }
        }
    }
    top
}

/// Words of a synopsis, with brackets, bars and commas as separators.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | '|' | ',' | '(' | ')' | '<' | '>'))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// The positional arguments of a synopsis, in order: upper-case words that are neither
/// flags nor option values. `@NAME` counts as NAME, `FILE...` as FILE. A redirection
/// such as `< STREAM` counts as an argument too.
fn positionals(synopsis: &str, value_names: &BTreeSet<String>) -> Vec<String> {
    tokens(synopsis)
        .into_iter()
        .filter(|t| !t.starts_with('-'))
        .map(|t| t.trim_start_matches('@').trim_end_matches('.').to_string())
        .filter(|t| {
            t.len() > 1
                && t.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && t != "OPTIONS"
                && !value_names.contains(t)
        })
        .collect()
}

/// The value names of the options, as `positionals` compares them (`@BASE` as BASE).
fn value_names(options: &[HelpOption]) -> BTreeSet<String> {
    options.iter().filter_map(|o| o.value.as_deref()).map(|v| v.trim_start_matches('@').to_string()).collect()
}

/// Whether `text` holds `word` with no word character (or '-') right before or after.
fn has_word(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

// ---------------------------------------------------------------------------------------
// Checks shared by both pages

/// Every option of `help` (but --help/--version when `skip_common`) has an entry in
/// `documented` naming its flags and value, with its default; every documented flag
/// exists in `help`.
fn check_options(what: &str, help: &[HelpOption], documented: &[Entry], skip_common: bool, problems: &mut Vec<String>) {
    for option in help.iter().filter(|o| !(skip_common && o.is_help_or_version())) {
        let entry = documented.iter().find(|e| {
            let tokens = e.tag_tokens();
            option.flags().iter().all(|f| tokens.iter().any(|t| t == f))
        });
        let Some(entry) = entry else {
            problems.push(format!(
                "{what}: option {} is not documented (no .TP entry naming all its flags)",
                option.display()
            ));
            continue;
        };
        if let Some(value) = &option.value
            && !entry.tag_tokens().contains(value)
        {
            problems.push(format!(
                "{what}: option {} takes {value} in --help but the man page's entry is {:?}",
                option.display(),
                entry.tag.trim()
            ));
        }
        if let Some(default) = &option.default {
            let body = entry.body.split_whitespace().collect::<Vec<_>>().join(" ");
            if !has_word(&body, &format!("Default: {default}")) {
                problems.push(format!(
                    "{what}: option {} has default {default} in --help; the man page should say \"Default: {default}.\"",
                    option.display()
                ));
            }
        }
    }
    let known: BTreeSet<&str> = help.iter().flat_map(|o| o.flags()).collect();
    for entry in documented {
        for token in entry.tag_tokens().iter().filter(|t| t.starts_with('-') && t.len() > 1) {
            if !known.contains(token.as_str()) {
                problems.push(format!("{what}: the man page documents {token}, which --help does not show"));
            }
        }
    }
}

/// The synopsis forms `forms` (for a subcommand, just its tag) match --help's usage:
/// form i has the positional arguments of usage form i, in order; every option (bar
/// --help/--version) appears in some form, followed by its value name wherever it does;
/// the forms beyond those of --help name nothing but --help/--version.
fn check_synopsis(what: &str, help: &Help, forms: &[String], problems: &mut Vec<String>) {
    let synopsis = forms.iter().map(|f| f.trim()).collect::<Vec<_>>().join(" | ");
    let words: Vec<String> = forms.iter().flat_map(|f| tokens(f)).collect();
    for option in help.options.iter().filter(|o| !o.is_help_or_version()) {
        let at: Vec<usize> = (0..words.len()).filter(|&i| option.flags().contains(&words[i].as_str())).collect();
        if at.is_empty() {
            problems.push(format!("{what}: the synopsis {synopsis:?} lacks option {}", option.display()));
            continue;
        }
        if let Some(value) = &option.value {
            for &i in at.iter().filter(|&&i| words.get(i + 1) != Some(value)) {
                problems
                    .push(format!("{what}: in the synopsis {synopsis:?}, {} should be followed by {value}", words[i]));
            }
        }
    }
    let values = value_names(&help.options);
    if forms.len() < help.usages.len() {
        problems.push(format!(
            "{what}: --help has {} usage forms {:?} but the synopsis only {} ({synopsis:?})",
            help.usages.len(),
            help.usages,
            forms.len()
        ));
    }
    for (usage, form) in help.usages.iter().zip(forms) {
        let from_help = positionals(usage, &values);
        let from_man = positionals(form, &values);
        if from_help != from_man {
            problems.push(format!(
                "{what}: --help has the arguments {from_help:?} (usage {usage:?}) but the man page {from_man:?} ({:?})",
                form.trim()
            ));
        }
    }
    let common: BTreeSet<&str> =
        help.options.iter().filter(|o| o.is_help_or_version()).flat_map(|o| o.flags()).collect();
    for form in forms.iter().skip(help.usages.len()) {
        let extra: Vec<String> = positionals(form, &values)
            .into_iter()
            .chain(tokens(form).into_iter().filter(|t| t.starts_with('-') && !common.contains(t.as_str())))
            .collect();
        if !extra.is_empty() {
            problems.push(format!(
                "{what}: the synopsis form {:?} is not in --help's usage {:?} and names {extra:?}",
                form.trim(),
                help.usages
            ));
        }
    }
}

fn finish(problems: Vec<String>) {
    assert!(problems.is_empty(), "the man pages do not match --help:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------------------
// The tests

/// The checks for a command without subcommands: OPTIONS against --help's options, the
/// SYNOPSIS forms against its usage. `minimum` are flags that parsing must find and
/// `arguments` the positional arguments of the first usage form, so that a parser bug
/// cannot make the checks vacuous.
fn check_single_command(bin: &str, minimum: &[&str], arguments: &[&str]) {
    let help = parse_help(&run_help(bin, &["--help"]));
    let flags: BTreeSet<&str> = help.options.iter().flat_map(|o| o.flags()).collect();
    for flag in minimum {
        assert!(flags.contains(flag), "parsing {bin} --help found no {flag}: {:?}", help.options);
    }
    assert!(help.commands.is_empty(), "{bin} has no subcommands");
    let values = value_names(&help.options);
    assert_eq!(positionals(&help.usage, &values), arguments, "the arguments of {bin}'s usage {:?}", help.usage);

    let source = man_source(&format!("{bin}.1"));
    let mut problems = Vec::new();
    check_options(bin, &help.options, &entries(&section(&source, "OPTIONS")), false, &mut problems);

    let mut forms = vec![String::new()];
    for line in section(&source, "SYNOPSIS") {
        if line.trim() == ".br" {
            forms.push(String::new());
        } else {
            let form = forms.last_mut().expect("one form");
            form.push(' ');
            form.push_str(&plain_line(line));
        }
    }
    check_synopsis(bin, &help, &forms, &mut problems);
    finish(problems);
}

#[test]
fn snapfmt_man_page_matches_help() {
    check_single_command(
        "snapfmt",
        &["--force", "--history", "--history-reserve", "--compress", "--help", "--version"],
        &["DEVICE"],
    );
}

#[test]
fn snapsend_man_page_matches_help() {
    check_single_command("snapsend", &["-i", "-I", "-n", "-v", "-P", "--help", "--version"], &["SNAP", "DEVICE"]);
}

#[test]
fn snaprecv_man_page_matches_help() {
    check_single_command(
        "snaprecv",
        &["-F", "-n", "--verify", "--dump", "-v", "--help", "--version"],
        &["DEVICE", "STREAM"],
    );
}

#[test]
fn snapctl_man_page_matches_help() {
    let top = parse_help(&run_help("snapctl", &["--help"]));
    for minimum in ["sync", "put", "cat", "ls", "export", "snapshot", "list", "destroy", "status", "check", "history"] {
        assert!(
            top.commands.iter().any(|c| c == minimum),
            "parsing snapctl --help found no {minimum}: {:?}",
            top.commands
        );
    }

    let source = man_source("snapctl.1");
    let mut problems = Vec::new();

    // Global options.
    check_options("snapctl", &top.options, &entries(&section(&source, "OPTIONS")), false, &mut problems);

    // Commands, both ways.
    let documented = entries(&section(&source, "COMMANDS"));
    let documented_names: Vec<String> =
        documented.iter().map(|e| e.tag_tokens().first().cloned().unwrap_or_default()).collect();
    for name in &documented_names {
        if !top.commands.contains(name) {
            problems.push(format!("snapctl: the man page's COMMANDS has {name:?}, which --help does not list"));
        }
    }
    let mut seen_options = BTreeSet::new();
    for command in &top.commands {
        let Some(entry) = documented.iter().find(|e| e.tag_tokens().first() == Some(command)) else {
            problems.push(format!("snapctl: command {command} is not in the man page's COMMANDS"));
            continue;
        };
        let help = parse_help(&subcommand_help("snapctl", command));
        let what = format!("snapctl {command}");
        if help.usage.is_empty() {
            problems.push(format!("{what}: no usage line in its --help"));
        }
        check_options(&what, &help.options, &entry.children, true, &mut problems);
        check_synopsis(&what, &help, std::slice::from_ref(&entry.tag), &mut problems);
        if command != "help" {
            let values = value_names(&help.options);
            if positionals(&help.usage, &values).last().map(String::as_str) != Some("DEVICE") {
                problems.push(format!("{what}: DEVICE is not the last argument in --help: {:?}", help.usage));
            }
        }
        if entry.body.trim().is_empty() {
            problems.push(format!("{what}: the man page's entry has no description"));
        }
        seen_options.extend(help.options.iter().filter_map(|o| o.long.clone()));
        // Every long option appears in the page at all (a simpler net under the above).
        for long in help.options.iter().filter_map(|o| o.long.as_deref()) {
            if !has_word(&entry.all_text(), long) && long != "--help" {
                problems.push(format!("{what}: {long} does not appear in the command's man page entry"));
            }
        }
    }
    for minimum in ["--offset", "--json", "--files", "--keep", "--prune"] {
        assert!(
            seen_options.contains(minimum),
            "parsing snapctl's subcommand help found no {minimum}: {seen_options:?}"
        );
    }
    finish(problems);
}

/// Every long option of every binary's help (or the short flag of an option that has no
/// long one) shows up somewhere in its man page.
#[test]
fn every_long_option_appears_in_its_man_page() {
    let mut problems = Vec::new();
    for (bin, page) in
        [("snapfmt", "snapfmt.1"), ("snapctl", "snapctl.1"), ("snapsend", "snapsend.1"), ("snaprecv", "snaprecv.1")]
    {
        let text: String = man_source(page).lines().map(plain_line).collect::<Vec<_>>().join("\n");
        let top = parse_help(&run_help(bin, &["--help"]));
        let mut helps = vec![(bin.to_string(), top.options.clone())];
        for command in &top.commands {
            if !has_word(&text, command) {
                problems.push(format!("{bin}: command {command} does not appear in {page}"));
            }
            helps.push((format!("{bin} {command}"), parse_help(&subcommand_help(bin, command)).options));
        }
        for (what, options) in helps {
            for flag in options.iter().filter_map(|o| o.long.as_deref().or(o.short.as_deref())) {
                if !has_word(&text, flag) {
                    problems.push(format!("{what}: {flag} does not appear in {page}"));
                }
            }
        }
    }
    finish(problems);
}

#[test]
fn man_pages_parse_as_expected() {
    // The helpers themselves, so that a parser bug cannot make the checks above vacuous.
    let option = parse_option_line("--history <DURATION>  How long [default: 24h]");
    assert_eq!(option.long.as_deref(), Some("--history"));
    assert_eq!(option.value.as_deref(), Some("DURATION"));
    assert_eq!(option.default.as_deref(), Some("24h"));
    let option = parse_option_line("-f, --force   Overwrite");
    assert_eq!(option.flags(), ["-f", "--force"]);
    assert_eq!(plain_line(r"\fBput\fR [\fB\-\-offset\fR \fIBYTES\fR] \fISOURCE\fR"), "put [--offset BYTES] SOURCE");
    assert_eq!(plain_line(".BR snapctl (1),"), "snapctl(1),");
    let values: BTreeSet<String> = ["BYTES".to_string()].into();
    assert_eq!(positionals("put [--offset BYTES] SOURCE PATH DEVICE", &values), ["SOURCE", "PATH", "DEVICE"]);
    assert_eq!(positionals("snapctl ls [-l] [-R] [PATH] DEVICE", &values), ["PATH", "DEVICE"]);
    assert_eq!(positionals("snapshot @NAME DEVICE", &values), ["NAME", "DEVICE"]);
    assert!(has_word("x --history y", "--history"));
    assert!(!has_word("x --history-reserve y", "--history"));
    let lines = [
        ".TP",
        r"\fBls\fR [\fB\-l\fR] \fIDEVICE\fR",
        "List.",
        ".RS",
        ".TP",
        ".B \\-l",
        "Long.",
        ".RE",
        ".TP",
        "cat X",
        "Print.",
    ];
    let parsed = entries(&lines);
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0].children.len(), 1);
    assert_eq!(parsed[0].children[0].tag, "-l");
    assert_eq!(parsed[1].tag, "cat X");

    // A flag added to the CLI but not to the page is caught.
    let fake = parse_help(
        "List snapshots\n\nUsage: snapctl list [OPTIONS] <DEVICE>\n\nArguments:\n  <DEVICE>  \n\n\
         Options:\n      --json  \n      --frob <N>  Frob [default: 3]\n  -h, --help  Print help\n",
    );
    assert_eq!(fake.options.len(), 3);
    let documented = entries(&section(&man_source("snapctl.1"), "COMMANDS"));
    let list = documented.iter().find(|e| e.tag_tokens().first().map(String::as_str) == Some("list")).expect("list");
    let mut problems = Vec::new();
    check_options("fake", &fake.options, &list.children, true, &mut problems);
    check_synopsis("fake", &fake, std::slice::from_ref(&list.tag), &mut problems);
    assert_eq!(problems.iter().filter(|p| p.contains("--frob")).count(), 2, "{problems:?}");

    // Option values written @NAME, and usages of several forms.
    let values: BTreeSet<String> = ["BASE".to_string()].into();
    assert_eq!(positionals("snapsend [-i @BASE | -I @BASE] [-n] @SNAP DEVICE", &values), ["SNAP", "DEVICE"]);
    let option = parse_option_line("-i <@BASE>     Send only what changed");
    assert_eq!(option.value.as_deref(), Some("@BASE"));
    assert_eq!(value_names(&[option]), values);
    let help = parse_help(
        "Apply\n\nUsage: recv [-F] DEVICE < STREAM\n       recv -n [DEVICE] < STREAM\n       recv --dump < STREAM\n\n\
         Arguments:\n  [DEVICE]  Device\n\nOptions:\n  -F  Force\n  -n, --verify  Verify\n      --dump  Dump\n\
         \x20 -h, --help  Print help\n",
    );
    assert_eq!(help.usages, ["recv [-F] DEVICE < STREAM", "recv -n [DEVICE] < STREAM", "recv --dump < STREAM"]);
    assert_eq!(help.usage, help.usages[0]);
    let forms: Vec<String> =
        ["recv [-F] DEVICE < STREAM", "recv -n [DEVICE] < STREAM", "recv --dump < STREAM", "recv -h | --help"]
            .map(String::from)
            .into();
    let mut problems = Vec::new();
    check_synopsis("recv", &help, &forms, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    // A form left out, arguments out of order, an unknown flag in an extra form: all caught.
    check_synopsis("recv", &help, &forms[..1], &mut problems);
    assert!(problems.iter().any(|p| p.contains("--dump")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("usage forms")), "{problems:?}");
    problems.clear();
    let swapped: Vec<String> =
        ["recv [-F] STREAM > DEVICE", "recv -n [DEVICE] < STREAM", "recv --dump < STREAM", "recv -h | --frob"]
            .map(String::from)
            .into();
    check_synopsis("recv", &help, &swapped, &mut problems);
    assert_eq!(problems.len(), 2, "{problems:?}");
}
