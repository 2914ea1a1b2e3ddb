import { describe, expect, it } from '@jest/globals';
import { CRASH_POINTS, crashPoint, type CrashPointName } from './crash-point.js';
import { ConfigError, loadConfig } from './load-config.js';

describe('crash points (fault-injection tests only)', () => {
  const env = { NATS_URL: 'nats://127.0.0.1:4222' };

  it('kills only at the configured point, and never when none is configured', () => {
    const killed: CrashPointName[] = [];
    const kill = (name: CrashPointName) => killed.push(name);
    for (const name of CRASH_POINTS) crashPoint(name, undefined, kill);
    expect(killed).toEqual([]);
    for (const name of CRASH_POINTS) crashPoint(name, 'ingress.after_durable_write', kill);
    expect(killed).toEqual(['ingress.after_durable_write']);
  });

  it('BACKCHANNEL_CRASH_POINT is optional and takes only the known names', () => {
    expect(loadConfig(env).BACKCHANNEL_CRASH_POINT).toBeUndefined();
    for (const name of CRASH_POINTS) {
      expect(loadConfig({ ...env, BACKCHANNEL_CRASH_POINT: name }).BACKCHANNEL_CRASH_POINT).toBe(name);
    }
    expect(() => loadConfig({ ...env, BACKCHANNEL_CRASH_POINT: 'ingress.somewhere' })).toThrow(
      /BACKCHANNEL_CRASH_POINT="ingress.somewhere": BACKCHANNEL_CRASH_POINT must be one of/,
    );
  });

  it('is refused when NODE_ENV=production', () => {
    expect(() =>
      loadConfig({ ...env, NODE_ENV: 'production', BACKCHANNEL_CRASH_POINT: 'ingress.after_token_check' }),
    ).toThrow(ConfigError);
    expect(loadConfig({ ...env, NODE_ENV: 'production' }).BACKCHANNEL_CRASH_POINT).toBeUndefined();
  });
});
