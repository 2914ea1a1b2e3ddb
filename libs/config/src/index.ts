export { MeshConfig, otlpTracesUrl, portOf, publicBaseUrl } from './mesh-config.js';
export { ConfigError, loadConfig } from './load-config.js';
export { Clock } from './clock.js';
export { CRASH_POINTS, crashPoint, type CrashPointName } from './crash-point.js';
