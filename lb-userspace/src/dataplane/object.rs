//! The XDP object embedded at build time (see build.rs).

use std::borrow::Cow;

/// Why the embedded object cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// build.rs found no object and embedded an empty placeholder.
    #[error(
        "this lb binary was built without its XDP program; build it with `cargo xtask build` \
         (needs bpf-linker: run scripts/install-deps.sh first)"
    )]
    Placeholder,
    /// The object file named by [`OBJECT_ENV`] could not be read.
    #[error("cannot read XDP object {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-ebpf.o"));

/// Environment variable naming an object file to load instead of the embedded one
/// (for trying a freshly built XDP program without relinking `lb`).
pub const OBJECT_ENV: &str = "LB_XDP_OBJECT";

/// The XDP object to load: the file named by [`OBJECT_ENV`] if set, else the embedded one.
/// An empty object is the build's placeholder and is refused.
pub fn xdp_object() -> Result<Cow<'static, [u8]>, ObjectError> {
    let bytes = match std::env::var_os(OBJECT_ENV) {
        Some(path) => Cow::Owned(std::fs::read(&path).map_err(|source| ObjectError::Read {
            path: path.into(),
            source,
        })?),
        None => Cow::Borrowed(OBJECT),
    };
    if bytes.is_empty() {
        Err(ObjectError::Placeholder)
    } else {
        Ok(bytes)
    }
}
