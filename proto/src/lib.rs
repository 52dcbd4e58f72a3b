//! weft's public gRPC contract, package `weft.v1`, generated from `proto/weft/v1/*.proto`.
//!
//! The `.proto` files are the documentation of record; this crate only re-exports the code
//! tonic generates from them, plus the encoded file descriptor set that gRPC reflection serves.
#![allow(missing_docs)]

/// Package `weft.v1`: messages, the three services' servers and clients.
pub mod v1 {
    tonic::include_proto!("weft.v1");
}

/// The commit weft was built from: 12 hex digits, or `unknown` outside a git checkout.
pub const GIT_COMMIT: &str = env!("WEFT_GIT_COMMIT");

/// `<version> (commit <GIT_COMMIT>)`: what `weftd --version` and `weft --version` print.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("WEFT_GIT_COMMIT"),
    ")"
);

/// The encoded `FileDescriptorSet` of every weft.v1 file, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("weft_v1_descriptor");

/// [`FILE_DESCRIPTOR_SET`] without source info (comments, positions): the same messages,
/// fields and names, for programs that only need those (the CLI's JSON and templates).
pub const FILE_DESCRIPTOR_SET_LEAN: &[u8] =
    tonic::include_file_descriptor_set!("weft_v1_descriptor_lean");

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_types::FileDescriptorSet;

    /// The lean set is the full one without source info, and nothing else left out.
    #[test]
    fn the_lean_descriptor_set_is_the_full_one_without_source_info() {
        let full = FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap();
        let lean = FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET_LEAN).unwrap();
        assert!(full.file.iter().all(|f| f.source_code_info.is_some()));
        assert!(lean.file.iter().all(|f| f.source_code_info.is_none()));
        let mut stripped = full.clone();
        for f in &mut stripped.file {
            f.source_code_info = None;
        }
        assert_eq!(lean, stripped);
        assert!(
            lean.file
                .iter()
                .any(|f| f.message_type.iter().any(|m| m.name() == "Endpoint"))
        );
    }
}
