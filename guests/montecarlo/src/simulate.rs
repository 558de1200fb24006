//! The simulation: [`simulate_slice`] and [`simulate`].

use crate::{Kind, MAX_ASSETS, Params, Rng, Summary};

/// Simulates slice `index` of `params` (`index < params.slices`): its
/// [`slice_paths`](Params::slice_paths) paths, drawn from random stream `index` of
/// `params.seed`, summarised as discounted payoffs.
///
/// The result depends only on `params` and `index`, and the slices of the same parameters
/// use independent random streams, so merging the summaries of slices `0..slices` gives
/// the same estimate wherever and in whatever order they ran. An `index` out of range
/// simulates nothing (an empty summary).
///
/// `params` should be [valid](Params::validate); [`Params::parse`] ensures it.
pub fn simulate_slice(params: &Params, index: u32) -> Summary {
    let model = Model::new(params);
    let mut rng = Rng::new(params.seed, index);
    let mut summary = Summary::default();
    for _ in 0..params.slice_paths(index) {
        summary.add(model.discounted_payoff(&mut rng));
    }
    summary
}

/// Simulates every slice of `params` in turn and merges them: what the pricer's task graph
/// computes, in one thread (for benchmarks and tests).
pub fn simulate(params: &Params) -> Summary {
    let mut total = Summary::default();
    for index in 0..params.slices {
        total.merge(&simulate_slice(params, index));
    }
    total
}

/// The model of [`Params`], with its constants precomputed.
struct Model {
    /// Number of assets (1 to [`MAX_ASSETS`]).
    assets: usize,
    /// Weight of the common factor in each asset's shock, `√ρ` (0 with a single asset).
    factor_weight: f64,
    /// Weight of the asset's own noise in its shock, `√(1 − ρ)` (1 with a single asset).
    own_weight: f64,
    /// `σ·√T`: the terminal log-price is `ln S₀ + (r − σ²/2)T + σ√T·Z`.
    vol_sqrt_t: f64,
    /// `S₀·exp((r − σ²/2)T) / assets`: the basket average is this times `Σ exp(σ√T·Z_i)`.
    scale: f64,
    /// The strike `K`.
    strike: f64,
    /// Call or put.
    kind: Kind,
    /// The discount factor `exp(−rT)`.
    discount: f64,
}

impl Model {
    /// Precomputes the constants of `params`.
    fn new(params: &Params) -> Self {
        let assets = params.assets.clamp(1, MAX_ASSETS);
        // A single asset needs no common factor: its shock is its own noise.
        let corr = if assets == 1 { 0.0 } else { params.corr };
        let drift = (params.rate - 0.5 * params.vol * params.vol) * params.maturity;
        Self {
            assets: assets as usize,
            factor_weight: corr.sqrt(),
            own_weight: (1.0 - corr).sqrt(),
            vol_sqrt_t: params.vol * params.maturity.sqrt(),
            scale: params.spot * drift.exp() / f64::from(assets),
            strike: params.strike,
            kind: params.kind,
            discount: (-params.rate * params.maturity).exp(),
        }
    }

    /// Draws the standard normal shocks of one path, `Z_i = √ρ·M + √(1 − ρ)·ε_i` for
    /// `i = 1..assets` (pairwise correlated by `ρ`), and passes them to `f` in order. The
    /// common factor `M` is only drawn when `ρ > 0`.
    #[inline]
    fn for_each_shock(&self, rng: &mut Rng, mut f: impl FnMut(f64)) {
        let common = if self.factor_weight > 0.0 {
            self.factor_weight * rng.normal()
        } else {
            0.0
        };
        for _ in 0..self.assets {
            f(common + self.own_weight * rng.normal());
        }
    }

    /// Simulates one path: the discounted payoff of the option.
    #[inline]
    fn discounted_payoff(&self, rng: &mut Rng) -> f64 {
        let mut growth = 0.0;
        self.for_each_shock(rng, |z| growth += (self.vol_sqrt_t * z).exp());
        let average = self.scale * growth;
        let payoff = match self.kind {
            Kind::Call => average - self.strike,
            Kind::Put => self.strike - average,
        };
        self.discount * payoff.max(0.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::black_scholes;

    fn params(text: &str) -> Params {
        Params::parse(text).unwrap()
    }

    #[test]
    fn slices_are_reproducible() {
        let p = params("assets=3 paths=30001 slices=3");
        for i in 0..3 {
            let a = simulate_slice(&p, i);
            let b = simulate_slice(&p, i);
            assert_eq!(a.to_text(), b.to_text());
            assert_eq!(a.n, p.slice_paths(i));
        }
        assert_eq!(simulate_slice(&p, 0).n, 10_001);
        assert_eq!(simulate_slice(&p, 2).n, 10_000);
        assert_eq!(simulate_slice(&p, 3), Summary::default());
        // A slice does not depend on how many slices there are, only on its index and size.
        let more = params("assets=3 paths=40001 slices=4");
        assert_eq!(simulate_slice(&p, 0), simulate_slice(&more, 0));
    }

    #[test]
    fn slices_are_independent() {
        let p = params("paths=20000 slices=2");
        let (a, b) = (simulate_slice(&p, 0), simulate_slice(&p, 1));
        assert_ne!(a.sum, b.sum);
        // Both estimate the same price: their difference is within 4 combined standard
        // errors (independent slices).
        let (ea, eb) = (a.estimate(), b.estimate());
        let se = (ea.std_error.powi(2) + eb.std_error.powi(2)).sqrt();
        assert!((ea.price - eb.price).abs() < 4.0 * se);
        // Other seeds give other streams.
        let other = Params { seed: 43, ..p };
        assert_ne!(simulate_slice(&other, 0).sum, a.sum);
        // Path-by-path, the payoffs of two slices are uncorrelated.
        let model = Model::new(&p);
        let (mut ra, mut rb) = (Rng::new(p.seed, 0), Rng::new(p.seed, 1));
        let n = 50_000;
        let (mut xa, mut xb) = (Summary::default(), Summary::default());
        let mut sum_ab = 0.0;
        for _ in 0..n {
            let (x, y) = (
                model.discounted_payoff(&mut ra),
                model.discounted_payoff(&mut rb),
            );
            xa.add(x);
            xb.add(y);
            sum_ab += x * y;
        }
        let n = n as f64;
        let cov = sum_ab / n - (xa.sum / n) * (xb.sum / n);
        let var = |s: &Summary| s.sum_sq / n - (s.sum / n).powi(2);
        let corr = cov / (var(&xa) * var(&xb)).sqrt();
        assert!(corr.abs() < 4.0 / n.sqrt(), "correlation {corr}");
    }

    #[test]
    fn shocks_have_the_target_correlation() {
        let p = params("assets=4 corr=0.3");
        let model = Model::new(&p);
        let mut rng = Rng::new(1, 0);
        let mut shocks = Vec::with_capacity(4);
        let n = 100_000;
        let (mut s0, mut s00, mut s01, mut s23) = (0.0, 0.0, 0.0, 0.0);
        for _ in 0..n {
            shocks.clear();
            model.for_each_shock(&mut rng, |z| shocks.push(z));
            assert_eq!(shocks.len(), 4);
            s0 += shocks[0];
            s00 += shocks[0] * shocks[0];
            s01 += shocks[0] * shocks[1];
            s23 += shocks[2] * shocks[3];
        }
        let n = n as f64;
        assert!((s0 / n).abs() < 0.015);
        assert!((s00 / n - 1.0).abs() < 0.02);
        assert!((s01 / n - 0.3).abs() < 0.02, "corr(Z0, Z1) = {}", s01 / n);
        assert!((s23 / n - 0.3).abs() < 0.02, "corr(Z2, Z3) = {}", s23 / n);
    }

    /// Asserts that `estimate` is within 4 standard errors of `expected`.
    fn assert_within_4_se(text: &str, expected: f64) {
        let e = simulate(&params(text)).estimate();
        assert!(
            (e.price - expected).abs() < 4.0 * e.std_error,
            "{text}: {e:?} is more than 4 standard errors from {expected}"
        );
        assert!(e.std_error > 0.0 && e.std_error < 0.05 * expected, "{e:?}");
    }

    #[test]
    fn single_asset_matches_black_scholes() {
        for text in [
            "paths=200000 slices=4 kind=call",
            "paths=200000 slices=4 kind=put",
            "paths=100000 slices=3 kind=call spot=90 strike=110 vol=0.5 rate=0.01 maturity=2 seed=7",
            "paths=100000 slices=5 kind=put spot=95 strike=100 vol=0.1 rate=0.1 maturity=0.25",
        ] {
            assert_within_4_se(text, black_scholes(&params(text)));
        }
    }

    #[test]
    fn merged_estimate_is_the_sum_of_slices() {
        let p = params("paths=1001 slices=7");
        let total = simulate(&p);
        assert_eq!(total.n, 1001);
        let mut text_merged = Summary::default();
        for i in (0..7).rev() {
            text_merged.merge(&Summary::from_text(&simulate_slice(&p, i).to_text()).unwrap());
        }
        assert_eq!(text_merged.n, total.n);
        assert!((text_merged.sum - total.sum).abs() <= 1e-12 * total.sum);
    }

    #[test]
    fn put_call_parity() {
        // C − P = E[discounted (A − K)] = S₀ − K·exp(−rT), for a basket as for one asset.
        // The same seed drives both, so the estimates share their paths and the parity holds
        // up to the Monte Carlo error of the forward.
        for text in [
            "paths=100000 slices=2",
            "assets=5 corr=0.5 paths=100000 slices=2",
        ] {
            let call = simulate(&params(text)).estimate();
            let put = simulate(&params(&format!("{text} kind=put"))).estimate();
            let p = params(text);
            let forward = p.spot - p.strike * (-p.rate * p.maturity).exp();
            assert!(
                (call.price - put.price - forward).abs() < 4.0 * (call.std_error + put.std_error),
                "{text}: C = {call:?}, P = {put:?}, S − K·exp(−rT) = {forward}"
            );
        }
    }

    #[test]
    fn basket_is_cheaper_than_one_asset() {
        // The average of correlated assets is less volatile than one of them: the basket
        // option is worth less than the single-asset one, and more so as ρ decreases.
        let bs = black_scholes(&params(""));
        let low = simulate(&params("assets=8 corr=0.1 paths=100000 slices=2")).estimate();
        let high = simulate(&params("assets=8 corr=0.9 paths=100000 slices=2")).estimate();
        assert!(low.price + 4.0 * low.std_error < high.price - 4.0 * high.std_error);
        assert!(high.price + 4.0 * high.std_error < bs);
        // As ρ → 1 it tends to the single-asset price.
        let nearly_one = simulate(&params("assets=4 corr=0.999999 paths=100000")).estimate();
        assert!((nearly_one.price - bs).abs() < 4.0 * nearly_one.std_error);
    }
}
