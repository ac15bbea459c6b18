//! Health checks with HAProxy's semantics: active probes (TCP connect or an HTTP status
//! line), the rise/fall counter, passive observation of real traffic, forced states, and
//! the slowstart weight ramp.
//!
//! Split by concern: [`counter`] (the pure rise/fall state machine), [`check`] (one
//! probe, no state), [`observe`] (passive error counting), [`task`] (one tokio task per
//! server tying them together), [`slowstart`] (pure weight ramp). Nothing here touches the
//! proxy or BPF maps: state changes leave as [`HealthEvent`]s for the state manager
//! (DESIGN.md, "One flow of state").

pub mod check;
pub mod counter;
pub mod observe;
pub mod slowstart;
pub mod task;

pub use check::{
    CheckError, CheckOutcome, CheckStatus, HttpCheck, HttpVersion, Probe, ProbeTimeouts,
};
pub use counter::{HealthCounter, HealthState, Intervals, Phase, Transition, Verdict};
pub use observe::{ObserveLayer, ObserveSettings, ObservedEvent, Observer, OnError};
pub use slowstart::{slowstart_active, slowstart_weight};
pub use task::{
    format_no_server_available, format_state_change, spawn, Cause, CheckSettings, CheckSpec,
    CsvColumns, HealthError, HealthEvent, HealthHandle, HealthStats,
};
