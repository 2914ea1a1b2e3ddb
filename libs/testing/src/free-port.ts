import { createServer } from 'node:net';

/**
 * A loopback TCP port that was free a moment ago: the kernel picks one for a listener on
 * port 0, which is then closed. Another process may take it before the caller binds it, so
 * prefer letting the code under test listen on port 0 itself and reading the port back;
 * use this only where a port must be known before the process that binds it starts.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`unexpected listener address: ${String(address)}`));
        return;
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}
