//! A small checker of the cmd.exe batch files we write, for the mistakes that make one run
//! differently from how it reads: no interpreter of cmd.exe runs here, so its rules are
//! checked instead. Each fault names its line.
//!
//! - CRLF line ends and ASCII only (cmd.exe reads the OEM code page);
//! - double quotes balanced on each line (an odd one carries `& | < >` into the open);
//! - every `%` part of `%%` (a `for` variable, `%%a`, `%%~$PATH:m`), `%NAME%` or
//!   `%NAME:x=y%`, `%~1`, `%~dp0`, `%~nx0`, `%1`: a stray `%` eats text up to the next one;
//! - every `%NAME%` set by the script or one of Windows' own (`TEMP`, `DATE`, `TIME`,
//!   `RANDOM`, `PATH`);
//! - parentheses balanced outside quotes, and no `)` in an unquoted `echo` inside a block
//!   (it would close the block);
//! - every `goto :x` and `call :x` has its `:x`; `exit` always as `exit /b`;
//! - consecutive `if errorlevel N` tests in descending order (`errorlevel N` means N or more:
//!   ascending, the first one catches every later case);
//! - `setlocal` before the first `set`;
//! - a `certutil` or `certreq` command judged by `if not "%errorlevel%"=="0"` on the next
//!   line: they fail with HRESULTs (`0x80092004` is -2146885628), negative exit codes that
//!   `if errorlevel 1` (1 or more) lets through as success;
//! - no `%errorlevel%` inside a parenthesised block (it is expanded when the block is read,
//!   before any command in it ran).

#![allow(
    dead_code,
    reason = "each test binary uses its own part of this module"
)]

use std::collections::HashSet;

const WINDOWS_VARIABLES: [&str; 7] = [
    "TEMP",
    "DATE",
    "TIME",
    "RANDOM",
    "PATH",
    "ERRORLEVEL",
    "COMPUTERNAME",
];

/// Every fault of `script`, with its line number.
pub(crate) fn cmd_faults(script: &str) -> Vec<String> {
    let mut faults = Vec::new();
    if !script.is_ascii() {
        faults.push("not ASCII".to_owned());
    }
    let lines: Vec<&str> = script.split("\r\n").collect();
    if script.replace("\r\n", "").contains('\n') {
        faults.push("a line ends with LF alone, not CRLF".to_owned());
    }
    let labels: HashSet<String> = lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix(':'))
        .map(|l| {
            l.split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
        })
        .collect();
    let mut set_vars: HashSet<String> = HashSet::new();
    for line in &lines {
        let lower = line.to_ascii_lowercase();
        for part in lower.split("set \"").skip(1) {
            if let Some(name) = part.split('=').next() {
                set_vars.insert(name.trim().to_ascii_uppercase());
            }
        }
    }
    let mut depth: i32 = 0;
    let mut seen_setlocal = false;
    let mut last_errorlevel: Option<(usize, u32)> = None;
    let mut hresult_tool: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let trimmed = line.trim_start();
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("rem ") || lower == "rem" || trimmed.starts_with("::") {
            continue;
        }
        if line.matches('"').count() % 2 != 0 {
            faults.push(format!("line {n}: unbalanced double quotes: {line}"));
        }
        check_percent(line, n, &set_vars, &mut faults);
        if let Some(tool_line) = hresult_tool.take()
            && !lower.starts_with("if not \"%errorlevel%\"==\"0\"")
        {
            faults.push(format!(
                "line {n}: line {tool_line}'s certutil or certreq is not judged by if not \"%errorlevel%\"==\"0\" (its HRESULT failures are negative exit codes, which if errorlevel 1 takes for success)"
            ));
        }
        if (lower.starts_with("certutil ") || lower.starts_with("certreq "))
            && !lower.contains("| findstr")
        {
            hresult_tool = Some(n);
        }
        if depth > 0 && lower.contains("%errorlevel%") {
            faults.push(format!(
                "line {n}: %errorlevel% inside a block is expanded when the block is read"
            ));
        }
        // Parentheses outside quotes. An echo's text is literal, except that inside a block
        // its first unquoted ')' closes the block (which is how a stray one breaks a script:
        // what follows it is read as code), and '&' starts the next command.
        let chars: Vec<char> = trimmed.chars().collect();
        let mut quoted = false;
        let mut echoing = false;
        let mut at_command = true;
        let mut k = 0;
        while k < chars.len() {
            let c = chars[k];
            if c == '"' {
                quoted = !quoted;
            } else if !quoted {
                if echoing {
                    match c {
                        ')' if depth > 0 => {
                            depth -= 1;
                            echoing = false;
                        }
                        '&' | '|' => {
                            echoing = false;
                            at_command = true;
                        }
                        _ => {}
                    }
                } else {
                    let word: String = chars[k..]
                        .iter()
                        .take(5)
                        .collect::<String>()
                        .to_ascii_lowercase();
                    if at_command
                        && (word.starts_with("echo ")
                            || word.starts_with("echo(")
                            || word == "echo")
                    {
                        echoing = true;
                        k += 4;
                        if chars.get(k) == Some(&'(') {
                            k += 1;
                        }
                        continue;
                    }
                    let redirect = k > 0 && matches!(chars[k - 1], '>' | '<');
                    match c {
                        '(' => {
                            depth += 1;
                            at_command = true;
                        }
                        ')' => depth -= 1,
                        // `>&1` is a redirection, not the next command.
                        '&' if redirect => {}
                        '&' | '|' => at_command = true,
                        // A redirection before the command (`>>"%LOG%" echo ...`) keeps it
                        // at the command's start.
                        ' ' | '@' | '>' | '<' => {}
                        _ => at_command = false,
                    }
                    if depth < 0 {
                        faults.push(format!("line {n}: a ')' closes nothing"));
                        depth = 0;
                    }
                }
            }
            k += 1;
        }
        for word in ["goto ", "call "] {
            for part in lower.split(word).skip(1) {
                if let Some(target) = part.trim().strip_prefix(':') {
                    let end = target
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(target.len());
                    let target = &target[..end];
                    if target != "eof" && !labels.contains(target) {
                        faults.push(format!("line {n}: no label :{target}"));
                    }
                }
            }
        }
        if lower.contains("exit") {
            for part in lower.split("exit").skip(1) {
                if !part.starts_with(" /b") {
                    faults.push(format!("line {n}: exit without /b leaves cmd.exe itself"));
                }
            }
        }
        if lower.starts_with("setlocal") {
            seen_setlocal = true;
        }
        if (lower.starts_with("set ") || lower.contains("& set ") || lower.contains("(set "))
            && !seen_setlocal
        {
            faults.push(format!(
                "line {n}: set before setlocal changes the caller's environment"
            ));
        }
        if let Some(level) = errorlevel_test(&lower) {
            if let Some((prev_line, prev)) = last_errorlevel
                && prev_line + 1 == n
                && level > prev
            {
                faults.push(format!(
                    "line {n}: if errorlevel {level} after errorlevel {prev}: the earlier test catches it"
                ));
            }
            last_errorlevel = Some((n, level));
        }
    }
    if depth != 0 {
        faults.push(format!("{depth} parentheses left open at the end"));
    }
    faults
}

/// The text of `line` outside double quotes.
fn unquoted(line: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in line.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// N of an `if [not] errorlevel N` test at the start of a command.
fn errorlevel_test(lower: &str) -> Option<u32> {
    let rest = lower.strip_prefix("if ")?;
    let rest = rest.strip_prefix("not ").unwrap_or(rest);
    rest.strip_prefix("errorlevel ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn check_percent(line: &str, n: usize, set_vars: &HashSet<String>, faults: &mut Vec<String>) {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        let rest = &line[i + 1..];
        if let Some(r) = rest.strip_prefix('%') {
            // %% : a for variable (%%a, %%~$PATH:m, %%~dpa) or a literal percent.
            let len = if let Some(m) = r.strip_prefix("~$") {
                2 + m.find(':').map_or(0, |c| c + 2)
            } else if let Some(m) = r.strip_prefix('~') {
                1 + m.chars().take_while(|c| c.is_ascii_alphabetic()).count()
            } else {
                usize::from(r.starts_with(|c: char| c.is_ascii_alphabetic()))
            };
            i += 2 + len;
            continue;
        }
        if let Some(r) = rest.strip_prefix('~') {
            // Modifier letters, then the argument's digit: %~1, %~dp0, %~nx0.
            let letters = r.chars().take_while(|c| "fdpnxsatz".contains(*c)).count();
            if !r[letters..].starts_with(|c: char| c.is_ascii_digit()) {
                faults.push(format!(
                    "line {n}: a %~ without its argument number: {line}"
                ));
            }
            i += 3 + letters;
            continue;
        }
        if rest.starts_with(|c: char| c.is_ascii_digit() || c == '*') {
            i += 2;
            continue;
        }
        match rest.find('%') {
            Some(end) => {
                let body = &rest[..end];
                let name = body.split(':').next().unwrap_or("");
                let valid =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    faults.push(format!("line {n}: '%{body}%' is no variable: {line}"));
                } else if !set_vars.contains(&name.to_ascii_uppercase())
                    && !WINDOWS_VARIABLES.contains(&name.to_ascii_uppercase().as_str())
                {
                    faults.push(format!("line {n}: %{name}% is never set"));
                }
                i += end + 2;
            }
            None => {
                faults.push(format!("line {n}: a stray %: {line}"));
                i += 1;
            }
        }
    }
}

#[test]
fn the_checker_finds_what_it_looks_for() {
    let ok = "@echo off\r\nsetlocal\r\nset \"A=1\"\r\nif errorlevel 1 (set \"B=%A%\" & goto :x)\r\n:x\r\nexit /b 0\r\n";
    assert_eq!(cmd_faults(ok), Vec::<String>::new());
    for (bad, why) in [
        ("set \"A=1\"\r\nsetlocal\r\n", "set before setlocal"),
        ("setlocal\r\necho \"a\r\n", "unbalanced double quotes"),
        ("setlocal\r\necho 50%\r\n", "stray %"),
        ("setlocal\r\necho %NOPE%\r\n", "never set"),
        ("setlocal\r\n(\r\necho a)b)\r\n", "closes nothing"),
        ("setlocal\r\ngoto :missing\r\n", "no label :missing"),
        ("setlocal\r\nexit 3\r\n", "exit without /b"),
        (
            "setlocal\r\nif errorlevel 1 goto :a\r\nif errorlevel 2 goto :a\r\n:a\r\n",
            "the earlier test catches it",
        ),
        ("setlocal\r\n(\r\n", "left open"),
        (
            "setlocal\r\ncertreq -accept -q a.cer\r\nif errorlevel 1 goto :eof\r\n",
            "takes for success",
        ),
        (
            "setlocal\r\n(\r\n  certutil -f x\r\n  if not \"%errorlevel%\"==\"0\" goto :eof\r\n)\r\n",
            "expanded when the block is read",
        ),
        ("setlocal\nexit /b 0\r\n", "CRLF"),
    ] {
        let faults = cmd_faults(bad);
        assert!(
            faults.iter().any(|f| f.contains(why)),
            "{bad:?}: {faults:?}"
        );
    }
}
