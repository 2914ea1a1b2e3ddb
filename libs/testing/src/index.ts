// Test helpers shared by the unit and e2e suites. Not part of any app build (the apps'
// tsconfig excludes libs/testing), so it may depend on dev-only tooling.
export { eventually, type EventuallyOptions } from './eventually.js';
export { freePort } from './free-port.js';
export { natsServerBinary, startNatsServer, type NatsServerHandle, type NatsServerOptions } from './nats-server.js';
export { startProcess, type ProcessExit, type ProcessHandle, type StartProcessOptions } from './process.js';
export { ManualClock } from './manual-clock.js';
