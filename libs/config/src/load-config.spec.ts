import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from './load-config.js';

describe('loadConfig: INJECTOR_RATE_LIMIT_PER_KEY', () => {
  const env = { NATS_URL: 'nats://127.0.0.1:4222' };

  it('defaults to 100 requests per second and takes a positive integer', () => {
    expect(loadConfig(env).INJECTOR_RATE_LIMIT_PER_KEY).toBe(100);
    expect(loadConfig({ ...env, INJECTOR_RATE_LIMIT_PER_KEY: '3' }).INJECTOR_RATE_LIMIT_PER_KEY).toBe(3);
  });

  it.each(['0', '-1', '2.5', 'many', '1000001'])('refuses %s, naming the variable', (value) => {
    const sut = () => loadConfig({ ...env, INJECTOR_RATE_LIMIT_PER_KEY: value });
    expect(sut).toThrow(ConfigError);
    expect(sut).toThrow(/INJECTOR_RATE_LIMIT_PER_KEY=/);
  });
});
