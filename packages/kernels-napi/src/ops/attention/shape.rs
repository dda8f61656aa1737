//! The sizes of one attention call and the offsets they give (see `attention.rs`).

use crate::error::{Error, Result};

/// The sizes of one call: B, T, S, nh, nkv, hd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    pub b: usize,
    pub t: usize,
    pub s: usize,
    pub nh: usize,
    pub nkv: usize,
    pub hd: usize,
}

impl AttnShape {
    /// (q-sized, kv-sized, lse-sized) element counts, or EINVAL.
    pub(super) fn check(&self) -> Result<[usize; 3]> {
        let AttnShape { b, t, s, nh, nkv, hd } = *self;
        if s < t {
            return Err(Error::invalid(
                "S",
                format!("S ({s}) must be >= T ({t}): the queries are the last T positions"),
            ));
        }
        if nkv == 0 || nh % nkv != 0 {
            return Err(Error::invalid("nkv", format!("nh ({nh}) must be a multiple of nkv ({nkv}) >= 1")));
        }
        let prod = |d: [usize; 4]| d.iter().try_fold(1usize, |a, &x| a.checked_mul(x));
        let sizes = [prod([b, t, nh, hd]), prod([b, s, nkv, hd]), prod([b, nh, t, 1])];
        match sizes {
            [Some(q), Some(kv), Some(l)] => Ok([q, kv, l]),
            _ => Err(Error::invalid("B", format!("the shape {self:?} has too many elements"))),
        }
    }
    pub(super) fn group(&self) -> usize {
        self.nh / self.nkv
    }
    /// Absolute position of query t.
    pub(super) fn pos(&self, t: usize) -> usize {
        self.s - self.t + t
    }
    /// Offset of q[b, t, h, :] (also out, dq, dout).
    pub(super) fn q_at(&self, b: usize, t: usize, h: usize) -> usize {
        ((b * self.t + t) * self.nh + h) * self.hd
    }
    /// Offset of k[b, s, kvh, :] (also v, dk, dv).
    pub(super) fn kv_at(&self, b: usize, s: usize, kvh: usize) -> usize {
        ((b * self.s + s) * self.nkv + kvh) * self.hd
    }
}
