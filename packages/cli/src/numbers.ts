/** Number-valued flags that oclif has no type for (floats), validated with the flag's name in the error. */
export async function numberFlag(flag: string, text: string | undefined): Promise<number | undefined> {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v)) {
    const { PeftError } = await import('@peft/core-tensor');
    throw new PeftError('E_INPUT', `--${flag} must be a number, got ${JSON.stringify(text)}`);
  }
  return v;
}
