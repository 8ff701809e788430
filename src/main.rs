//! The `ptc-metrics` binary: everything lives in the library (`ptc_metrics::app`).

fn main() {
    std::process::exit(ptc_metrics::app::main());
}
