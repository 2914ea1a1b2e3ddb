import { describe, expect, it } from '@jest/globals';

import { freePort } from './free-port.js';
import { startProcess } from './process.js';

describe('startProcess', () => {
  it('captures output lines, waits for a line and reports the exit', async () => {
    // The handler goes in before anything is printed: the test signals as soon as it reads a line.
    const script = `process.on('SIGTERM', () => { console.log('bye'); process.exit(0); }); setInterval(() => {}, 1000);
      console.log('ready on ' + process.env.GREETING_PORT); console.error('to stderr');`;
    const port = await freePort();
    const child = await startProcess(process.execPath, ['-e', script], {
      name: 'greeter',
      env: { GREETING_PORT: String(port) },
    });
    await expect(child.waitForLine(/^ready on (\d+)$/)).resolves.toBe(`ready on ${port}`);
    await child.waitForLine(/stderr/);
    child.kill('SIGTERM');
    await expect(child.exited).resolves.toEqual({ code: 0, signal: null });
    expect(child.output()).toEqual(expect.arrayContaining([`ready on ${port}`, 'to stderr', 'bye']));
  });

  it('rejects a wait when the process exits first, with its output', async () => {
    const child = await startProcess(process.execPath, ['-e', `console.log('boom'); process.exit(3)`], {
      name: 'crasher',
    });
    await expect(child.waitForLine(/never/)).rejects.toThrow(/crasher .*exited.*boom/s);
    await expect(child.exited).resolves.toEqual({ code: 3, signal: null });
  });

  it('rejects when the command does not exist', async () => {
    await expect(startProcess('/nonexistent/binary', [])).rejects.toThrow(/cannot start binary/);
  });
});
