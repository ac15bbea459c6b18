//! The runtime admin API: HAProxy's stats-socket style line protocol on a Unix socket
//! (mode 0600), and the `lb` CLI as its client.
//!
//! [`protocol`] parses and frames (pure, never panics), [`server`] owns the socket and
//! dispatches parsed commands to the daemon's [`AdminHandler`] (the daemon turns them into
//! state changes: DESIGN.md, "One flow of state"), [`client`] is the CLI side.

pub mod client;
pub mod protocol;
pub mod server;

#[cfg(test)]
mod tests;

pub use client::{request, ClientError, Reply};
pub use protocol::{
    parse, AdminCommand, AdminState, ForcedHealth, OutputFormat, ParseError, ServerRef, VipFilter,
    Weight,
};
pub use server::{
    AdminError, AdminHandler, AdminOptions, AdminServer, AdminServerError, BoxFuture,
};
