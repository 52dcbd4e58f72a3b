//! Compiles proto/weft/v1/*.proto into Rust (client and server) and a descriptor set for
//! gRPC reflection. Needs `protoc` (Debian: protobuf-compiler and libprotobuf-dev).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "weft/v1/common.proto",
        "weft/v1/namespace.proto",
        "weft/v1/link.proto",
        "weft/v1/network.proto",
        "weft/v1/system.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // `build_transport(false)`: the generated `connect` constructor would clash with the
    // NetworkService `Connect` RPC; clients build a Channel themselves.
    tonic_prost_build::configure()
        .build_transport(false)
        .file_descriptor_set_path(out.join("weft_v1_descriptor.bin"))
        .compile_protos(&files, &["."])?;
    Ok(())
}
