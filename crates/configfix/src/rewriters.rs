//! The two rewriters the RMS move needs.

use crate::document::{Compare, Document, Edit, EditOptions, Expect};
use crate::error::{Error, Result};
use crate::target::Target;

/// Where the OpsMgr reporting extensions keep the management server's name in
/// `rsreportserver.config`: under `Configuration/Extensions`, the Security extension's and the
/// Authentication extension's configuration. (Not the top-level `Configuration/Authentication`,
/// which holds authentication types.)
pub const REPORTING_TARGETS: [&str; 2] = [
    "Configuration/Extensions/Security/Extension/Configuration/ServerName",
    "Configuration/Extensions/Authentication/Extension/Configuration/ServerName",
];

/// Where the Web Console's `Web.config` names its management server.
pub const WEBCONSOLE_TARGET: &str = "configuration/appSettings/add[@key='MOMServer']/@value";

/// How many `ServerName` values a reporting server has with the OpsMgr extensions.
pub const REPORTING_EXPECTED: usize = 2;

/// Points `rsreportserver.config` at `new_rms`: every `ServerName` of the reporting
/// extensions, which must be exactly `expect` (normally [`REPORTING_EXPECTED`]). With `from`,
/// only values naming that server change (compare-and-swap); values already naming `new_rms`
/// stay. Host names compare case-insensitively.
pub fn reporting(doc: &Document, new_rms: &str, from: Option<&str>, expect: usize) -> Result<Edit> {
    let targets = REPORTING_TARGETS
        .iter()
        .map(|t| t.parse())
        .collect::<Result<Vec<Target>>>()?;
    host_edit(doc, &targets, new_rms, from, Expect::Exactly(expect))
}

/// Points the Web Console's `Web.config` at `new_rms`: its one `MOMServer` setting.
pub fn webconsole(doc: &Document, new_rms: &str, from: Option<&str>) -> Result<Edit> {
    let target: Target = WEBCONSOLE_TARGET.parse()?;
    host_edit(doc, &[target], new_rms, from, Expect::Exactly(1))
}

fn host_edit(
    doc: &Document,
    targets: &[Target],
    new_rms: &str,
    from: Option<&str>,
    expect: Expect,
) -> Result<Edit> {
    check_host_name(new_rms)?;
    let options = EditOptions {
        expect,
        from: from.map(str::to_owned),
        compare: Compare::IgnoreAsciiCase,
    };
    doc.edit(targets, new_rms, &options)
}

/// Refuses a value that is not a DNS host name (the workspace's one rule,
/// [`opsmgr_hostname::HostName`]: letters, digits and hyphens in labels of at most 63
/// characters, at most 253 in all): a management server's name is written only when it is one.
pub fn check_host_name(name: &str) -> Result<()> {
    opsmgr_hostname::HostName::new(name)
        .map(|_| ())
        .map_err(|e| Error::InvalidValue {
            value: name.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_checked_before_writing() {
        assert!(check_host_name("MGT01.prod.local").is_ok());
        for bad in ["", "a..b", "-a.b", "a b", "x/../y", "a.b.", &"a".repeat(64)] {
            assert!(check_host_name(bad).is_err(), "{bad:?}");
        }
    }
}
