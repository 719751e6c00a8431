//! The CSV reader against files Windows PowerShell wrote (`Export-Csv` with and without
//! `-NoTypeInformation`, an exported hashtable, and an `Out-File` table saved as `.csv`), kept
//! in `tests/data/windows/csv/` with where each came from (`SOURCES.md`). They are not agent
//! exports (none is public), so each is read for its shape: the `#TYPE` line, quoting and line
//! ends are taken as PowerShell wrote them, and the refusal says what PowerShell did and what
//! to do instead.

#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::path::Path;

use opsmgr_model::inventory::Inventory;

fn servers() -> Inventory {
    Inventory::from_json_str(
        r#"{"management_group": "PROD", "servers": [
            {"name": "RMS.prod.local", "role": "rms"},
            {"name": "MGT01.prod.local", "role": "management"}]}"#,
        "servers.json",
    )
    .unwrap()
}

fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/windows/csv")
        .join(file);
    let bytes = std::fs::read(&path).unwrap();
    Inventory::from_csv_bytes(servers(), &bytes, file)
        .unwrap_err()
        .to_string()
}

#[test]
fn powershell_files_that_are_not_agent_exports_are_told_what_to_do() {
    // `Get-Service | Select-Object name, Status | Export-Csv` (5.1): the #TYPE line skipped,
    // the header read on line 2, the Name column taken for agents' names, no primary column.
    assert_eq!(
        read("export-csv-ps51-selected-servicecontroller.csv"),
        "export-csv-ps51-selected-servicecontroller.csv: line 2: expected a header with the columns Agent (or Name, PrincipalName) and PrimaryManagementServer (or PrimaryManagementServerName), and optionally FailoverManagementServers, found 'Name,Status'; the export has no primary server column: add PrimaryManagementServerName to Select-Object, or write the file with the agent export script"
    );
    // -NoTypeInformation, CRLF: the header on line 1.
    assert!(read("export-csv-notypeinfo-crlf-services.csv").starts_with(
        "export-csv-notypeinfo-crlf-services.csv: line 1: expected a header with the columns"
    ));
    // A hashtable given to Export-Csv: its own properties, named as such.
    assert!(read("export-csv-ps51-hashtable.csv").ends_with(
        "found 'IsReadOnly,IsFixedSize,IsSynchronized,Keys,Values,SyncRoot,Count'; Export-Csv wrote a hashtable's own properties (Keys, Values, Count...): export objects ([PSCustomObject]$hashtable, or the agent export script)"
    ));
    // Out-File's table (UTF-16 LE with a BOM, decoded), saved with a .csv name.
    assert!(
        read("not-export-csv-outfile-utf16le-table.csv").ends_with(
            "; this is a table as Format-Table or Out-File prints it, not CSV: pipe the objects to Export-Csv instead"
        )
    );
}
