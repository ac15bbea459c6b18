//! The XDP object embedded at build time (see build.rs).

/// Why the embedded object cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// build.rs found no object and embedded an empty placeholder.
    #[error(
        "this lb binary was built without its XDP program; build it with `cargo xtask build` \
         (needs bpf-linker: run scripts/install-deps.sh first)"
    )]
    Placeholder,
}

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-ebpf.o"));

/// The embedded object, or [`ObjectError::Placeholder`] when the build had none.
pub fn embedded_object() -> Result<&'static [u8], ObjectError> {
    if OBJECT.is_empty() {
        Err(ObjectError::Placeholder)
    } else {
        Ok(OBJECT)
    }
}
