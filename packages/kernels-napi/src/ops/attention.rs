//! Causal grouped-query attention, tiled FlashAttention-2 style
//! (https://arxiv.org/abs/2307.08691): no T x S matrix is ever stored.
//!
//! Shapes: q, out, dq, dout (B, T, nh, hd); k, v, dk, dv (B, S, nkv, hd); lse (B, nh, T).
//! Query t sits at absolute position S-T+t (a KV cache holds the first S-T keys) and
//! sees keys 0..=S-T+t; head h reads kv head h / (nh/nkv).
//!   forward:  out = softmax(scale q k^T + mask) v, lse = logsumexp of the scaled scores,
//!             by an online softmax over key tiles of BC keys (running max m, sum l, acc).
//!   backward: D = rowsum(dout * out); per tile P = exp(scale q k^T - lse) (recomputed),
//!             dP = dout v^T, dS = P * (dP - D) * scale; dv += P^T dout, dk += dS^T q, dq += dS k.
//! Threads: the forward splits (batch, query tile of BR rows); the backward gives each
//! (batch, kv head) to one task, which owns its dk/dv rows and its heads' dq rows (strided
//! views, `heads.rs`) and walks key tiles in a fixed order, so nothing is summed across
//! threads and the bits do not depend on the thread count.

mod heads;
mod shape;
mod tile;

use self::heads::HeadRows;
pub use self::shape::AttnShape;
use self::tile::{BC, axpy_ranges, dot_cols, transpose};
use super::check_len;
use super::lanes::{Simd, dot, exp, max_of, simd_kernel};
use crate::error::Result;
use crate::pool;
use crate::simd::Isa;

/// Query rows per forward tile (and per backward P / dS tile).
const BR: usize = 64;

/// Where a forward task works: query rows t0.. of batch b.
struct Fwd<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    sh: AttnShape,
    b: usize,
    t0: usize,
    scale: f32,
}

/// A forward task's scratch and running softmax state (m, l, acc per query row).
struct FwdState {
    kt: Vec<f32>,  // (hd, BC): the key tile, transposed
    sc: Vec<f32>,  // (4, BC): scores, then probabilities, of up to 4 rows
    m: [f32; BR],  // running max
    l: [f32; BR],  // running sum of exp(score - m)
    acc: Vec<f32>, // (rows, hd): running sum of p * v
}

simd_kernel! {
    /// Forward for query rows t0.. of batch b, every head: out (rows, nh, hd); lse (nh, BR).
    fn forward_tile<V>(v, out: &mut [f32], lse: &mut [f32], x: &Fwd) {
        let (sh, hd, nh) = (x.sh, x.sh.hd, x.sh.nh);
        let rows = out.len() / (nh * hd);
        let (kt, sc, acc) = (vec![0.0; hd * BC], vec![0.0; 4 * BC], vec![0.0; rows * hd]);
        let mut st = FwdState { kt, sc, m: [0.0; BR], l: [0.0; BR], acc };
        for h in 0..nh {
            let kvh = h / sh.group();
            st.m.fill(f32::NEG_INFINITY);
            st.l.fill(0.0);
            st.acc.fill(0.0);
            for c0 in (0..=sh.pos(x.t0 + rows - 1)).step_by(BC) {
                transpose(&mut st.kt, x.k, sh.kv_at(x.b, c0, kvh), sh.nkv * hd, BC.min(sh.s - c0), hd);
                let mut i = (c0 + sh.t).saturating_sub(sh.s + x.t0); // the first row that sees key c0
                while i < rows {
                    // Four rows share each load of the key and value tiles.
                    i += if rows - i >= 4 {
                        forward_rows::<V, 4>(v, &mut st, x, h, i, c0)
                    } else {
                        forward_rows::<V, 1>(v, &mut st, x, h, i, c0)
                    };
                }
            }
            for (i, a) in st.acc.chunks(hd).enumerate() {
                let o = &mut out[(i * nh + h) * hd..][..hd];
                o.iter_mut().zip(a).for_each(|(o, a)| *o = a / st.l[i]);
                lse[h * BR + i] = st.m[i] + st.l[i].ln();
            }
        }
    }
}

/// Folds key tile c0.. into rows i..i+R of head h; returns R.
#[inline(always)]
fn forward_rows<V: Simd, const R: usize>(v: V, st: &mut FwdState, x: &Fwd, h: usize, i: usize, c0: usize) -> usize {
    let (sh, hd) = (x.sh, x.sh.hd);
    let kvh = h / sh.group();
    let q: [&[f32]; R] = std::array::from_fn(|r| &x.q[sh.q_at(x.b, x.t0 + i + r, h)..][..hd]);
    dot_cols::<V, R>(v, &mut st.sc, q, &st.kt);
    let valid: [usize; R] = std::array::from_fn(|r| (sh.s - c0).min(BC).min(sh.pos(x.t0 + i + r) + 1 - c0));
    let mut rows = st.acc[i * hd..(i + R) * hd].chunks_mut(hd);
    let acc: [&mut [f32]; R] = std::array::from_fn(|_| rows.next().unwrap_or_default());
    for r in 0..R {
        let (m, l) = (&mut st.m[i + r], &mut st.l[i + r]);
        softmax_step(v, &mut st.sc[r * BC..][..BC], valid[r], x.scale, m, l, &mut *acc[r]);
    }
    let p: [&[f32]; R] = std::array::from_fn(|r| &st.sc[r * BC..][..BC]);
    let vrows = &x.v[sh.kv_at(x.b, c0, kvh)..];
    axpy_ranges::<V, R>(v, acc, p, 1, valid.map(|n| (0, n)), vrows, sh.nkv * hd);
    R
}

/// One row's online-softmax update for a key tile: sc (BC,) holds q . k, of which the
/// first `valid` keys are visible; it is turned into p = exp(scale * sc - m_new), and
/// l and acc are rescaled to the new running max (acc += p v follows).
#[inline(always)]
fn softmax_step<V: Simd>(v: V, sc: &mut [f32], valid: usize, scale: f32, m: &mut f32, l: &mut f32, acc: &mut [f32]) {
    let vs = v.splat(scale);
    for x in sc.chunks_mut(V::W) {
        v.store(x, v.mul(v.load(x), vs));
    }
    sc[valid..].fill(f32::NEG_INFINITY); // masked and padding keys: exp gives 0
    let m_new = max_of(v, sc).max(*m);
    let (vm, mut sum) = (v.splat(m_new), v.splat(0.0));
    for x in sc.chunks_mut(V::W) {
        let p = exp(v, v.sub(v.load(x), vm));
        v.store(x, p);
        sum = v.add(sum, p);
    }
    let alpha = (*m - m_new).exp(); // 0 on the first tile (m = -inf)
    *l = *l * alpha + v.sum(sum);
    if alpha != 1.0 {
        let va = v.splat(alpha);
        for a in acc.chunks_mut(V::W) {
            v.put(a, v.mul(v.get(a, 0.0), va));
        }
    }
    *m = m_new;
}

/// out (B, T, nh, hd) and lse (B, nh, T) from q (B, T, nh, hd), k, v (B, S, nkv, hd).
pub fn attention_forward(
    isa: Isa,
    out: &mut [f32],
    lse: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    sh: AttnShape,
    scale: f32,
) -> Result<()> {
    let [nq, nkv, nl] = sh.check()?;
    check_len("out", out.len(), nq, "B * T * nh * hd")?;
    check_len("lse", lse.len(), nl, "B * nh * T")?;
    check_len("q", q.len(), nq, "B * T * nh * hd")?;
    check_len("k", k.len(), nkv, "B * S * nkv * hd")?;
    check_len("v", v.len(), nkv, "B * S * nkv * hd")?;
    if sh.hd == 0 {
        // Every score is 0: a uniform softmax over the pos + 1 visible keys.
        lse.iter_mut().enumerate().for_each(|(i, l)| *l = ((sh.pos(i % sh.t) + 1) as f32).ln());
        return Ok(());
    }
    if nq == 0 {
        return Ok(());
    }
    let per_b = sh.t.div_ceil(BR);
    let mut tiles = vec![0.0f32; sh.b * per_b * sh.nh * BR]; // each task's lse, (nh, BR)
    let outs = out.chunks_mut(sh.t * sh.nh * sh.hd).flat_map(|o| o.chunks_mut(BR * sh.nh * sh.hd));
    let parts: Vec<_> = outs.zip(tiles.chunks_mut(sh.nh * BR)).collect();
    pool::for_each_part(parts, |i, (o, l)| {
        forward_tile(isa, o, l, &Fwd { q, k, v, sh, b: i / per_b, t0: i % per_b * BR, scale });
    });
    for (i, l) in tiles.chunks(sh.nh * BR).enumerate() {
        let (b, t0) = (i / per_b, i % per_b * BR);
        let rows = BR.min(sh.t - t0);
        for h in 0..sh.nh {
            lse[(b * sh.nh + h) * sh.t + t0..][..rows].copy_from_slice(&l[h * BR..][..rows]);
        }
    }
    Ok(())
}

/// The inputs of the backward pass: dout, q, out (B, T, nh, hd), k, v (B, S, nkv, hd), lse (B, nh, T).
pub struct BwdInputs<'a> {
    pub dout: &'a [f32],
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub out: &'a [f32],
    pub lse: &'a [f32],
}

/// Where one backward task works: batch b, kv head kvh (and its G query heads).
struct Task<'a> {
    x: &'a BwdInputs<'a>,
    sh: AttnShape,
    b: usize,
    kvh: usize,
    scale: f32,
}

/// One tile: query rows tb..tb+nr of head h (the task's gi-th) against keys c0..c0+nk.
struct Tile {
    h: usize,
    gi: usize,
    tb: usize,
    nr: usize,
    c0: usize,
    nk: usize,
}

simd_kernel! {
    /// Backward for one (batch, kv head): dq for its G query heads, dk, dv for the kv head
    /// (views of the outputs; overwritten).
    fn backward_group<V>(v, dq: &mut HeadRows, dk: &mut HeadRows, dv: &mut HeadRows, task: &Task) {
        let (sh, hd, g) = (task.sh, task.sh.hd, task.sh.group());
        dq.zero();
        dk.zero();
        dv.zero();
        let d: Vec<f32> = (0..g * sh.t)
            .map(|i| {
                let o = sh.q_at(task.b, i % sh.t, task.kvh * g + i / sh.t);
                dot(v, &task.x.dout[o..][..hd], &task.x.out[o..][..hd])
            })
            .collect(); // D = rowsum(dout * out), (G, T)
        let (mut kt, mut vt) = (vec![0.0f32; hd * BC], vec![0.0f32; hd * BC]);
        let (mut p, mut ds) = (vec![0.0f32; BR * BC], vec![0.0f32; BR * BC]);
        for c0 in (0..sh.s).step_by(BC) {
            let nk = BC.min(sh.s - c0);
            let first = sh.kv_at(task.b, c0, task.kvh);
            transpose(&mut kt, task.x.k, first, sh.nkv * hd, nk, hd);
            transpose(&mut vt, task.x.v, first, sh.nkv * hd, nk, hd);
            for gi in 0..g {
                for tb in (c0.saturating_sub(sh.s - sh.t)..sh.t).step_by(BR) {
                    let tile = Tile { h: task.kvh * g + gi, gi, tb, nr: BR.min(sh.t - tb), c0, nk };
                    tile_rows(v, task, &tile, [&kt, &vt], &d[gi * sh.t..][..sh.t], [&mut p, &mut ds], dq);
                    tile_cols(v, task, &tile, [&p, &ds], dk, dv);
                }
            }
        }
    }
}

/// P and dS of a tile (p, ds: (BR, BC)), and dq (T, hd) += dS k, four rows at a time.
#[inline(always)]
fn tile_rows<V: Simd>(
    v: V,
    task: &Task,
    tl: &Tile,
    kvt: [&[f32]; 2],
    d: &[f32],
    pds: [&mut [f32]; 2],
    dq: &mut HeadRows,
) {
    let mut i = 0;
    let [p, ds] = pds;
    while i < tl.nr {
        i += if tl.nr - i >= 4 {
            tile_rows_r::<V, 4>(v, task, tl, i, kvt, d, [&mut *p, &mut *ds], dq)
        } else {
            tile_rows_r::<V, 1>(v, task, tl, i, kvt, d, [&mut *p, &mut *ds], dq)
        };
    }
}

/// `tile_rows` for rows i..i+R of the tile; returns R.
#[inline(always)]
fn tile_rows_r<V: Simd, const R: usize>(
    v: V,
    task: &Task,
    tl: &Tile,
    i: usize,
    kvt: [&[f32]; 2],
    d: &[f32],
    pds: [&mut [f32]; 2],
    dq: &mut HeadRows,
) -> usize {
    let (sh, x, hd, w) = (task.sh, task.x, task.sh.hd, V::W);
    let [p, ds] = pds.map(|a| &mut a[i * BC..(i + R) * BC]);
    let t = tl.tb + i;
    let at: [usize; R] = std::array::from_fn(|r| sh.q_at(task.b, t + r, tl.h));
    dot_cols::<V, R>(v, p, at.map(|o| &x.q[o..][..hd]), kvt[0]); // scores
    dot_cols::<V, R>(v, ds, at.map(|o| &x.dout[o..][..hd]), kvt[1]); // dP
    let vs = v.splat(task.scale);
    let valid: [usize; R] = std::array::from_fn(|r| tl.nk.min(sh.pos(t + r) + 1 - tl.c0));
    for r in 0..R {
        let (pr, dr) = (&mut p[r * BC..][..BC], &mut ds[r * BC..][..BC]);
        let vl = v.splat(x.lse[(task.b * sh.nh + tl.h) * sh.t + t + r]);
        for s in pr.chunks_mut(w) {
            v.store(s, exp(v, v.sub(v.mul(v.load(s), vs), vl)));
        }
        pr[valid[r]..].fill(0.0);
        let vd = v.splat(d[t + r]);
        for (s, pp) in dr.chunks_mut(w).zip(pr.chunks(w)) {
            v.store(s, v.mul(v.mul(v.load(pp), v.sub(v.load(s), vd)), vs)); // dS, scale folded in
        }
    }
    let acc = dq.rows::<R>(t, tl.gi);
    let coef: [&[f32]; R] = std::array::from_fn(|r| &ds[r * BC..][..BC]);
    let krows = &x.k[sh.kv_at(task.b, tl.c0, task.kvh)..];
    axpy_ranges::<V, R>(v, acc, coef, 1, valid.map(|n| (0, n)), krows, sh.nkv * hd);
    R
}

/// dv += P^T dout and dk += dS^T q for the tile's keys, four keys at a time, each key
/// over the tile rows that see it.
#[inline(always)]
fn tile_cols<V: Simd>(v: V, task: &Task, tl: &Tile, pds: [&[f32]; 2], dk: &mut HeadRows, dv: &mut HeadRows) {
    let mut c = 0;
    while c < tl.nk {
        c += if tl.nk - c >= 4 {
            tile_cols_r::<V, 4>(v, task, tl, c, pds, dk, dv)
        } else {
            tile_cols_r::<V, 1>(v, task, tl, c, pds, dk, dv)
        };
    }
}

/// `tile_cols` for keys c..c+R of the tile; returns R.
#[inline(always)]
fn tile_cols_r<V: Simd, const R: usize>(
    v: V,
    task: &Task,
    tl: &Tile,
    c: usize,
    pds: [&[f32]; 2],
    dk: &mut HeadRows,
    dv: &mut HeadRows,
) -> usize {
    let (sh, x, hd) = (task.sh, task.x, task.sh.hd);
    let j = tl.c0 + c; // the first key's index
    // Row i of the tile sees key j + r once pos(tb + i) >= j + r.
    let ranges: [(usize, usize); R] =
        std::array::from_fn(|r| ((j + r).saturating_sub(sh.s - sh.t).saturating_sub(tl.tb).min(tl.nr), tl.nr));
    let o = sh.q_at(task.b, tl.tb, tl.h);
    let [p, ds] = pds.map(|m| -> [&[f32]; R] { std::array::from_fn(|r| &m[c + r..]) });
    axpy_ranges::<V, R>(v, dv.rows::<R>(j, 0), p, BC, ranges, &x.dout[o..], sh.nh * hd);
    axpy_ranges::<V, R>(v, dk.rows::<R>(j, 0), ds, BC, ranges, &x.q[o..], sh.nh * hd);
    R
}

/// dq (B, T, nh, hd), dk, dv (B, S, nkv, hd), all overwritten, from dout, q, out (B, T, nh, hd),
/// k, v (B, S, nkv, hd) and the forward's lse (B, nh, T).
pub fn attention_backward(
    isa: Isa,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    x: &BwdInputs,
    sh: AttnShape,
    scale: f32,
) -> Result<()> {
    let [nq, nkv, nl] = sh.check()?;
    let q_sized = [("dq", dq.len()), ("dout", x.dout.len()), ("q", x.q.len()), ("out", x.out.len())];
    for (name, len) in q_sized {
        check_len(name, len, nq, "B * T * nh * hd")?;
    }
    for (name, len) in [("dk", dk.len()), ("dv", dv.len()), ("k", x.k.len()), ("v", x.v.len())] {
        check_len(name, len, nkv, "B * S * nkv * hd")?;
    }
    check_len("lse", x.lse.len(), nl, "B * nh * T")?;
    if nq == 0 {
        dk.fill(0.0);
        dv.fill(0.0);
        return Ok(()); // no queries (or hd == 0): nothing flows back
    }
    let (b, hd) = (sh.b, sh.hd);
    let dqs = heads::split(dq, b, sh.t, sh.nh, hd, sh.group());
    let (dks, dvs) = (heads::split(dk, b, sh.s, sh.nkv, hd, 1), heads::split(dv, b, sh.s, sh.nkv, hd, 1));
    let parts: Vec<_> = dqs.into_iter().zip(dks).zip(dvs).collect();
    pool::for_each_part(parts, |i, ((mut dq, mut dk), mut dv)| {
        let task = Task { x, sh, b: i / sh.nkv, kvh: i % sh.nkv, scale };
        backward_group(isa, &mut dq, &mut dk, &mut dv, &task);
    });
    Ok(())
}

#[cfg(test)]
mod tests;
