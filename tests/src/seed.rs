//! A plausible research DAG for explorer tests and benchmarks: a few nodes on three GPU
//! models grow trees from one baseline per model, mostly by exploiting the best results,
//! sometimes exploring older ones; children keep when they beat their parent, some crash.
//! Deterministic for a seed; records come parents first, signed.

use spore_spec::{ExperimentRecord, Identity, JsonNumber, Status};

const GPUS: [&str; 3] = ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "cpu"];
const KNOBS: [(&str, &str, &str); 6] = [
    ("MATRIX_LR", "0.04", "0.05"),
    ("WARMUP_RATIO", "0.0", "0.1"),
    ("DEPTH", "8", "10"),
    ("WEIGHT_DECAY", "0.0", "0.01"),
    ("HEAD_DIM", "128", "64"),
    ("UNEMBEDDING_LR", "0.004", "0.006"),
];

/// A small PRNG (xorshift64*): the seed alone decides the DAG.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Keep {
    id: String,
    depth: i64,
    val_bpb: f64,
}

/// `count` signed records (wire JSON, parents first) from `nodes` node identities.
pub fn research_dag(count: usize, nodes: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let identities: Vec<Identity> =
        (0..nodes.max(1)).map(|i| Identity::from_seed([(i as u8).wrapping_add(seed as u8 ^ 0x5A); 32])).collect();
    let mut keeps: Vec<Vec<Keep>> = GPUS.iter().map(|_| Vec::new()).collect();
    let mut out = Vec::with_capacity(count);
    let start = 1_773_000_000i64;
    for i in 0..count {
        let class = i % GPUS.len();
        let identity = &identities[rng.below(identities.len())];
        let timestamp = start + i as i64 * 3;
        let mut record = crate::records::record(i as i64);
        record.gpu_model = GPUS[class].into();
        record.timestamp = JsonNumber::from(timestamp);
        record.agent_model = "claude-sonnet-4".into();
        if keeps[class].is_empty() {
            let val = [0.998, 1.012, 3.3][class];
            record.val_bpb = JsonNumber::Float(val);
            record.description = "baseline".into();
            let (id, signed) = sign(identity, record);
            out.push(signed);
            keeps[class].push(Keep { id, depth: 0, val_bpb: val });
            continue;
        }
        // Exploit one of the ten best so far, or explore any earlier keep.
        let pool = &keeps[class];
        let parent = if rng.unit() < 0.6 {
            let mut best: Vec<usize> = (0..pool.len()).collect();
            best.sort_by(|&a, &b| pool[a].val_bpb.total_cmp(&pool[b].val_bpb));
            best[rng.below(best.len().min(10))]
        } else {
            rng.below(pool.len())
        };
        let parent = &pool[parent];
        let (knob, from, to) = KNOBS[rng.below(KNOBS.len())];
        record.parent = Some(parent.id.clone());
        record.depth = JsonNumber::from(parent.depth + 1);
        record.description = format!("set {knob} from {from} to {to}");
        record.hypothesis = format!("{knob} at {to} should train faster in the fixed budget");
        record.diff = format!(
            "--- a/train.py\n+++ b/train.py\n@@ -{line},1 +{line},1 @@\n-{knob} = {from}\n+{knob} = {to}\n",
            line = 30 + rng.below(60)
        );
        let roll = rng.unit();
        let (status, val) = if roll < 0.05 {
            (Status::Crash, 0.0)
        } else {
            // Most changes hurt a little; some help, less as the result gets better.
            let delta = (rng.unit() - 0.8) * 0.01;
            let val = parent.val_bpb - delta;
            (if val < parent.val_bpb { Status::Keep } else { Status::Discard }, val)
        };
        record.status = status;
        record.val_bpb = JsonNumber::Float(val);
        let parent_depth = parent.depth;
        let (id, signed) = sign(identity, record);
        if status == Status::Keep {
            keeps[class].push(Keep { id, depth: parent_depth + 1, val_bpb: val });
        }
        out.push(signed);
    }
    out
}

/// Signs; returns the CID and the wire JSON.
fn sign(identity: &Identity, mut record: ExperimentRecord) -> (String, String) {
    identity.sign_record(&mut record);
    let mut wire = Vec::new();
    record.write_wire_payload(&mut wire);
    (record.id, String::from_utf8(wire).unwrap_or_default())
}
