//! Test support: network namespaces with guaranteed cleanup, the CI skip policy, the
//! location of the `lb` binary under test, and running it as a user would.

pub mod daemon;
pub mod demo;
pub mod netns;
pub mod require;
