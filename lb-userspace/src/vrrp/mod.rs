//! Membership: VRRPv3 (RFC 5798) on the wire, so `lb` nodes elect a master among
//! themselves and with keepalived.
//!
//! Split by concern: [`packet`] (bytes and the receive checks), [`state`] (the RFC state
//! machine, pure and clock-injected).

pub mod packet;
pub mod state;
