//! JS binding of the linear algebra kernels (`src/linalg`): `rsvd`, in the argument order of
//! core-tensor's `TrainKernels.rsvd` (outputs u, s, vt; input a; sizes; settings). Float32Array
//! only; the kernel checks every length and names the argument in the EINVAL.

use crate::error::Result;
use crate::ffi::{Ctx, JsRet};
use crate::linalg::rsvd::{self, Rsvd};
use crate::simd;

/// Largest integer a JS number holds exactly.
const MAX_SAFE: usize = (1 << 53) - 1;

// rsvd(u, s, vt, a, m, n, rank, oversample, powerIters, seed)
pub fn rsvd(cx: &Ctx) -> Result<JsRet> {
    let p = Rsvd {
        m: cx.uint(4, "m", MAX_SAFE)?,
        n: cx.uint(5, "n", MAX_SAFE)?,
        rank: cx.uint(6, "rank", MAX_SAFE)?,
        oversample: cx.uint(7, "oversample", MAX_SAFE)?,
        power_iters: cx.uint(8, "powerIters", MAX_SAFE)?,
        seed: cx.uint(9, "seed", u32::MAX as usize)? as u32,
    };
    let u = cx.slice_mut::<f32>(0, "u")?;
    let s = cx.slice_mut::<f32>(1, "s")?;
    let vt = cx.slice_mut::<f32>(2, "vt")?;
    let a = cx.slice::<f32>(3, "a")?;
    rsvd::rsvd(simd::current(), u, s, vt, a, &p)?;
    Ok(JsRet::Undefined)
}
