import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/hook.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  external: ['@peft/core-tensor', '@peft/kernels-napi'],
});
