//! Test support: network namespaces with guaranteed cleanup, the CI skip policy, the
//! location of the `lb` binary under test, running it as a user would, and the L4 lab
//! (topology pieces, backend servers, long-lived streams) the end-to-end tests share.

pub mod backend;
pub mod daemon;
pub mod demo;
pub mod http_backend;
pub mod l4lab;
pub mod netns;
pub mod procfs;
pub mod require;
pub mod stream;
