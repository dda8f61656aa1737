// Preloaded (node --require) by measure.ts into the peft child: writes the process's peak RSS in KiB
// to $PEFT_TEST_RSS_FILE when it exits, so tests can assert bounded memory of the real binary.
const { writeFileSync } = require('node:fs');
process.on('exit', () => {
  if (process.env.PEFT_TEST_RSS_FILE) writeFileSync(process.env.PEFT_TEST_RSS_FILE, String(process.resourceUsage().maxRSS));
});
