import { afterAll, describe, expect, it } from '@jest/globals';
import { INJECTED_ERROR_CODE, type MessageSource } from '@backchannel/contracts';
import { startProcess, type ProcessHandle } from '@backchannel/testing';

/** The demo's last line: `DEMO SUMMARY {json}` (scripts/demo.mjs). */
const SUMMARY_PREFIX = 'DEMO SUMMARY ';
/** The port of a broker that may already run on the machine: the demo must never use it. */
const SHARED_BROKER_PORT = 4222;
const TIMEOUT_SOURCE: MessageSource['type'] = 'timeout';

interface DemoSummary {
  ok: boolean;
  broker: string;
  parallel_tools: { name: string; work_ms: number; sequence: number; ended_at: string }[];
  finished_order: number[];
  injected_order: number[];
  timeout?: { name: string; sequence: number; source_type: string; code: string; position: number };
  api_message?: { status: number; role: string; position: number };
}

/**
 * `npm run demo` (issue 7's acceptance) as part of the test suite: the script runs as a child
 * process on its own private broker and random ports, against dist/ as the jest global setup
 * built it, and its summary line must show what the demo is for.
 */
describe('npm run demo', () => {
  let demo: ProcessHandle | undefined;

  afterAll(async () => {
    demo?.kill('SIGTERM');
    await demo?.exited;
  });

  it('runs to completion: parallel tools finish out of order and are injected in order, a timeout becomes an error, an API message is added', async () => {
    demo = await startProcess(process.execPath, ['scripts/demo.mjs'], {
      name: 'demo',
      env: { BACKCHANNEL_SKIP_BUILD: '1', NATS_URL: undefined },
    });
    const exit = await demo.exited;
    const output = demo.output();

    // On failure the diff shows the demo's last lines.
    expect({ exit, tail: exit.code === 0 ? [] : output.slice(-20) }).toEqual({
      exit: { code: 0, signal: null },
      tail: [],
    });
    const summaryLine = output.at(-1) ?? '';
    expect(summaryLine.startsWith(SUMMARY_PREFIX)).toBe(true);
    const summary = JSON.parse(summaryLine.slice(SUMMARY_PREFIX.length)) as DemoSummary;

    expect(summary.ok).toBe(true);
    const broker = new URL(summary.broker);
    expect(broker.hostname).toBe('127.0.0.1');
    expect(Number(broker.port)).not.toBe(SHARED_BROKER_PORT);

    // Three tools in flight at once; the first registered works longest, so they finish out
    // of order, yet every result is injected in sequence order.
    const tools = summary.parallel_tools;
    expect(tools.map((tool) => tool.sequence)).toEqual([1, 2, 3]);
    expect([...summary.finished_order].sort((a, b) => a - b)).toEqual([1, 2, 3]);
    expect(summary.finished_order).not.toEqual([1, 2, 3]);
    const endedAt = (sequence: number) => Date.parse(tools.find((tool) => tool.sequence === sequence)!.ended_at);
    const slowest = tools.reduce((a, b) => (a.work_ms > b.work_ms ? a : b));
    const fastest = tools.reduce((a, b) => (a.work_ms < b.work_ms ? a : b));
    expect(slowest.sequence).toBeLessThan(fastest.sequence);
    expect(endedAt(fastest.sequence)).toBeLessThan(endedAt(slowest.sequence));
    expect(summary.injected_order).toEqual([1, 2, 3, 4]);

    // The tool that outlived its timeout_ms is an error at its own place.
    expect(summary.timeout).toMatchObject({
      sequence: 4,
      source_type: TIMEOUT_SOURCE,
      code: INJECTED_ERROR_CODE.work_item_timed_out,
    });

    // The system message added through the tenant API, injected after the results.
    expect(summary.api_message).toMatchObject({ status: 202, role: 'system' });
    expect(summary.api_message!.position).toBeGreaterThan(summary.timeout!.position);

    // And it was printed as a live transcript, one line per injected message.
    const transcript = output.filter((line) => line.includes('TRANSCRIPT #'));
    expect(transcript.length).toBeGreaterThanOrEqual(summary.api_message!.position);
    expect(transcript.some((line) => line.includes(INJECTED_ERROR_CODE.work_item_timed_out))).toBe(true);
  }, 90_000);
});
