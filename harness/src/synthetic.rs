//! Seed-shaped ad events for benchmarks and property tests: three
//! campaigns, four channels, 80/15/5 impressions/clicks/conversions, costs
//! with at most six decimals, event time moving forward.

pub const CAMPAIGNS: &[&str] = &["brand_awareness", "spring_sale", "retargeting"];
pub const CHANNELS: &[&str] = &["email", "facebook_ads", "google_ads", "tiktok"];

use analytics::time::format_naive;

/// A small, fast, reproducible PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `n` events as `logs` values, starting 2025-08-17T14:00:00Z.
pub fn synthetic_events(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let mut ts_ms: i64 = 1_755_439_200_000;
    (0..n)
        .map(|i| {
            ts_ms += rng.below(120) as i64;
            let (event, cost_micros) = match rng.below(100) {
                0..=79 => ("impression", 0),
                80..=94 => ("click", 500_000 + rng.below(1_500_001)),
                _ => ("conversion", 5_000_000 + rng.below(15_000_001)),
            };
            format!(
                r#"{{"event_id":"{i:08x}-0000-4000-8000-{:012x}","ts":"{}","user_id":"u{}","campaign_id":"{}","channel":"{}","event":"{event}","cost":{}.{:06}}}"#,
                rng.next_u64() & 0xffff_ffff_ffff,
                format_naive(ts_ms),
                rng.below(100_000),
                CAMPAIGNS[rng.below(3) as usize],
                CHANNELS[rng.below(4) as usize],
                cost_micros / 1_000_000,
                cost_micros % 1_000_000,
            )
            .into_bytes()
        })
        .collect()
}
