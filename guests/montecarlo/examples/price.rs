//! Prices an option natively, every slice in turn in one thread, and says how long it took:
//! the same computation as the `pricer` component's task graph, without ArmoniK.
//!
//! ```text
//! cargo run --release -p montecarlo --example price --target x86_64-unknown-linux-gnu -- assets=1 paths=1000000 slices=8
//! ```
//!
//! The arguments are the `key=value` parameters of `montecarlo::Params` (all optional).
//! Prints the pricer's report line, then the Black–Scholes price (single asset) or bound
//! (basket) and the time taken.

use std::process::ExitCode;
use std::time::Instant;

use montecarlo::{Params, black_scholes, simulate};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let params = match Params::parse(&args.join(" ")) {
        Ok(params) => params,
        Err(e) => {
            eprintln!("price: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let estimate = simulate(&params).estimate();
    let elapsed = start.elapsed();
    println!("{}", estimate.report_line(&params));
    let closed_form = if params.assets == 1 {
        "black_scholes"
    } else {
        "black_scholes (upper bound)"
    };
    println!("{closed_form}={:.6}", black_scholes(&params));
    println!(
        "time={:.3}s ({:.1} ns/path)",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e9 / params.paths as f64
    );
    ExitCode::SUCCESS
}
