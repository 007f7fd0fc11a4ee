//! Queueing models of the executors.
//!
//! - [`MMc`]: Poisson arrivals at rate λ, exponential service at rate μ per server,
//!   `c` servers, one FIFO queue (Erlang C);
//! - [`Partitioned`]: what Kafka actually builds — every worker serves only the
//!   partitions assigned to it, so `c` workers are `c` separate M/M/s queues (s =
//!   slots per worker) fed by their share of the partitions. With fewer workers
//!   than partitions the shares are uneven, and workers beyond the partition
//!   count get nothing.
//!
//! See `paper/observer.md` for the assumptions and where they fail. Erlang C is
//! computed through the Erlang B recursion, which stays finite for hundreds of
//! servers where the textbook sum of `a^k / k!` overflows.

/// A stable or unstable M/M/c system.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MMc {
    /// Arrivals per second.
    pub lambda: f64,
    /// Completions per second of one busy server.
    pub mu: f64,
    pub servers: u32,
}

/// Probability that an arrival has to wait (Erlang C) with `servers` servers and
/// offered load `a = λ/μ` erlangs; 1 when the system is not stable (`a >= servers`).
pub fn erlang_c(servers: u32, a: f64) -> f64 {
    if servers == 0 || a >= f64::from(servers) {
        return 1.0;
    }
    if a <= 0.0 {
        return 0.0;
    }
    let mut b = 1.0; // Erlang B with 0 servers
    for k in 1..=servers {
        b = a * b / (f64::from(k) + a * b);
    }
    let c = f64::from(servers);
    c * b / (c - a * (1.0 - b))
}

impl MMc {
    pub fn new(lambda: f64, mu: f64, servers: u32) -> Self {
        Self { lambda, mu, servers }
    }

    /// Offered load in erlangs (λ/μ).
    pub fn offered(&self) -> f64 {
        self.lambda / self.mu
    }

    /// ρ = λ / (c·μ).
    pub fn utilisation(&self) -> f64 {
        self.offered() / f64::from(self.servers)
    }

    pub fn is_stable(&self) -> bool {
        self.servers > 0 && self.mu > 0.0 && self.utilisation() < 1.0
    }

    pub fn wait_probability(&self) -> f64 {
        erlang_c(self.servers, self.offered())
    }

    /// Rate at which a waiting job's wait ends: c·μ − λ.
    fn drain_rate(&self) -> f64 {
        f64::from(self.servers) * self.mu - self.lambda
    }

    /// Mean time in queue, seconds (infinite when unstable).
    pub fn mean_wait(&self) -> f64 {
        if !self.is_stable() {
            return f64::INFINITY;
        }
        self.wait_probability() / self.drain_rate()
    }

    /// Mean time in the system (queue + service), seconds.
    pub fn mean_response(&self) -> f64 {
        self.mean_wait() + 1.0 / self.mu
    }

    /// P(response time > t). The wait is 0 with probability 1 − C and otherwise
    /// exponential with rate θ = cμ − λ; the service is exponential with rate μ,
    /// independent of it.
    pub fn response_exceedance(&self, t: f64) -> f64 {
        if !self.is_stable() {
            return 1.0;
        }
        let (mu, theta, c) = (self.mu, self.drain_rate(), self.wait_probability());
        let service = (-mu * t).exp();
        // P(Exp(θ) + Exp(μ) > t), hypoexponential; its θ → μ limit is Erlang-2
        let waited = if ((theta - mu) / mu).abs() < 1e-9 {
            (1.0 + mu * t) * service
        } else {
            (theta * service - mu * (-theta * t).exp()) / (theta - mu)
        };
        ((1.0 - c) * service + c * waited).clamp(0.0, 1.0)
    }

    /// The `q` quantile of the response time (e.g. 0.95), seconds.
    pub fn response_quantile(&self, q: f64) -> f64 {
        if !self.is_stable() {
            return f64::INFINITY;
        }
        quantile(q, 1.0 / self.mu, |t| self.response_exceedance(t))
    }
}

/// Smallest `t` with `exceedance(t) <= 1 - q`, for a decreasing `exceedance`.
fn quantile(q: f64, start: f64, exceedance: impl Fn(f64) -> f64) -> f64 {
    let tail = 1.0 - q;
    let mut high = start.max(1e-9);
    while exceedance(high) > tail {
        high *= 2.0;
    }
    let mut low = 0.0;
    for _ in 0..100 {
        let mid = (low + high) / 2.0;
        if exceedance(mid) > tail {
            low = mid;
        } else {
            high = mid;
        }
    }
    high
}

/// `workers` workers of `slots` servers each, sharing `partitions` partitions as
/// evenly as an assignor can; arrivals spread uniformly over the partitions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Partitioned {
    pub lambda: f64,
    pub mu: f64,
    pub slots: u32,
    pub workers: u32,
    pub partitions: u32,
}

impl Partitioned {
    /// (fraction of the traffic, queue) for every worker that has partitions.
    fn queues(&self) -> Vec<(f64, MMc)> {
        let (p, c) = (self.partitions.max(1), self.workers.min(self.partitions.max(1)));
        if c == 0 {
            return vec![(1.0, MMc::new(self.lambda, self.mu, 0))];
        }
        let (base, extra) = (p / c, p % c);
        (0..c)
            .map(|i| {
                let share = f64::from(base + u32::from(i < extra)) / f64::from(p);
                (share, MMc::new(self.lambda * share, self.mu, self.slots))
            })
            .collect()
    }

    pub fn is_stable(&self) -> bool {
        self.queues().iter().all(|(_, q)| q.is_stable())
    }

    pub fn mean_response(&self) -> f64 {
        self.queues().iter().map(|(share, q)| share * q.mean_response()).sum()
    }

    pub fn response_quantile(&self, q: f64) -> f64 {
        if !self.is_stable() {
            return f64::INFINITY;
        }
        let queues = self.queues();
        quantile(q, 1.0 / self.mu, |t| queues.iter().map(|(share, queue)| share * queue.response_exceedance(t)).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!((actual - expected).abs() <= tolerance, "got {actual}, expected {expected} ± {tolerance}");
    }

    #[test]
    fn erlang_c_matches_textbook_values() {
        // M/M/1: P(wait) = ρ
        close(erlang_c(1, 0.7), 0.7, 1e-12);
        // two servers, one erlang: 1/3; three servers, two erlangs: 4/9
        close(erlang_c(2, 1.0), 1.0 / 3.0, 1e-12);
        close(erlang_c(3, 2.0), 4.0 / 9.0, 1e-12);
        // the call-centre table value: 10 agents, 8 erlangs → 0.409
        close(erlang_c(10, 8.0), 0.409_18, 1e-4);
        // 100 servers, 90 erlangs: finite where a^k/k! overflows an f64 sum naively
        close(erlang_c(100, 90.0), 0.216_94, 1e-4);
        assert_eq!(erlang_c(4, 4.0), 1.0, "saturated");
        assert_eq!(erlang_c(3, 0.0), 0.0, "no load never waits");
    }

    #[test]
    fn mm1_response_is_exponential_with_rate_mu_minus_lambda() {
        let q = MMc::new(0.8, 1.0, 1);
        close(q.mean_response(), 5.0, 1e-9); // 1 / (μ − λ)
        close(q.mean_wait(), 4.0, 1e-9); // ρ / (μ − λ)
        close(q.response_quantile(0.95), 20f64.ln() / 0.2, 1e-6);
        close(q.response_exceedance(3.0), (-0.2f64 * 3.0).exp(), 1e-9);
    }

    #[test]
    fn mmc_mean_wait_matches_the_erlang_c_formula() {
        // c = 2, λ = 1, μ = 1: Wq = C / (cμ − λ) = (1/3) / 1
        let q = MMc::new(1.0, 1.0, 2);
        close(q.mean_wait(), 1.0 / 3.0, 1e-12);
        close(q.utilisation(), 0.5, 1e-12);
        // θ = cμ − λ equals μ here: the Erlang-2 branch must agree with its neighbours
        let p = q.response_quantile(0.95);
        let nearby = MMc::new(1.0 + 1e-6, 1.0, 2).response_quantile(0.95);
        close(p, nearby, 1e-4);
    }

    #[test]
    fn response_quantile_of_an_idle_system_is_the_service_quantile() {
        let q = MMc::new(0.0, 0.5, 3);
        close(q.response_quantile(0.95), 20f64.ln() / 0.5, 1e-6);
        close(q.mean_response(), 2.0, 1e-12);
    }

    #[test]
    fn unstable_systems_predict_infinite_response_times() {
        let q = MMc::new(3.0, 1.0, 3);
        assert!(!q.is_stable());
        assert!(q.mean_response().is_infinite());
        assert!(q.response_quantile(0.95).is_infinite());
        assert!(MMc::new(1.0, 1.0, 0).mean_wait().is_infinite());
    }

    #[test]
    fn partitioned_workers_with_equal_shares_are_independent_mmc_queues() {
        // 4 partitions over 2 workers of 2 slots: two M/M/2 queues with λ/2 each
        let p = Partitioned { lambda: 1.2, mu: 1.0, slots: 2, workers: 2, partitions: 4 };
        let one = MMc::new(0.6, 1.0, 2);
        close(p.mean_response(), one.mean_response(), 1e-12);
        close(p.response_quantile(0.95), one.response_quantile(0.95), 1e-6);
        // one worker holds every partition: the pooled queue of its slots
        let single = Partitioned { workers: 1, ..p };
        close(single.mean_response(), MMc::new(1.2, 1.0, 2).mean_response(), 1e-12);
    }

    #[test]
    fn uneven_partition_shares_are_slower_than_a_pooled_queue() {
        // 4 partitions over 3 workers: shares 1/2, 1/4, 1/4
        let p = Partitioned { lambda: 0.7, mu: 0.5, slots: 1, workers: 3, partitions: 4 };
        let expected = 0.5 * MMc::new(0.35, 0.5, 1).mean_response() + 0.5 * MMc::new(0.175, 0.5, 1).mean_response();
        close(p.mean_response(), expected, 1e-12);
        assert!(p.mean_response() > MMc::new(0.7, 0.5, 3).mean_response());
        // workers beyond the partition count change nothing
        let four = Partitioned { workers: 4, ..p };
        close(Partitioned { workers: 9, ..p }.mean_response(), four.mean_response(), 1e-12);
        // the busiest worker decides stability
        assert!(!Partitioned { lambda: 1.0, ..p }.is_stable(), "half of λ = 1 on one slot of μ = 0.5");
        assert!(Partitioned { lambda: 1.0, workers: 0, ..p }.mean_response().is_infinite());
    }

    #[test]
    fn more_servers_never_predict_a_slower_response() {
        let mut previous = f64::INFINITY;
        for servers in 1..12 {
            let p95 = MMc::new(4.0, 1.0, servers).response_quantile(0.95);
            assert!(p95 <= previous, "{servers} servers: {p95} > {previous}");
            previous = p95;
        }
    }
}
