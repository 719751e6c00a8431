//! PowerShell as a real grammar reads it (tree-sitter-powershell): the scripts we write must
//! parse with no ERROR or MISSING node; and, for the shells of 2007 R2 and Windows Server 2008
//! R2, a check of the tokens PowerShell 1.0 does not know (the grammar is modern PowerShell).

#![allow(
    dead_code,
    reason = "each test binary uses its own part of this module"
)]

use tree_sitter::{Node, Parser, Tree};

/// The script's syntax tree.
pub(crate) fn parse(script: &str) -> Tree {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .expect("the grammar loads");
    parser.parse(script, None).expect("the parser runs")
}

/// Every ERROR or MISSING node, with its line and text.
pub(crate) fn faults(script: &str) -> Vec<String> {
    let tree = parse(script);
    let mut out = Vec::new();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            out.push(format!(
                "{} at line {}: {:?}",
                if node.is_missing() {
                    "MISSING"
                } else {
                    "ERROR"
                },
                node.start_position().row + 1,
                &script[node.byte_range()]
            ));
        }
        let mut cursor = node.walk();
        stack.extend(node.children(&mut cursor));
    }
    out
}

/// Every node of `kind` below `node`.
pub(crate) fn find<'t>(node: Node<'t>, kind: &str, out: &mut Vec<Node<'t>>) {
    if node.kind() == kind {
        out.push(node);
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        find(child, kind, out);
    }
}

/// Cmdlets, keywords, variables and operators PowerShell 1.0 does not have.
pub(crate) const NOT_IN_POWERSHELL_1: [&str; 22] = [
    "set-strictmode",
    "add-type",
    "try",
    "catch",
    "finally",
    "cmdletbinding",
    "parameter",
    "$psscriptroot",
    "$pscmdlet",
    "$psboundparameters",
    "-join",
    "-split",
    "-in",
    "-notin",
    "import-module",
    "invoke-command",
    "new-module",
    "convertto-json",
    "convertfrom-json",
    "out-null",
    "pscustomobject",
    "ordered",
];

/// The tokens of `script`'s code (comments left out) that PowerShell 1.0 does not know.
pub(crate) fn not_in_powershell_1(script: &str) -> Vec<String> {
    let code: String = script
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '$' || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .filter(|w| NOT_IN_POWERSHELL_1.contains(&w.as_str()))
        .collect()
}
