//! Reach: the distinct users who saw an ad, as a mergeable sketch.
//!
//! A pane carries Apache DataSketches' HyperLogLog of its impressions'
//! users. Below a few thousand users it is a list of 4-byte coupons (near
//! exact, and small); above, 2^14 four-bit registers (8 KiB, about 0.8%
//! standard error). A union of sketches is the sketch of the union, and
//! adding the same pane twice changes nothing, so a pane re-emitted after
//! a restart cannot inflate reach. The serialized form is DataSketches' own,
//! which its Java, C++ and Python libraries read.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use datasketches::hash::value::raw_bytes;
use datasketches::hll::{Coupon, HllSketch, HllType, HllUnion};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// log2 of the registers once dense: 2^14 gives about 0.8% standard error.
pub const LG_K: u8 = 14;

/// A user's hash, computed once per record and added to any sketch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User(Coupon);

impl User {
    /// Hashes the id's UTF-8 bytes as DataSketches' other libraries hash a
    /// string, so their sketches of the same ids merge with ours.
    pub fn new(id: &str) -> User {
        User(Coupon::from_value(raw_bytes::from_str(id)))
    }
}

/// The distinct users of a pane, a window or a range.
#[derive(Clone)]
pub struct Reach(HllSketch);

impl Default for Reach {
    fn default() -> Reach {
        Reach(HllSketch::new(LG_K, HllType::Hll4).expect("LG_K is a valid lg_k"))
    }
}

impl Reach {
    pub fn add(&mut self, user: User) {
        self.0.update_with_coupon(user.0);
    }

    /// Estimated distinct users, rounded.
    pub fn estimate(&self) -> u64 {
        self.0.estimate().round() as u64
    }

    /// Heap bytes, about.
    pub fn size(&self) -> usize {
        self.0.estimated_size()
    }

    /// Serialized bytes, DataSketches' compact form.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.serialize()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Reach, String> {
        // The library takes every register to be at most 63 and panics on
        // more in debug builds. Every sketch we write is HLL_4 (bits 2-3 of
        // byte 7 are 0), whose registers are the smallest one (byte 6, in
        // register mode: the low bits of byte 7 are 2) plus at most 14.
        if let Some(&[smallest, mode]) = bytes.get(6..8) {
            if mode >> 2 & 3 != 0 {
                return Err("reach sketch: not HLL_4".into());
            }
            if mode & 3 == 2 && smallest > 63 - 14 {
                return Err(format!(
                    "reach sketch: smallest register {smallest} is over 49"
                ));
            }
        }
        let sketch = HllSketch::deserialize(bytes).map_err(|e| format!("reach sketch: {e}"))?;
        if sketch.lg_config_k() > LG_K {
            return Err(format!(
                "reach sketch: lg_k {} is over {LG_K}",
                sketch.lg_config_k()
            ));
        }
        Ok(Reach(sketch))
    }
}

/// The same sketch: a sketch read back lists its coupons in another order
/// (they are a hash set), so those compare as sets.
impl PartialEq for Reach {
    fn eq(&self, other: &Reach) -> bool {
        let (a, b) = (self.to_bytes(), other.to_bytes());
        // The preamble's length in 4-byte words leads; 10 means registers.
        let header = usize::from(a.first().copied().unwrap_or(0)) * 4;
        if a.len() != b.len() || header > a.len() || a[..header] != b[..header] {
            return false;
        }
        let coupons = |bytes: &[u8]| {
            let mut c: Vec<Vec<u8>> = bytes[header..].chunks(4).map(<[u8]>::to_vec).collect();
            c.sort_unstable();
            c
        };
        header == 40 && a == b || header < 40 && coupons(&a) == coupons(&b)
    }
}

impl fmt::Debug for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reach(~{})", self.estimate())
    }
}

/// On the wire: base64 of the serialized sketch.
impl Serialize for Reach {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(self.to_bytes()))
    }
}

impl<'de> Deserialize<'de> for Reach {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Reach, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("reach sketch: {e}")))?;
        Reach::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// Unions many sketches: windows into a range, panes into a window.
#[derive(Debug, Clone)]
pub struct ReachUnion(HllUnion);

impl Default for ReachUnion {
    fn default() -> ReachUnion {
        ReachUnion(HllUnion::new(LG_K).expect("LG_K is a valid lg_k"))
    }
}

impl ReachUnion {
    pub fn add(&mut self, reach: &Reach) {
        self.0.update(&reach.0);
    }

    pub fn add_union(&mut self, other: &ReachUnion) {
        if !other.0.is_empty() {
            self.0.update(&other.0.to_sketch(HllType::Hll8));
        }
    }

    pub fn estimate(&self) -> u64 {
        self.0.estimate().round() as u64
    }

    /// Whether no sketch was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_reach(&self) -> Reach {
        Reach(self.0.to_sketch(HllType::Hll4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(range: std::ops::Range<u32>) -> Reach {
        let mut r = Reach::default();
        for i in range {
            r.add(User::new(&format!("user-{i}")));
        }
        r
    }

    #[test]
    fn small_counts_are_exact_and_small() {
        let r = users(0..500);
        assert_eq!(r.estimate(), 500);
        let bytes = r.to_bytes();
        assert!(bytes.len() < 500 * 4 + 64, "{} bytes", bytes.len());
        assert_eq!(Reach::from_bytes(&bytes).unwrap(), r);
        let mut again = r.clone();
        for i in 0..500 {
            again.add(User::new(&format!("user-{i}")));
        }
        assert_eq!(again.estimate(), 500, "the same users again add nothing");
    }

    #[test]
    fn large_counts_stay_within_two_percent_and_dense_sketches_stay_bounded() {
        let r = users(0..200_000);
        let error = (r.estimate() as f64 - 200_000.0).abs() / 200_000.0;
        assert!(error < 0.02, "{} ({error})", r.estimate());
        assert!(
            r.to_bytes().len() <= (1 << LG_K) / 2 + 128,
            "{}",
            r.to_bytes().len()
        );
    }

    #[test]
    fn a_union_counts_overlaps_once_and_is_idempotent() {
        let (a, b) = (users(0..30_000), users(20_000..50_000));
        let mut u = ReachUnion::default();
        u.add(&a);
        u.add(&b);
        u.add(&a);
        let error = (u.estimate() as f64 - 50_000.0).abs() / 50_000.0;
        assert!(error < 0.02, "{} ({error})", u.estimate());
        let mut whole = ReachUnion::default();
        whole.add_union(&u);
        whole.add_union(&u);
        assert_eq!(whole.estimate(), u.estimate());
        assert_eq!(u.to_reach().estimate(), u.estimate());
    }

    #[test]
    fn the_wire_form_roundtrips_and_hostile_input_is_an_error() {
        let r = users(0..40);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Reach>(&json).unwrap(), r);
        for bad in [r#""not base64!""#, r#""AAAA""#, "12", r#""""#] {
            assert!(serde_json::from_str::<Reach>(bad).is_err(), "{bad}");
        }
        // Registers the library would overflow on: a smallest register
        // near 63, or an HLL_8 sketch, whose registers are bytes as sent.
        let mut high = users(0..50_000).to_bytes();
        high[6] = 63;
        let mut hll8 = HllSketch::new(LG_K, HllType::Hll8).unwrap();
        for i in 0..50_000 {
            hll8.update_with_coupon(User::new(&format!("user-{i}")).0);
        }
        for bad in [high, hll8.serialize()] {
            assert!(Reach::from_bytes(&bad).is_err());
        }
        // Every cut and every flipped byte of a real sketch: an error or a
        // sketch, never a panic.
        for sketch in [users(0..40), users(0..3_000), users(0..50_000)] {
            let bytes = sketch.to_bytes();
            for cut in 0..bytes.len().min(200) {
                let _ = Reach::from_bytes(&bytes[..cut]);
            }
            for i in 0..bytes.len().min(64) {
                for flip in [0x01, 0x80, 0xff] {
                    let mut b = bytes.clone();
                    b[i] ^= flip;
                    if let Ok(r) = Reach::from_bytes(&b) {
                        let mut u = ReachUnion::default();
                        u.add(&r);
                        let _ = u.estimate();
                    }
                }
            }
        }
    }
}
