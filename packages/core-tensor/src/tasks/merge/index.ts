/**
 * tasks/merge: `peft merge` over full models with mergekit's semantics. Plans come from mergekit
 * recipes or flags, are checked (architectures, tensors, shapes, vocabularies, tokenizers,
 * parameters) and then streamed tensor by tensor through a registered `merger` entry.
 * Not here: the methods themselves (plugin-merge), adapter merges and folding.
 */
export {
  planFromFlags, parseMergeDtype, parseTokenizerSource,
  type ConditionalParameter, type MergeDtype, type MergeFlags, type MergeModelRef, type MergePlan, type ParamSetting, type ScalarOrGradient,
} from './plan.js';
export { parseMergeRecipe, planToRecipe, readMergeRecipe } from './recipe.js';
export { evaluateSetting, layerPosition, resolveTensorParams } from './params.js';
export { MergeSource, type MergeTensorInfo } from './inputs.js';
export { checkMerge, prepareMerge, type MergeCheckReport, type MergeInputReport, type PreparedMerge } from './check.js';
export { runMerge, tensorSeed, type MergeProgress, type MergeReport, type RunMergeOptions } from './run.js';
