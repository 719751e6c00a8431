//! The two pools of servers an agent can report to: a leaf, so that the balancer and the
//! errors it raises both name it.

use std::fmt;

use serde::Serialize;

/// A set of servers that balance agents among themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// Management servers (and the RMS, when the policy includes it): every agent that does
    /// not report to a gateway.
    Management,
    /// Gateway servers: the agents that already report to a gateway.
    Gateway,
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pool::Management => "management",
            Pool::Gateway => "gateway",
        })
    }
}
