import { describe, expect, it } from '@jest/globals';
import { ApiError } from '@backchannel/contracts';
import { HostNotFoundError, HostResolver, type ResolvedAddress } from './host-resolver.js';
import { ToolUrlGuard } from './tool-url-guard.js';

class TableResolver extends HostResolver {
  readonly asked: string[] = [];
  constructor(private readonly table: Record<string, string[] | Error>) {
    super();
  }
  resolve(hostname: string): Promise<ResolvedAddress[]> {
    this.asked.push(hostname);
    const entry = this.table[hostname];
    if (entry === undefined) return Promise.reject(new HostNotFoundError(hostname));
    if (entry instanceof Error) return Promise.reject(entry);
    return Promise.resolve(entry.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  }
}

async function refusal(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

describe('ToolUrlGuard', () => {
  const resolver = new TableResolver({
    'tools.example.com': ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'],
    'internal.example.com': ['10.0.0.7'],
    'half.example.com': ['93.184.216.34', '127.0.0.1'],
    'flaky.example.com': new Error('SERVFAIL'),
  });
  const sut = new ToolUrlGuard(resolver, false);

  it('accepts http and https URLs whose host resolves only to public addresses', async () => {
    expect((await sut.check('https://tools.example.com/weather?x=1')).href).toBe(
      'https://tools.example.com/weather?x=1',
    );
    expect((await sut.check('http://93.184.216.34:8080/')).hostname).toBe('93.184.216.34');
  });

  it.each([
    ['ftp://tools.example.com/x', 'http or https'],
    ['file:///etc/passwd', 'http or https'],
    ['javascript:alert(1)', 'http or https'],
    ['//tools.example.com/x', 'absolute URL'],
    ['https://user:pw@tools.example.com/', 'credentials'],
    ['http://internal.example.com/', 'a private address'],
    ['http://half.example.com/', 'a loopback address'],
    ['http://127.0.0.1/', 'a loopback address'],
    ['http://[::1]/', 'a loopback address'],
    ['http://169.254.169.254/latest/meta-data/', 'a cloud metadata address'],
    ['http://[fd00:ec2::254]/', 'a cloud metadata address'],
    ['http://2130706433/', 'a loopback address'],
    ['http://0x7f.1/', 'a loopback address'],
    ['http://nowhere.example.com/', 'could not be resolved'],
  ])('refuses %s (400 /tool/url)', async (url, reason) => {
    const error = await refusal(sut.check(url));
    expect(error.code).toBe('invalid_request');
    expect(error.pointer).toBe('/tool/url');
    expect(error.message).toContain(reason);
    expect(error.message).not.toContain('10.0.0.7');
  });

  it('a resolver failure that is not "no such host" is 503, not a refusal', async () => {
    const error = await refusal(sut.check('http://flaky.example.com/'));
    expect(error.code).toBe('unavailable');
  });

  it('with private networks allowed, checks only the URL itself and resolves nothing', async () => {
    const permissive = new TableResolver({});
    const allowing = new ToolUrlGuard(permissive, true);
    expect((await allowing.check('http://127.0.0.1:9/x')).port).toBe('9');
    expect((await allowing.check('http://internal.example.com/')).hostname).toBe('internal.example.com');
    expect(permissive.asked).toEqual([]);
    expect((await refusal(allowing.check('gopher://127.0.0.1/'))).pointer).toBe('/tool/url');
  });
});
