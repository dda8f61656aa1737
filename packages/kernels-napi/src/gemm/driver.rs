//! The macro loop of [`Gemm`](super::Gemm): C is cut into rectangles (tasks), and
//! each task runs the k-blocked loop nest over packed panels (see `mod.rs`).
//!
//! An operand is read in place instead of packed when its panel is used by too
//! few microkernel calls to pay for the copy: an A micro-panel that meets at most
//! two B panels (thin C, e.g. LoRA rank 8), and f32 B, not transposed, in a task
//! only one A micro-panel high. Either way the microkernel sees the same values
//! in the same order, so only speed depends on the choice (and on the grid).

use std::cell::RefCell;
use std::ops::Range;

use super::kernel::{Epilogue, Kernel, Tile, k_block};
use super::pack::{ABlock, AOperand, BBlock, a_panel_len, pack_a, pack_b};
use super::source::BSource;
use crate::memory::AlignedBuf;
use crate::pool;
use crate::simd::Isa;

/// Floats of a packed B block (kc x tn): 512 KiB, half of a 1 MiB L2.
const B_BLOCK: usize = 1 << 17;
/// Tasks per thread when parallel: the pool hands tasks out dynamically, so a
/// worker that wakes late (5-20 us here) takes fewer and the caller more.
const TASKS_PER_THREAD: usize = 4;
/// Fewest rows a task gets when C is split by rows (keeps B re-packing cheap).
const MIN_TASK_ROWS: usize = 64;
/// Products of at least this many multiply-adds (~0.5 ms on one core) use
/// 2 tasks per thread instead of `TASKS_PER_THREAD`.
const BIG_FMA: usize = 1 << 25;

/// Everything a task needs; shared read-only by all tasks of one call.
pub(super) struct Problem<'a> {
    pub isa: Isa,
    pub kern: Kernel,
    pub a: AOperand<'a>,
    pub src: &'a dyn BSource,
    pub trans_b: bool,
    pub n: usize,
    pub alpha: f32,
    pub beta: f32,
    pub c: CPtr,
}

/// Run the product on the pool, with the task grid built for `threads`.
pub(super) fn run(p: &Problem, threads: usize) {
    let grid = Grid::new(p.a.m, p.n, p.a.k, &p.kern, threads);
    pool::parallel_for(grid.tasks(), |t| {
        let (rows, cols) = grid.task(t);
        // SAFETY: tasks are disjoint rectangles inside C, which outlives the call.
        unsafe { task(p, rows, cols) }
    });
}

/// Packing buffers, one set per thread, reused across calls (no page faults per call).
struct Bufs {
    a: AlignedBuf,
    b: AlignedBuf,
    scratch: AlignedBuf,
}

thread_local! {
    static BUFS: RefCell<Bufs> = const {
        RefCell::new(Bufs { a: AlignedBuf::new(), b: AlignedBuf::new(), scratch: AlignedBuf::new() })
    };
}

/// The packed (or in-place) B of one k-block: panel p starts at `base + p*panel`,
/// and consecutive k steps of a panel are `k_step` floats apart.
#[derive(Clone, Copy)]
struct BPanels {
    base: *const f32,
    panel: usize,
    k_step: usize,
    /// The last panel, packed separately when the others are read in place.
    edge: Option<*const f32>,
}

/// One rectangle of C: for each k-block, pack B, then sweep A micro-panels.
///
/// # Safety
/// `rows` x `cols` lies inside C and no other thread touches it during the call.
unsafe fn task(p: &Problem, rows: Range<usize>, cols: Range<usize>) {
    let Kernel { mr, nr, tile, .. } = p.kern;
    let kc_max = k_block(p.a.k);
    let k = p.a.k;
    let a_in_place = cols.len() <= 2 * nr;
    // C is this problem's [m, n] row-major, or (transposed tiles) the problem is
    // C^T of a row-major [n, m] C, whose rows are m long.
    let ldc = if p.kern.c_trans { p.a.m } else { p.n };
    let c_off = |i: usize, j: usize| if p.kern.c_trans { j * ldc + i } else { i * ldc + j };
    BUFS.with_borrow_mut(|bufs| {
        for pc in (0..k).step_by(kc_max) {
            let kc = kc_max.min(k - pc);
            let blk = BBlock { pc, kc, j0: cols.start, tn: cols.len(), nr };
            let b = b_panels(p, bufs, blk, rows.len() <= mr);
            let epi = match (pc, p.beta) {
                (0, 0.0) => Epilogue::Overwrite,
                (0, beta) => Epilogue::Update(beta),
                _ => Epilogue::Update(1.0),
            };
            for i in rows.clone().step_by(mr) {
                let r = mr.min(rows.end - i);
                let (a, a_rs, a_cs) = a_panel(p, &mut bufs.a, a_in_place, i, r, pc, kc);
                for (q, j) in cols.clone().step_by(nr).enumerate() {
                    let last = j + nr >= cols.end;
                    let (b_ptr, b_stride) = match (last, b.edge) {
                        (true, Some(e)) => (e, nr),
                        // SAFETY: panel q of the k-block lies inside the buffer or B.
                        _ => (unsafe { b.base.add(q * b.panel) }, b.k_step),
                    };
                    let t = Tile {
                        kc,
                        a,
                        a_rs,
                        a_cs,
                        b: b_ptr,
                        b_stride,
                        // SAFETY: (i, j) is inside C (caller's contract).
                        c: unsafe { p.c.get().add(c_off(i, j)) },
                        ldc,
                        rows: r,
                        cols: nr.min(cols.end - j),
                        alpha: p.alpha,
                        epi,
                    };
                    // SAFETY: `kern` came from `Kernel::select(isa)`; A and B hold kc
                    // steps of r / nr floats at the given strides; the tile is inside C.
                    unsafe { tile(&t) };
                }
            }
        }
    });
}

/// Pack this task's B block, or point into f32 B when the task is one micro-panel
/// high (each B panel then meets one A micro-panel: a copy would not pay).
fn b_panels(p: &Problem, bufs: &mut Bufs, blk: BBlock, one_pass: bool) -> BPanels {
    let in_place = if one_pass && !p.trans_b { p.src.in_place() } else { None };
    let Some(view) = in_place else {
        let bp = bufs.b.get(blk.floats());
        pack_b(p.isa, p.src, p.trans_b, blk, bp, &mut bufs.scratch);
        return BPanels { base: bp.as_ptr(), panel: blk.kc * blk.nr, k_step: blk.nr, edge: None };
    };
    let start = blk.pc * view.stride + blk.j0;
    let base = view.data[start..].as_ptr();
    let full = blk.tn / blk.nr * blk.nr;
    let edge = (full < blk.tn).then(|| {
        let e = BBlock { j0: blk.j0 + full, tn: blk.tn - full, ..blk };
        let bp = bufs.b.get(e.floats());
        pack_b(p.isa, p.src, false, e, bp, &mut bufs.scratch);
        bp.as_ptr()
    });
    BPanels { base, panel: blk.nr, k_step: view.stride, edge }
}

/// A micro-panel for rows `i .. i+r`, k range `pc .. pc+kc`: (pointer, row stride,
/// k stride), packed into `buf` (strides 1, mr) or in place in A.
#[allow(clippy::too_many_arguments)]
fn a_panel(
    p: &Problem,
    buf: &mut AlignedBuf,
    in_place: bool,
    i: usize,
    r: usize,
    pc: usize,
    kc: usize,
) -> (*const f32, usize, usize) {
    let a = p.a;
    if in_place {
        return if a.trans {
            (a.data[pc * a.m + i..].as_ptr(), 1, a.m) // A^T stored [k, m]
        } else {
            (a.data[i * a.k + pc..].as_ptr(), a.k, 1)
        };
    }
    let mr = p.kern.mr;
    let ap = buf.get(a_panel_len(kc, mr));
    pack_a(p.isa, a, ABlock { i0: i, rows: r, pc, kc, mr }, ap);
    (ap.as_ptr(), 1, mr)
}

/// C's base pointer, shared by tasks that write disjoint rectangles.
#[derive(Clone, Copy)]
pub(super) struct CPtr(pub *mut f32);
// SAFETY: tasks write disjoint parts of C (see `Grid`), and `parallel_for` returns
// only after all of them finished.
unsafe impl Send for CPtr {}
unsafe impl Sync for CPtr {}
impl CPtr {
    /// A method, so closures capture the `Sync` wrapper and not the raw field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// How C is cut into tasks: `mb` x `nb` rectangles of `m_step` x `n_step` (multiples
/// of MR / NR; the last in each direction smaller). Only speed depends on it.
struct Grid {
    m: usize,
    n: usize,
    m_step: usize,
    n_step: usize,
    nb: usize,
    mb: usize,
}

impl Grid {
    fn new(m: usize, n: usize, k: usize, kern: &Kernel, threads: usize) -> Grid {
        // Big products get fewer, larger tasks (each row task re-packs its B block);
        // small ones more, so that a worker waking late costs less.
        let per_thread = if m.saturating_mul(n).saturating_mul(k) >= BIG_FMA { 2 } else { TASKS_PER_THREAD };
        let want = if threads > 1 { threads * per_thread } else { 1 };
        let (m_units, n_units) = (m.div_ceil(kern.mr), n.div_ceil(kern.nr));
        let nc = (B_BLOCK / k_block(k) / kern.nr * kern.nr).max(kern.nr);
        // Column blocks first (a B block must fit L2); then rows (each row task
        // packs its own B, so not too many); then columns again if m is small.
        let mut nb = n.div_ceil(nc);
        let max_mb = m_units.min(m.div_ceil(MIN_TASK_ROWS)).max(1);
        let mb = want.div_ceil(nb).min(max_mb);
        nb = nb.max(want.div_ceil(mb)).min(n_units);
        let n_step = n.div_ceil(nb).div_ceil(kern.nr) * kern.nr;
        let m_step = m.div_ceil(mb).div_ceil(kern.mr) * kern.mr;
        Grid { m, n, m_step, n_step, nb: n.div_ceil(n_step), mb: m.div_ceil(m_step) }
    }

    fn tasks(&self) -> usize {
        self.mb * self.nb
    }

    fn task(&self, t: usize) -> (Range<usize>, Range<usize>) {
        let (i, j) = (t / self.nb * self.m_step, t % self.nb * self.n_step);
        (i..self.m.min(i + self.m_step), j..self.n.min(j + self.n_step))
    }
}
