//! Inputs shared by the benchmarks: synthetic management groups of a given size.

use opsmgr_model::{Agent, HostName, Inventory, Server, ServerRole};

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
