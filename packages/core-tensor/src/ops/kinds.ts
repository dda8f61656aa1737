/**
 * Every op the autograd tape records, grouped. Each one has exactly one gradient in
 * `autograd/gradients.ts` (a Record over this union, so a missing gradient fails the type check).
 * Composites (silu, mean, softmax, logSoftmax) are built from these and are never recorded.
 */
export type ElementwiseOp =
  | 'add' | 'sub' | 'mul' | 'div' // binary, broadcasting over leading / size-1 dims
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'sigmoid' // unary
  | 'mulScalar' | 'addScalar'; // x * c, x + c

export type ReduceOp = 'sum' | 'max'; // along one axis (sum also over all)

export type MovementOp = 'reshape' | 'transpose' | 'slice' | 'concat';

export type IndexOp = 'embedding' | 'dropout';

/** Ops that call the TrainKernels contract (reference or native). */
export type FusedOp = 'linear' | 'rmsnorm' | 'rope' | 'attention' | 'swiglu' | 'crossEntropy';

/** Fused ops computed in TypeScript (no TrainKernels entry): small widths only, e.g. QST's side LayerNorm. */
export type FusedTsOp = 'layernorm';

export type PrimitiveOp = ElementwiseOp | ReduceOp | MovementOp | IndexOp;

export type OpKind = PrimitiveOp | FusedOp | FusedTsOp;
