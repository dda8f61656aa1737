//! Disjoint mutable views of the heads of a (B, rows, heads, hd) buffer: the strided
//! counterpart of `chunks_mut`. The backward pass gives each (batch, kv head) task the
//! view of its own heads, so it writes dq / dk / dv in place, with no scratch copy
//! (fresh scratch pages cost more than the copy) and no sharing between threads.

use std::marker::PhantomData;

/// The rows of heads `first..first + count` of one batch of a (B, rows, heads, hd) buffer.
pub struct HeadRows<'a> {
    /// The batch's first element; valid for `rows * heads * hd` elements.
    base: *mut f32,
    rows: usize,
    heads: usize,
    hd: usize,
    first: usize,
    count: usize,
    _buf: PhantomData<&'a mut [f32]>,
}

// SAFETY: a view only ever touches the elements of its own (batch, heads), which no other
// view from the same `split` covers, and it borrows the buffer mutably for 'a.
unsafe impl Send for HeadRows<'_> {}

/// Splits `buf` (B, rows, heads, hd) into one view per (batch, group of `group` heads), in
/// that order. Panics unless `buf.len() == B * rows * heads * hd` and `group` divides `heads`.
pub fn split(buf: &mut [f32], b: usize, rows: usize, heads: usize, hd: usize, group: usize) -> Vec<HeadRows<'_>> {
    assert!(buf.len() == b * rows * heads * hd && group > 0 && heads.is_multiple_of(group));
    let per_b = rows * heads * hd;
    let ptr = buf.as_mut_ptr();
    let views = (0..b).flat_map(|bi| (0..heads / group).map(move |g| (bi, g)));
    // `wrapping_add` keeps this safe for empty buffers; in bounds otherwise.
    views
        .map(|(bi, g)| HeadRows {
            base: ptr.wrapping_add(bi * per_b),
            rows,
            heads,
            hd,
            first: g * group,
            count: group,
            _buf: PhantomData,
        })
        .collect()
}

impl HeadRows<'_> {
    /// Rows r0..r0 + R of head `first + h`, each (hd,).
    pub fn rows<const R: usize>(&mut self, r0: usize, h: usize) -> [&mut [f32]; R] {
        assert!(h < self.count && r0 + R <= self.rows);
        let at = |r: usize| ((r0 + r) * self.heads + self.first + h) * self.hd;
        // SAFETY: the R rows are distinct, in bounds (asserted), inside this view's heads,
        // and borrowed from `&mut self`, so nothing else aliases them meanwhile.
        std::array::from_fn(|r| unsafe { std::slice::from_raw_parts_mut(self.base.add(at(r)), self.hd) })
    }

    /// Zeroes every row of this view.
    pub fn zero(&mut self) {
        for r in 0..self.rows {
            for h in 0..self.count {
                let [row] = self.rows::<1>(r, h);
                row.fill(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_cover_the_buffer_once() {
        let (b, rows, heads, hd, group) = (2, 3, 6, 4, 3);
        let mut buf = vec![0.0f32; b * rows * heads * hd];
        for (i, mut v) in split(&mut buf, b, rows, heads, hd, group).into_iter().enumerate() {
            for r in 0..rows {
                for h in 0..group {
                    v.rows::<1>(r, h)[0].iter_mut().for_each(|x| *x += (i + 1) as f32);
                }
            }
        }
        // Element (bi, r, h, d) belongs to view bi * 2 + h / 3, and was written once.
        for (e, &x) in buf.iter().enumerate() {
            let (bi, h) = (e / (rows * heads * hd), e / hd % heads);
            assert_eq!(x, (bi * 2 + h / group + 1) as f32, "element {e}");
        }
    }

    #[test]
    #[should_panic]
    fn rows_outside_the_view_panic() {
        let mut buf = vec![0.0f32; 2 * 4 * 2];
        let mut v = split(&mut buf, 1, 2, 4, 2, 2).remove(0);
        let _ = v.rows::<1>(0, 2); // head 2 belongs to the other view
    }
}
