/**
 * The live line of `peft train` on a terminal (stderr): step, loss, lr, tokens/s, ETA; eval and
 * checkpoint events get their own lines. Pipes and --json get nothing here (metrics.jsonl has it all).
 */
import type { TrainEvent } from '@peft/core-tensor';

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

export function progressPrinter(stream: NodeJS.WriteStream): { event: (e: TrainEvent) => void; status: (what: string) => void; end: () => void } {
  let open = false;
  const line = (text: string) => {
    stream.write(`\r\x1b[2K${text}`);
    open = true;
  };
  const newline = (text: string) => {
    stream.write(`${open ? '\r\x1b[2K' : ''}${text}\n`);
    open = false;
  };
  return {
    status: (what) => line(`${what}...`),
    event(e) {
      switch (e.type) {
        case 'start':
          newline(e.resumedFrom ? `resuming at step ${e.step} of ${e.totalSteps} from ${e.resumedFrom}` : `training ${e.totalSteps} steps`);
          break;
        case 'step':
          line(`step ${e.step}/${e.totalSteps}  loss ${e.loss.toFixed(4)}  lr ${e.lr.toExponential(2)}  ` +
            `|g| ${e.gradNorm.toFixed(3)}  ${e.tokensPerSec.toFixed(0)} tok/s  ETA ${clock(e.etaSeconds)}`);
          break;
        case 'eval':
          newline(`step ${e.step}: eval loss ${e.evalLoss.toFixed(4)}  ppl ${e.evalPpl.toFixed(3)}`);
          break;
        case 'checkpoint':
          newline(`step ${e.step}: checkpoint (${e.reason}) ${e.dir}`);
          break;
        case 'warning':
          newline(`warning: ${e.message}`);
          break;
      }
    },
    end: () => {
      if (open) stream.write('\n');
      open = false;
    },
  };
}
