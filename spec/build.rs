//! With the `grpc` feature: compiles `proto/spore/agent/v1/agent.proto` with protox (pure Rust,
//! no protoc) and generates the tonic client and server, plus the descriptor set for reflection.

fn main() {
    #[cfg(feature = "grpc")]
    grpc::generate();
}

#[cfg(feature = "grpc")]
mod grpc {
    use std::path::PathBuf;

    const PROTO: &str = "proto/spore/agent/v1/agent.proto";

    pub fn generate() {
        println!("cargo:rerun-if-changed={PROTO}");
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        let descriptors = protox::compile([PROTO], ["proto"]).expect("agent.proto compiles");
        let path = out.join("agent_descriptor.bin");
        std::fs::write(&path, protox::prost::Message::encode_to_vec(&descriptors)).expect("write the descriptor set");
        tonic_prost_build::configure()
            .skip_protoc_run()
            .file_descriptor_set_path(&path)
            .compile_protos(&[PROTO], &["proto"])
            .expect("generate the gRPC code");
    }
}
