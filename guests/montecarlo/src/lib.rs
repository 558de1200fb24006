//! `montecarlo`: the numerical kernel of the `pricer` guest, a Monte Carlo pricer of
//! European options on a basket of correlated assets.
//!
//! It has no dependencies and does no I/O, so the very same code runs inside the WebAssembly
//! component and natively (benchmarks, tests, the `price` example).
//!
//! # Model
//!
//! The option is European, on the arithmetic average of `assets` identical assets (same
//! spot `S₀`, same volatility `σ`), each a geometric Brownian motion under the risk-neutral
//! measure:
//!
//! ```text
//! S_i(T) = S₀ · exp((r − σ²/2)·T + σ·√T·Z_i)          i = 1..assets
//! Z_i    = √ρ · M + √(1 − ρ) · ε_i                      M, ε_i independent N(0, 1)
//! payoff = max(A − K, 0) (call) or max(K − A, 0) (put)  A = (S_1(T) + ... + S_n(T)) / n
//! ```
//!
//! The one-factor model gives every pair of assets the correlation `ρ` (`corr`). With
//! `assets = 1` the option is a plain Black–Scholes European option, whose closed form
//! [`black_scholes`] gives, which the tests use to check the simulation.
//!
//! # Simulation
//!
//! The `paths` of [`Params`] are split into `slices` independent slices ([`simulate_slice`]),
//! meant to run as separate tasks: the first `paths % slices` slices simulate one path more
//! than the others. Each slice draws from its own stream of a xoshiro256++ generator
//! ([`Rng`]), seeded through splitmix64 from `(seed, slice index)`, so a slice's result only
//! depends on the parameters and its index (bit for bit, on a given platform: the last bits
//! of `exp`/`ln` may differ between math libraries). Standard normals come from the
//! Marsaglia polar method.
//!
//! The estimator is plain Monte Carlo, without antithetic variates or other variance
//! reduction: every path is an independent sample of the discounted payoff, so a slice's
//! [`Summary`] (count, sum and sum of squares of the discounted payoffs) merges with the
//! others by addition and the merged [`Estimate`] has the textbook standard error
//! `s / √n`.
//!
//! ```
//! use montecarlo::{Params, Summary, black_scholes, simulate_slice};
//!
//! let params = Params::parse("paths=100000 slices=4").expect("valid parameters");
//! let mut total = Summary::default();
//! for i in 0..params.slices {
//!     // In the pricer, each slice is a task and its summary travels as text.
//!     let text = simulate_slice(&params, i).to_text();
//!     total.merge(&Summary::from_text(&text).expect("valid summary"));
//! }
//! let estimate = total.estimate();
//! assert_eq!(estimate.n, 100_000);
//! assert!((estimate.price - black_scholes(&params)).abs() < 5.0 * estimate.std_error);
//! ```

mod normal;
mod params;
mod rng;
mod simulate;
mod summary;

pub use normal::{black_scholes, erfc, normal_cdf};
pub use params::{Kind, MAX_ASSETS, Params};
pub use rng::Rng;
pub use simulate::{simulate, simulate_slice};
pub use summary::{Estimate, Summary};
