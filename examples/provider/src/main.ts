/**
 * Runs the example provider with a demo tool:
 *   npx tsc -p examples/provider/tsconfig.json
 *   PORT=9000 SIGNING_SECRET=whsec_… node examples/provider/dist/main.js
 * The demo tool adds `a` and `b` after `delay_ms` (default 500), posting progress on the way.
 */
import { ToolError, startExampleProvider, type ToolWork } from './example-provider.js';

const addSlowly: ToolWork = async (args, context) => {
  const a = Number(args.a);
  const b = Number(args.b);
  if (!Number.isFinite(a) || !Number.isFinite(b))
    throw new ToolError('invalid_arguments', 'a and b must be numbers', false);
  await context.progress('adding', 50);
  await waitOrAbort(Number(args.delay_ms ?? 500), context.signal);
  return { sum: a + b };
};

function waitOrAbort(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new ToolError('cancelled', 'the work item was cancelled'));
    });
  });
}

async function main(): Promise<void> {
  const provider = await startExampleProvider({
    port: Number(process.env.PORT ?? 9000),
    host: process.env.HOST ?? '127.0.0.1',
    ...(process.env.SIGNING_SECRET ? { signingSecret: process.env.SIGNING_SECRET } : {}),
    work: addSlowly,
  });
  console.log(
    JSON.stringify({
      msg: 'example provider listening',
      url: provider.url,
      signed: Boolean(process.env.SIGNING_SECRET),
    }),
  );
  const stop = (): void => void provider.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

void main();
