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
    git_commit();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // `build_transport(false)`: the generated `connect` constructor would clash with the
    // NetworkService `Connect` RPC; clients build a Channel themselves.
    tonic_prost_build::configure()
        .build_transport(false)
        .file_descriptor_set_path(out.join("weft_v1_descriptor.bin"))
        .compile_protos(&files, &["."])?;
    lean_descriptor_set(&out)?;
    Ok(())
}

/// The descriptor set again without its source info (the .proto files' comments and
/// positions): what the CLI needs for JSON and templates, a sixth of the bytes, and half
/// the time to load in a process that prints one answer.
fn lean_descriptor_set(out: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use prost::Message;
    let full = std::fs::read(out.join("weft_v1_descriptor.bin"))?;
    let mut set = prost_types::FileDescriptorSet::decode(full.as_slice())?;
    for f in &mut set.file {
        f.source_code_info = None;
    }
    std::fs::write(out.join("weft_v1_descriptor_lean.bin"), set.encode_to_vec())?;
    Ok(())
}

/// The commit weft is built from (`WEFT_GIT_COMMIT`, 12 hex digits; `unknown` outside a git
/// checkout, as in the Containerfile's copy), for `weftd --version`, `weft version` and
/// GetSystemInfo. `git` here runs at build time only. Uncommitted changes are not marked:
/// watching the index would rebuild the workspace on every `git add`.
fn git_commit() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) if !c.is_empty() => c,
        _ => "unknown".to_string(),
    };
    println!("cargo:rustc-env=WEFT_GIT_COMMIT={commit}");
    // Build again when HEAD moves (a commit, a checkout).
    for path in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path])
            && std::path::Path::new(&p).exists()
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = git(&["rev-parse", "--git-path", &r])
        && std::path::Path::new(&p).exists()
    {
        println!("cargo:rerun-if-changed={p}");
    }
}
