//! Inputs shared by the benchmarks: synthetic management groups of a given size.

use opsmgr_model::HostName;
use opsmgr_model::inventory::{Agent, Inventory, Server, ServerRole};

fn host(name: String) -> HostName {
    match HostName::new(name) {
        Ok(h) => h,
        Err(e) => panic!("benchmark host names are valid: {e}"),
    }
}

/// A management group after a bulk install: an unreachable RMS, `servers` management servers,
/// and `agents` agents all on the first management server without failovers.
pub fn bulk_install(agents: usize, servers: usize) -> Inventory {
    let mut list = vec![Server {
        agent_reachable: false,
        ..Server::new(host("RMS.prod.local".into()), ServerRole::Rms)
    }];
    list.extend((1..=servers).map(|i| {
        Server::new(
            host(format!("MGT{i:02}.prod.local")),
            ServerRole::Management,
        )
    }));
    let first = list[1].name.clone();
    Inventory {
        management_group: "PROD".into(),
        servers: list,
        agents: (0..agents)
            .map(|i| Agent {
                name: host(format!("server{i:07}.company.local")),
                primary: Some(first.clone()),
                failover: Vec::new(),
            })
            .collect(),
    }
}

/// The SCOM-shaped `rsreportserver.config` fixture grown to at least `size` bytes by more
/// rendering extensions (CRLF and tabs, like the real file), with its two `ServerName`
/// values naming `RMS.prod.local`.
pub fn big_reporting_config(size: usize) -> Vec<u8> {
    let base = include_str!("../crates/configfix/tests/data/rsreportserver.config");
    let anchor = "\t\t</Render>\r\n";
    let Some(at) = base.find(anchor) else {
        panic!("the fixture has a </Render> element");
    };
    let mut out = String::with_capacity(size + base.len());
    out.push_str(&base[..at]);
    let mut i = 0;
    while out.len() + base.len() - at < size {
        out.push_str(&format!(
            "\t\t\t<Extension Name=\"PAD{i}\" Type=\"Contoso.Rendering.Pad{i}Renderer,Contoso.Rendering\" Visible=\"false\">\r\n\t\t\t\t<Configuration>\r\n\t\t\t\t\t<DeviceInfo><OutputFormat>PNG</OutputFormat><Note>a &amp; b</Note></DeviceInfo>\r\n\t\t\t\t</Configuration>\r\n\t\t\t</Extension>\r\n"
        ));
        i += 1;
    }
    out.push_str(&base[at..]);
    out.into_bytes()
}
