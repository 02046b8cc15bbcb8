//! `spore-spec`: the Spore Mesh protocol as code, byte-compatible with `sporemesh` 0.1.2.
//!
//! Pure: no sockets, files or clocks (time is passed in). Layout:
//! - [`json`] reads JSON as Python's `json.loads` does (int vs float kept, `NaN` accepted);
//! - [`number`] holds a number with its Python type and writes `repr(float)`;
//! - [`encode`] writes JSON as Python's `json.dumps(ensure_ascii=True)` does;
//! - [`record`] is the `ExperimentRecord` and its canonical bytes;
//! - [`cid`], [`identity`], [`verify`] and [`batch`] are content addressing, keys and signatures;
//! - [`validate`] holds our checks beyond Python's (rejections vs flags);
//! - [`message`] and [`frame`] are the wire: typed messages and the length-prefixed framing.
//!
//! `protocol.md` beside this crate describes the protocol as implemented, and `vectors/` holds
//! the records and messages produced by the real Python code that the tests check against.

pub mod batch;
pub mod cid;
pub mod control;
pub mod encode;
pub mod frame;
pub mod gpu_class;
pub mod handshake;
pub mod identity;
pub mod json;
pub mod message;
pub mod number;
pub mod record;
pub mod task;
pub mod validate;
pub mod verify;
pub mod verify_chunk;

pub use cid::cid_of;
pub use control::{ControlError, ControlEvent, ControlKind};
pub use gpu_class::gpu_class;
pub use identity::Identity;
pub use message::Message;
pub use number::JsonNumber;
pub use record::{ExperimentRecord, RecordError, Status};
pub use task::{TaskError, TaskFields, TaskManifest};
pub use validate::{Flag, ValidationError, ValidationPolicy, validate};
pub use verify::{KeyCache, VerifyError, verify_record};

/// The gRPC AgentService (`proto/spore/agent/v1/agent.proto`): messages, client and server.
#[cfg(feature = "grpc")]
pub mod grpc {
    #![allow(missing_debug_implementations, clippy::unwrap_used)]
    tonic::include_proto!("spore.agent.v1");

    /// The encoded descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/agent_descriptor.bin"));
}
