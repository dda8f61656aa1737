// Preloaded into a CLI child by cli-hostile-data.test.ts (node --import): writes the process's peak
// resident memory (KiB, worker threads included) to $PEFT_TEST_RSS_FILE when it exits.
import { writeFileSync } from 'node:fs';

process.on('exit', () => {
  if (process.env.PEFT_TEST_RSS_FILE) writeFileSync(process.env.PEFT_TEST_RSS_FILE, String(process.resourceUsage().maxRSS));
});
