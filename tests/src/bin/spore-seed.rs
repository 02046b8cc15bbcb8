//! `spore-seed`: prints a plausible research DAG as signed wire records, one per line, parents
//! first, for `spore record import` (explorer tests and benchmarks).
//!
//!     spore-seed --records 100000 --nodes 8 --seed 1 > dag.jsonl

use std::io::Write;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Print a plausible signed research DAG, one wire record per line")]
struct Args {
    #[arg(long, default_value_t = 1000)]
    records: usize,
    #[arg(long, default_value_t = 8)]
    nodes: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in spore_tests::seed::research_dag(args.records, args.nodes, args.seed) {
        writeln!(out, "{line}")?;
    }
    out.flush()
}
