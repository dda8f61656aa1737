import type { Registry } from '@peft/core-tensor';

export function register(registry: Registry): void {
  void registry;
}
