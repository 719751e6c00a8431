//! The agent's side of enrollment, beyond its stores ([`crate::store`]): the installer bundle
//! the CA hands each agent ([`write_bundle`], [`read_bundle`]) and its installation
//! ([`install_bundle`]: the checks, certreq -accept, the root trusted, MOMCertImport's choice
//! recorded); MOMCertImport's choice of the channel certificate ([`select_channel_certificate`]
//! over a machine's stores, [`choose_channel_certificate`] over certificates the caller brings,
//! each refusal named by a [`Refusal`]); and the settings it records, as the agent keeps them in
//! the registry ([`AgentSettings`]).

mod bundle;
mod channel;

/// What a machine trusts (its `Root` store's roots and CRLs), as the checks here take it.
pub use crate::store::Trust;
pub use bundle::{
    BUNDLE_LABEL, Bundle, Installed, MAX_BUNDLE_BYTES, accept_certificate, install_bundle,
    pin_matches, read_bundle, write_bundle,
};
pub use channel::{
    AGENT_SETTINGS, AgentSettings, Candidate, Held, KeyState, NoChannel, Refusal, Selection,
    channel_identity, channel_serial_number, choose_channel_certificate, held_certificates,
    select_channel_certificate,
};
