// The five deployables, declared once for `npm start`, the image entrypoint and the
// deployment checks (which compare compose and k8s against this list).
export const SERVICES = [
  { name: 'token-authority', portEnv: 'TOKEN_AUTHORITY_PORT', defaultPort: 8081 },
  { name: 'ordering-sequencer', portEnv: 'SEQUENCER_PORT', defaultPort: 8082 },
  { name: 'conversation-injector', portEnv: 'INJECTOR_PORT', defaultPort: 8083 },
  { name: 'tool-dispatcher', portEnv: 'DISPATCHER_PORT', defaultPort: 8084 },
  { name: 'callback-ingress', portEnv: 'INGRESS_PORT', defaultPort: 8080 },
];

/** The built entry point of a service, relative to the repository root. */
export function entryOf(name) {
  return `dist/apps/${name}/src/main.js`;
}
