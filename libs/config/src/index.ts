export { MeshConfig, portOf, publicBaseUrl } from './mesh-config.js';
export { ConfigError, loadConfig } from './load-config.js';
