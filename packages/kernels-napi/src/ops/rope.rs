//! Rotary position embedding, HF `rotate_half` layout (https://arxiv.org/abs/2104.09864):
//! element i pairs with i + hd/2 (not 2i+1).
//!
//! Shapes: x, out, dout, dx (BT, heads, hd); cos, sin (maxPos, hd/2); pos (BT,).
//! For row r with p = pos[r], c = cos[p], s = sin[p], and i < hd/2:
//!   forward:  out[i] = x[i] c - x[i+hd/2] s;    out[i+hd/2] = x[i+hd/2] c + x[i] s
//!   backward: the inverse rotation (sin negated): dx = R^T dout.
//! Both halves of a pair are read before either is written, so the rotation runs in
//! place; the out-of-place form copies a row, then rotates it while it is in L1.
//! Bit-identical across SIMD levels (two products and a sum, unfused, as the TS reference).

use super::lanes::simd_kernel;
use super::{check_len, elems};
use crate::error::{Error, Result};
use crate::pool;
use crate::simd::{Isa, Level};

/// The tables and sizes of one call, checked.
#[derive(Clone, Copy)]
struct Tables<'a> {
    cos: &'a [f32],
    sin: &'a [f32],
    pos: &'a [i32],
    heads: usize,
    hd: usize,
}

simd_kernel! {
    /// Rotates whole rows (`rows.len() / (heads * hd)` of them, starting at row `r0`) in place;
    /// `sign` = 1 applies R, -1 applies R^T.
    fn rotate_rows<V>(v, rows: &mut [f32], t: Tables, r0: usize, sign: f32) {
        let half = t.hd / 2;
        for (r, row) in rows.chunks_mut(t.heads * t.hd).enumerate() {
            let p = t.pos[r0 + r] as usize * half;
            let (cos, sin) = (&t.cos[p..p + half], &t.sin[p..p + half]);
            for head in row.chunks_mut(t.hd) {
                let (x1, x2) = head.split_at_mut(half);
                let it = x1.chunks_mut(V::W).zip(x2.chunks_mut(V::W)).zip(cos.chunks(V::W).zip(sin.chunks(V::W)));
                for ((a, b), (c, s)) in it {
                    let (va, vb) = (v.get(a, 0.0), v.get(b, 0.0));
                    let (c, s) = (v.get(c, 0.0), v.mul(v.get(s, 0.0), v.splat(sign)));
                    v.put(a, v.sub(v.mul(va, c), v.mul(vb, s)));
                    v.put(b, v.add(v.mul(vb, c), v.mul(va, s)));
                }
            }
        }
    }
}

fn check<'a>(
    names: [&'static str; 2],
    lens: [usize; 2],
    cos: &'a [f32],
    sin: &'a [f32],
    pos: &'a [i32],
    bt: usize,
    heads: usize,
    hd: usize,
) -> Result<Tables<'a>> {
    if !hd.is_multiple_of(2) {
        return Err(Error::invalid("hd", format!("must be even, got {hd}")));
    }
    let n = elems("BT", &[bt, heads, hd])?;
    check_len(names[0], lens[0], n, "BT * heads * hd")?;
    check_len(names[1], lens[1], n, "BT * heads * hd")?;
    check_len("pos", pos.len(), bt, "BT")?;
    let half = hd / 2;
    if half > 0 && !cos.len().is_multiple_of(half) {
        return Err(Error::invalid("cos", format!("has length {}, not a multiple of hd/2 = {half}", cos.len())));
    }
    check_len("sin", sin.len(), cos.len(), "cos.length")?;
    let max_pos = cos.len().checked_div(half).unwrap_or(0);
    if let Some((r, p)) = pos.iter().enumerate().find(|&(_, &p)| p < 0 || p as usize >= max_pos) {
        let last = max_pos as i64 - 1;
        return Err(Error::invalid("pos", format!("pos[{r}] = {p} is outside the tables' rows 0..{last}")));
    }
    Ok(Tables { cos, sin, pos, heads, hd })
}

/// Applies the rotation to `y` (already holding the input), rows split over the pool.
fn rotate(isa: Isa, y: &mut [f32], src: Option<&[f32]>, t: Tables, sign: f32) {
    let row = t.heads * t.hd;
    if row == 0 {
        return;
    }
    // A half head that is not a multiple of 16 (hd = 48) ends every head in a masked
    // AVX-512 tail; AVX2's full 8-lane vectors are faster there, and give the same bits.
    let isa = match isa.level() {
        Level::Avx512 if !(t.hd / 2).is_multiple_of(16) => Isa::new(Level::Avx2).unwrap_or(isa),
        _ => isa,
    };
    let rows = pool::units_per_chunk(y.len(), row);
    let parts: Vec<_> = y.chunks_mut(rows * row).collect();
    pool::for_each_part(parts, |i, y| {
        for (r, y) in y.chunks_mut(row).enumerate() {
            let r = i * rows + r;
            if let Some(x) = src {
                y.copy_from_slice(&x[r * row..][..row]);
            }
            rotate_rows(isa, y, t, r, sign);
        }
    });
}

/// out (BT, heads, hd) = R(pos) x. `rope_forward_inplace` is the same with out = x.
pub fn rope_forward(
    isa: Isa,
    out: &mut [f32],
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    pos: &[i32],
    bt: usize,
    heads: usize,
    hd: usize,
) -> Result<()> {
    let t = check(["out", "x"], [out.len(), x.len()], cos, sin, pos, bt, heads, hd)?;
    rotate(isa, out, Some(x), t, 1.0);
    Ok(())
}

/// x (BT, heads, hd) = R(pos) x.
pub fn rope_forward_inplace(
    isa: Isa,
    x: &mut [f32],
    cos: &[f32],
    sin: &[f32],
    pos: &[i32],
    bt: usize,
    heads: usize,
    hd: usize,
) -> Result<()> {
    let t = check(["out", "x"], [x.len(), x.len()], cos, sin, pos, bt, heads, hd)?;
    rotate(isa, x, None, t, 1.0);
    Ok(())
}

/// dx (BT, heads, hd) = R(pos)^T dout (overwritten).
pub fn rope_backward(
    isa: Isa,
    dx: &mut [f32],
    dout: &[f32],
    cos: &[f32],
    sin: &[f32],
    pos: &[i32],
    bt: usize,
    heads: usize,
    hd: usize,
) -> Result<()> {
    let t = check(["dx", "dout"], [dx.len(), dout.len()], cos, sin, pos, bt, heads, hd)?;
    rotate(isa, dx, Some(dout), t, -1.0);
    Ok(())
}

/// dout (BT, heads, hd) = R(pos)^T dout, in place.
pub fn rope_backward_inplace(
    isa: Isa,
    dout: &mut [f32],
    cos: &[f32],
    sin: &[f32],
    pos: &[i32],
    bt: usize,
    heads: usize,
    hd: usize,
) -> Result<()> {
    let t = check(["dx", "dout"], [dout.len(), dout.len()], cos, sin, pos, bt, heads, hd)?;
    rotate(isa, dout, None, t, -1.0);
    Ok(())
}

#[cfg(test)]
mod tests;
