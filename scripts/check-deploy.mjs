#!/usr/bin/env node
// Offline checks of the deployment files (no Docker engine or cluster needed):
//
//   node scripts/check-deploy.mjs                 run every check, one line each
//   node scripts/check-deploy.mjs --write-rules   regenerate k8s/base/prometheus-rule.yaml
//                                                 from deploy/prometheus/alerts.yml
//
// - every YAML file parses; yamllint (.yamllint.yml) passes
// - every Kubernetes object under k8s/ validates against the kubernetes-models schemas
//   (and @kubernetes-models/prometheus-operator), has no unknown field names, and each
//   overlay, built from its kustomization (and compared with `kubectl kustomize` where
//   kubectl exists), keeps the mesh's invariants (probes, security, replicas, ...)
// - docker-compose.yml, the k8s Deployments and the image's entry point name exactly
//   the services of scripts/services.mjs, with their ports
// - the PrometheusRule's groups equal deploy/prometheus/alerts.yml; promtool checks and
//   unit-tests the rules
// - NATS: the compose config and the Helm values grant the same accounts and
//   permissions; every subject they grant, export or import is one libs/contracts declares
//   (read from the built contract, dist/libs/contracts, built first when stale); nats-server
//   accepts the config; a private nats-server started from it lets each user do what its
//   role needs (with the contract's names) and refuses the rest
//
// Tools that are missing (yamllint, promtool, nats-server, kubectl) make their checks
// SKIPPED, never passed; scripts/ensure-deploy-tools.sh installs them. Exit 1 on any
// failure, and with CI=true also on any SKIPPED check.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseAllDocuments, parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { CONTRACT_ENTRY, contractBuildReason } from './build-state.mjs';
import { SERVICES } from './services.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const NAMES = SERVICES.map((service) => service.name);
const ALERTS_FILE = 'deploy/prometheus/alerts.yml';
const ALERTS_TEST_FILE = 'deploy/prometheus/alerts.test.yml';
const RULE_FILE = 'k8s/base/prometheus-rule.yaml';
const NATS_CONF = 'deploy/nats/nats.conf';
const HELM_VALUES = 'deploy/nats/helm-values.yaml';
const COMPOSE_FILE = 'docker-compose.yml';
const MIN_NATS_VERSION = [2, 10, 23];
/** CI=true (or 1): SKIPPED checks fail the run instead of passing silently. */
const STRICT = /^(true|1)$/i.test(process.env.CI ?? '');
/** Expectations per overlay directory name; other overlays get the generic checks only. */
const OVERLAY_RULES = {
  development: { replicas: (n) => n === 1, replicasText: 'exactly 1', config: { STREAM_REPLICAS: '1' } },
  production: {
    replicas: (n) => n >= 2,
    replicasText: 'at least 2',
    config: { STREAM_REPLICAS: '3', SEQUENCER_PARTITIONS: '16' },
  },
};

// ---------------------------------------------------------------------------------------
// Reporting: one line per check, a closing "N passed, N failed, N skipped" line.

const results = { passed: 0, failed: 0, skipped: 0 };

function report(name, problems, detail = '') {
  if (problems.length === 0) {
    results.passed++;
    console.log(`PASS     ${name}${detail ? ` (${detail})` : ''}`);
    return;
  }
  results.failed++;
  console.log(`FAIL     ${name}`);
  for (const problem of problems) console.log(`           - ${problem}`);
}

function skip(name, why) {
  results.skipped++;
  console.log(`SKIPPED  ${name}: ${why}`);
}

/**
 * A cross-check that needs a tool no package source here provides (kubectl: Debian's is too
 * old for our kustomizations). What it cross-checks is checked without it, so its absence
 * is said, never fatal, even with CI=true.
 */
function skipOptional(name, why) {
  results.optional = (results.optional ?? 0) + 1;
  console.log(`SKIPPED  ${name}: ${why} (optional cross-check)`);
}

/** Runs one check; an exception inside it is that check's failure, not the script's end. */
async function check(name, fn) {
  try {
    const outcome = await fn();
    if (outcome && outcome.skip) return skip(name, outcome.skip);
    report(name, outcome?.problems ?? [], outcome?.detail);
  } catch (error) {
    report(name, [error instanceof Error ? error.message : String(error)]);
  }
}

// ---------------------------------------------------------------------------------------
// Files

const read = (file) => readFileSync(join(ROOT, file), 'utf8');
const rel = (abs) => relative(ROOT, abs);

function walk(dir, predicate) {
  const out = [];
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...walk(path, predicate));
    else if (predicate(path)) out.push(path);
  }
  return out;
}

const isYaml = (path) => /\.ya?ml$/.test(path);

/** Every YAML file of the deployment: k8s/, deploy/, the compose file, the lint config. */
function deploymentYamlFiles() {
  return [
    ...walk(join(ROOT, 'k8s'), isYaml),
    ...walk(join(ROOT, 'deploy'), isYaml),
    join(ROOT, COMPOSE_FILE),
    join(ROOT, '.yamllint.yml'),
  ].filter((path) => existsSync(path));
}

/** Parses every document of a YAML file; YAML merge keys (`<<`) resolved. */
function loadDocs(abs) {
  const docs = parseAllDocuments(readFileSync(abs, 'utf8'), { merge: true });
  const problems = [];
  for (const doc of docs) {
    for (const error of doc.errors) problems.push(`${rel(abs)}: ${error.message.split('\n')[0]}`);
  }
  if (problems.length > 0) throw new Error(problems.join('; '));
  return docs.map((doc) => doc.toJS({ maxAliasCount: 100 })).filter((value) => value !== null && value !== undefined);
}

const loadOne = (file) => parseYaml(read(file), { merge: true });

function which(binary) {
  const found = spawnSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' });
  if (found.status === 0) return found.stdout.trim();
  // Debian installs nats-server in /usr/sbin, often not on a non-root user's PATH.
  const sbin = join('/usr/sbin', binary);
  return existsSync(sbin) ? sbin : null;
}

function run(command, args, options = {}) {
  const out = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', ...options });
  return { status: out.status, output: `${out.stdout ?? ''}${out.stderr ?? ''}`.trim() };
}

// ---------------------------------------------------------------------------------------
// Kubernetes objects: schema validation with kubernetes-models

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume', 'StorageClass']);
const modelCache = new Map();

/** The kubernetes-models class for an apiVersion/kind, e.g. apps/v1 Deployment. */
async function modelFor(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (modelCache.has(key)) return modelCache.get(key);
  const candidates = apiVersion.startsWith('monitoring.coreos.com/')
    ? [`@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`]
    : [`kubernetes-models/${apiVersion}/${kind}`];
  let model = null;
  for (const specifier of candidates) {
    try {
      model = (await import(specifier))[kind] ?? null;
    } catch {
      model = null;
    }
    if (model) break;
  }
  modelCache.set(key, model);
  return model;
}

async function validateObject(object) {
  if (!object || typeof object !== 'object') return ['not a mapping'];
  const { apiVersion, kind } = object;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return ['apiVersion or kind missing'];
  const Model = await modelFor(apiVersion, kind);
  if (!Model) return [`${apiVersion} ${kind}: no kubernetes-models class (unknown kind or API version)`];
  try {
    new Model(object).validate();
  } catch (error) {
    return [`${kind}/${object.metadata?.name}: ${error.message}`];
  }
  return unknownFields(object).map((path) => `${kind}/${object.metadata?.name}: unknown field ${path}`);
}

// The generated schemas accept any extra property, so a misspelt field ("readinesProbe")
// would pass: every key must also be a property name known to some model.
let knownFieldNames = null;
const FREE_FORM_KEYS = new Set([
  'labels',
  'annotations',
  'data',
  'stringData',
  'binaryData',
  'matchLabels',
  'nodeSelector',
  'limits',
  'requests',
  'capacity',
  'hard',
]);

function loadKnownFieldNames() {
  if (knownFieldNames) return knownFieldNames;
  knownFieldNames = new Set();
  const roots = ['kubernetes-models', '@kubernetes-models/apimachinery', '@kubernetes-models/prometheus-operator'];
  for (const pkg of roots) {
    const dir = join(ROOT, 'node_modules', pkg);
    for (const file of walk(dir, (path) => path.endsWith('.d.ts') && !path.includes('_schemas'))) {
      for (const match of readFileSync(file, 'utf8').matchAll(/^\s+"?([A-Za-z_$][\w$-]*)"?\??:/gm)) {
        knownFieldNames.add(match[1]);
      }
    }
  }
  return knownFieldNames;
}

function unknownFields(object) {
  const known = loadKnownFieldNames();
  const unknown = [];
  const visit = (value, path, key) => {
    if (Array.isArray(value)) return value.forEach((item, i) => visit(item, `${path}[${i}]`, key));
    if (!value || typeof value !== 'object') return;
    if (FREE_FORM_KEYS.has(key)) return;
    if (object.kind === 'Service' && path === '.spec.selector') return;
    for (const [child, childValue] of Object.entries(value)) {
      if (!known.has(child)) unknown.push(`${path}.${child}`);
      visit(childValue, `${path}.${child}`, child);
    }
  };
  visit(object, '', '');
  return unknown;
}

// ---------------------------------------------------------------------------------------
// Kustomize: a small builder for what our kustomizations use (resources, patches as
// strategic-merge files, images, replicas, namespace), refusing anything else.

const KUSTOMIZATION_KEYS = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'patches', 'images', 'replicas']);

function kustomizationOf(dir) {
  const file = join(dir, 'kustomization.yaml');
  if (!existsSync(file)) throw new Error(`${rel(dir)} has no kustomization.yaml`);
  const kustomization = loadDocs(file)[0];
  for (const key of Object.keys(kustomization)) {
    if (!KUSTOMIZATION_KEYS.has(key))
      throw new Error(`${rel(file)}: "${key}" is not supported by this check's builder`);
  }
  return kustomization;
}

/** Strategic merge, simplified: maps merge, lists of named items merge by name, null deletes. */
function strategicMerge(target, patch) {
  if (Array.isArray(patch)) {
    if (!Array.isArray(target) || !patch.every((item) => item && typeof item === 'object' && 'name' in item)) {
      return structuredClone(patch);
    }
    const merged = structuredClone(target);
    for (const item of patch) {
      const index = merged.findIndex((existing) => existing?.name === item.name);
      if (index === -1) merged.push(structuredClone(item));
      else merged[index] = strategicMerge(merged[index], item);
    }
    return merged;
  }
  if (!patch || typeof patch !== 'object') return patch;
  const merged = target && typeof target === 'object' && !Array.isArray(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else merged[key] = strategicMerge(merged[key], value);
  }
  return merged;
}

const objectId = (object) => `${object.kind}/${object.metadata?.namespace ?? ''}/${object.metadata?.name}`;

/** Builds a kustomization directory; `files` collects which files were resources or patches. */
function buildKustomization(dir, files = { resources: new Set(), patches: new Set() }) {
  const kustomization = kustomizationOf(dir);
  files.resources.add(join(dir, 'kustomization.yaml'));
  let objects = [];
  for (const resource of kustomization.resources ?? []) {
    const path = resolve(dir, resource);
    if (existsSync(path) && statSync(path).isDirectory()) {
      objects.push(...buildKustomization(path, files).objects);
    } else {
      files.resources.add(path);
      objects.push(...loadDocs(path));
    }
  }
  for (const patch of kustomization.patches ?? []) {
    if (!patch.path || patch.target) throw new Error(`${rel(dir)}: only strategic-merge patch files are supported`);
    const path = resolve(dir, patch.path);
    files.patches.add(path);
    for (const partial of loadDocs(path)) {
      const index = objects.findIndex(
        (object) => object.kind === partial.kind && object.metadata?.name === partial.metadata?.name,
      );
      if (index === -1) throw new Error(`${rel(path)}: patch matches no ${partial.kind}/${partial.metadata?.name}`);
      objects[index] = strategicMerge(objects[index], partial);
    }
  }
  for (const { name, count } of kustomization.replicas ?? []) {
    const matches = objects.filter((object) => object.kind === 'Deployment' && object.metadata?.name === name);
    if (matches.length === 0) throw new Error(`${rel(dir)}: replicas names no Deployment ${name}`);
    for (const object of matches) object.spec.replicas = count;
  }
  for (const image of kustomization.images ?? []) {
    let used = false;
    for (const container of objects.flatMap(containersOf)) {
      const [imageName, tag] = splitImage(container.image);
      if (imageName !== image.name) continue;
      used = true;
      container.image = `${image.newName ?? imageName}${image.digest ? `@${image.digest}` : `:${image.newTag ?? tag ?? 'latest'}`}`;
    }
    if (!used) throw new Error(`${rel(dir)}: images names "${image.name}", which no container uses`);
  }
  if (kustomization.namespace) {
    objects = objects.map((object) =>
      CLUSTER_SCOPED.has(object.kind)
        ? object
        : { ...object, metadata: { ...object.metadata, namespace: kustomization.namespace } },
    );
  }
  const seen = new Set();
  for (const object of objects) {
    const id = objectId(object);
    if (seen.has(id)) throw new Error(`${rel(dir)}: ${id} is defined twice`);
    seen.add(id);
  }
  return { objects, files };
}

function splitImage(image) {
  const at = image.lastIndexOf(':');
  return at > image.lastIndexOf('/') ? [image.slice(0, at), image.slice(at + 1)] : [image, undefined];
}

function containersOf(object) {
  const spec = object.spec?.template?.spec;
  return spec ? [...(spec.initContainers ?? []), ...(spec.containers ?? [])] : [];
}

// ---------------------------------------------------------------------------------------
// Invariants of a built overlay

function matchesSelector(labels = {}, selector = {}) {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

function overlayProblems(name, objects, secretExamples) {
  const problems = [];
  const byKind = (kind) => objects.filter((object) => object.kind === kind);
  const deployments = byKind('Deployment');
  const services = byKind('Service');
  const hpas = byKind('HorizontalPodAutoscaler');
  const pdbs = byKind('PodDisruptionBudget');
  const configMaps = byKind('ConfigMap');
  const deploymentNames = deployments.map((d) => d.metadata.name).sort();
  if (!isDeepStrictEqual(deploymentNames, [...NAMES].sort())) {
    problems.push(
      `Deployments ${deploymentNames.join(', ')} are not the services of scripts/services.mjs (${NAMES.join(', ')})`,
    );
  }
  const images = new Set(deployments.flatMap(containersOf).map((container) => container.image));
  if (images.size !== 1) problems.push(`the services should run one image, found: ${[...images].join(', ')}`);

  for (const { name: service, defaultPort, portEnv } of SERVICES) {
    const where = `${service}`;
    const deployment = deployments.find((d) => d.metadata.name === service);
    if (!deployment) continue;
    const pod = deployment.spec.template.spec;
    const podLabels = deployment.spec.template.metadata?.labels ?? {};
    if (!matchesSelector(podLabels, deployment.spec.selector?.matchLabels))
      problems.push(`${where}: selector does not match its pod labels`);
    if (pod.containers.length !== 1) problems.push(`${where}: expected one container`);
    const container = pod.containers[0];
    if (!isDeepStrictEqual(container.args, [service]))
      problems.push(`${where}: args should be ["${service}"], not ${JSON.stringify(container.args)}`);
    if (container.command) problems.push(`${where}: must not override the image's entry point (command)`);
    const http = (container.ports ?? []).find((port) => port.name === 'http');
    if (http?.containerPort !== defaultPort) problems.push(`${where}: containerPort "http" should be ${defaultPort}`);
    const probePath = (probe) => probe?.httpGet?.path;
    if (probePath(container.livenessProbe) !== '/healthz') problems.push(`${where}: livenessProbe should GET /healthz`);
    if (probePath(container.readinessProbe) !== '/readyz') problems.push(`${where}: readinessProbe should GET /readyz`);
    if (!container.startupProbe) problems.push(`${where}: no startupProbe`);
    if (
      !container.resources?.requests?.cpu ||
      !container.resources?.requests?.memory ||
      !container.resources?.limits?.memory
    ) {
      problems.push(`${where}: needs cpu and memory requests and a memory limit`);
    }
    const security = container.securityContext ?? {};
    const runAsNonRoot = security.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
    if (runAsNonRoot !== true) problems.push(`${where}: runAsNonRoot must be true`);
    if (security.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem must be true`);
    if (security.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation must be false`);
    if (!(security.capabilities?.drop ?? []).includes('ALL')) problems.push(`${where}: capabilities must drop ALL`);
    if (!(pod.topologySpreadConstraints?.length > 0)) problems.push(`${where}: no topologySpreadConstraints`);
    if (!(pod.terminationGracePeriodSeconds >= 15))
      problems.push(`${where}: terminationGracePeriodSeconds must be at least 15`);

    // Secrets only by reference, and only to keys secret.example.yaml documents.
    for (const env of container.env ?? []) {
      if (/TOKEN|PASSWORD|SECRET/.test(env.name) && env.value !== undefined)
        problems.push(`${where}: ${env.name} is a literal, not a secretKeyRef`);
      const ref = env.valueFrom?.secretKeyRef;
      if (ref && !secretExamples.get(ref.name)?.has(ref.key)) {
        problems.push(
          `${where}: ${env.name} reads Secret ${ref.name} key ${ref.key}, which secret.example.yaml does not show`,
        );
      }
    }
    const natsUser = (container.env ?? []).find((env) => env.name === 'NATS_USER')?.value;
    if (natsUser !== service) problems.push(`${where}: NATS_USER should be "${service}"`);
    if (!(container.env ?? []).some((env) => env.name === 'NATS_PASSWORD' && env.valueFrom?.secretKeyRef)) {
      problems.push(`${where}: NATS_PASSWORD must come from a secretKeyRef`);
    }
    for (const source of container.envFrom ?? []) {
      const ref = source.configMapRef?.name;
      if (ref && !configMaps.some((c) => c.metadata.name === ref))
        problems.push(`${where}: envFrom names a missing ConfigMap ${ref}`);
    }
    const config = configMaps.find((c) => c.metadata.name === container.envFrom?.[0]?.configMapRef?.name);
    if (config && config.data?.[portEnv] !== String(defaultPort))
      problems.push(`${where}: ConfigMap ${portEnv} should be "${defaultPort}"`);

    const svc = services.find((s) => s.metadata.name === service);
    if (!svc) problems.push(`${where}: no Service`);
    else {
      if (!matchesSelector(podLabels, svc.spec.selector))
        problems.push(`${where}: Service selector does not match the pods`);
      const port = (svc.spec.ports ?? []).find((p) => p.name === 'http');
      if (port?.port !== defaultPort) problems.push(`${where}: Service port "http" should be ${defaultPort}`);
    }
    if (!pdbs.some((pdb) => matchesSelector(podLabels, pdb.spec.selector?.matchLabels)))
      problems.push(`${where}: no PodDisruptionBudget`);

    const hpa = hpas.find(
      (h) => h.spec.scaleTargetRef?.kind === 'Deployment' && h.spec.scaleTargetRef?.name === service,
    );
    if (hpa && deployment.spec.replicas !== undefined)
      problems.push(`${where}: has an HPA, so the Deployment must not set replicas`);
    const rules = OVERLAY_RULES[name];
    if (rules) {
      const count = hpa ? (hpa.spec.minReplicas ?? 1) : (deployment.spec.replicas ?? 1);
      if (!rules.replicas(count))
        problems.push(`${where}: ${hpa ? 'HPA minReplicas' : 'replicas'} is ${count}, should be ${rules.replicasText}`);
    }
  }
  for (const service of ['callback-ingress', 'conversation-injector']) {
    if (!hpas.some((h) => h.spec.scaleTargetRef?.name === service))
      problems.push(`${service}: no HorizontalPodAutoscaler`);
  }
  for (const hpa of hpas) {
    if (!deployments.some((d) => d.metadata.name === hpa.spec.scaleTargetRef?.name))
      problems.push(`HPA ${hpa.metadata.name} targets a missing Deployment`);
  }
  const rules = OVERLAY_RULES[name];
  if (rules) {
    for (const [key, value] of Object.entries(rules.config)) {
      for (const config of configMaps) {
        if (config.data?.[key] !== value)
          problems.push(
            `ConfigMap ${config.metadata.name}: ${key} is ${JSON.stringify(config.data?.[key])}, should be "${value}"`,
          );
      }
    }
  }
  const policies = byKind('NetworkPolicy');
  const denyAll = policies.some(
    (p) =>
      Object.keys(p.spec.podSelector ?? {}).length === 0 &&
      ['Ingress', 'Egress'].every((t) => p.spec.policyTypes?.includes(t)) &&
      !p.spec.ingress &&
      !p.spec.egress,
  );
  if (!denyAll) problems.push('no default-deny NetworkPolicy');
  for (const deployment of deployments) {
    const labels = deployment.spec.template.metadata?.labels ?? {};
    const allowed = policies.some(
      (p) =>
        p.spec.policyTypes?.includes('Ingress') &&
        matchesSelector(labels, p.spec.podSelector?.matchLabels) &&
        (p.spec.ingress ?? []).length > 0,
    );
    if (!allowed)
      problems.push(`${deployment.metadata.name}: no NetworkPolicy admits any ingress (Prometheus at least)`);
  }
  const monitors = byKind('ServiceMonitor');
  for (const svc of services) {
    const scraped = monitors.some(
      (m) =>
        matchesSelector(svc.metadata.labels, m.spec.selector?.matchLabels) &&
        m.spec.endpoints?.some((e) => e.port === 'http' && e.path === '/metrics'),
    );
    if (!scraped) problems.push(`Service ${svc.metadata.name}: no ServiceMonitor scrapes its /metrics`);
  }
  if (byKind('PrometheusRule').length === 0) problems.push('no PrometheusRule');
  if (byKind('Secret').length > 0) problems.push('Secrets must not be part of an overlay (the platform creates them)');
  return problems;
}

// ---------------------------------------------------------------------------------------
// NATS config: a reader for the subset of the NATS config format deploy/nats/nats.conf
// uses (maps, arrays, quoted and bare values, comments), enough to compare it with the
// Helm values.

function parseNatsConf(text) {
  let i = 0;
  const error = (message) => {
    const line = text.slice(0, i).split('\n').length;
    throw new Error(`${NATS_CONF}:${line}: ${message}`);
  };
  const skipSpace = (newlines = true) => {
    for (;;) {
      const ch = text[i];
      if (ch === '#' || (ch === '/' && text[i + 1] === '/')) {
        while (i < text.length && text[i] !== '\n') i++;
      } else if (ch === ' ' || ch === '\t' || ch === '\r' || (newlines && ch === '\n')) i++;
      else return;
    }
  };
  const scalar = (raw) => {
    if (raw === 'true') return true;
    if (raw === 'false') return false;
    if (/^-?\d+$/.test(raw)) return Number(raw);
    return raw;
  };
  const readKey = () => {
    if (text[i] === '"' || text[i] === "'") return readQuoted();
    const start = i;
    while (i < text.length && !/[\s:={}[\],]/.test(text[i])) i++;
    if (start === i) error('key expected');
    return text.slice(start, i);
  };
  const readQuoted = () => {
    const quote = text[i++];
    const start = i;
    while (i < text.length && text[i] !== quote) i++;
    if (i >= text.length) error('unterminated string');
    return text.slice(start, i++);
  };
  const readValue = () => {
    skipSpace();
    const ch = text[i];
    if (ch === '{') {
      i++;
      return readMap('}');
    }
    if (ch === '[') {
      i++;
      const list = [];
      for (;;) {
        skipSpace();
        if (text[i] === ']') {
          i++;
          return list;
        }
        list.push(readValue());
        skipSpace();
        if (text[i] === ',') i++;
      }
    }
    if (ch === '"' || ch === "'") return readQuoted();
    const start = i;
    while (i < text.length && !/[\n,;}\]#]/.test(text[i])) i++;
    return scalar(text.slice(start, i).trim());
  };
  const readMap = (end) => {
    const map = {};
    for (;;) {
      skipSpace();
      if (i >= text.length) {
        if (end) error(`missing "${end}"`);
        return map;
      }
      if (end && text[i] === end) {
        i++;
        return map;
      }
      const key = readKey();
      skipSpace(false);
      if (text[i] === ':' || text[i] === '=') i++;
      map[key] = readValue();
      skipSpace(false);
      if (text[i] === ',' || text[i] === ';') i++;
    }
  };
  return readMap(null);
}

/** `<< $NAME >>` (Helm chart syntax for a bare config value) and `$NAME` both become "$NAME". */
function normalizeNats(value) {
  if (Array.isArray(value)) return value.map(normalizeNats);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, normalizeNats(child)]));
  }
  if (typeof value === 'string') {
    const bare = /^<<\s*(.*?)\s*>>$/.exec(value);
    return bare ? bare[1] : value;
  }
  return value;
}

function compareVersions(a, b) {
  for (let k = 0; k < 3; k++) if ((a[k] ?? 0) !== (b[k] ?? 0)) return (a[k] ?? 0) - (b[k] ?? 0);
  return 0;
}

/** The version in an image tag such as "2.10.24-alpine" or "nats:2.10-alpine". */
function natsVersionOf(tag) {
  const match = /(?:^|:)v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(tag ?? '');
  if (!match) return null;
  return {
    version: [Number(match[1]), Number(match[2]), match[3] === undefined ? undefined : Number(match[3])],
    patchGiven: match[3] !== undefined,
  };
}

function natsVersionProblems(where, tag) {
  const parsed = natsVersionOf(tag);
  if (!parsed) return [`${where}: cannot read a version from "${tag}"`];
  const { version, patchGiven } = parsed;
  if (version[0] !== 2) return [`${where}: ${tag} is not a 2.x server`];
  if (!patchGiven) return version[1] >= 10 ? [] : [`${where}: ${tag} is older than 2.10`];
  return compareVersions(version, MIN_NATS_VERSION) >= 0
    ? []
    : [`${where}: ${tag} is older than ${MIN_NATS_VERSION.join('.')}`];
}

function passwordVariables(text) {
  return [...new Set([...text.matchAll(/\$(NATS_PASSWORD_[A-Z_]+)/g)].map((m) => m[1]))].sort();
}

// ---------------------------------------------------------------------------------------
// The checks

async function checkYamlParses() {
  const problems = [];
  const files = deploymentYamlFiles();
  for (const file of files) {
    try {
      loadDocs(file);
    } catch (error) {
      problems.push(error.message);
    }
  }
  return { problems, detail: `${files.length} files` };
}

async function checkYamllint() {
  if (!which('yamllint')) return { skip: 'yamllint not installed (scripts/ensure-deploy-tools.sh installs it)' };
  const files = deploymentYamlFiles().map(rel);
  const out = run('yamllint', ['-c', '.yamllint.yml', '-f', 'parsable', ...files]);
  return { problems: out.status === 0 ? [] : out.output.split('\n'), detail: `${files.length} files` };
}

function secretExamplesOf(files) {
  const secrets = new Map();
  for (const file of files) {
    for (const object of loadDocs(file)) {
      if (object.kind !== 'Secret') continue;
      secrets.set(object.metadata.name, new Set(Object.keys({ ...object.data, ...object.stringData })));
    }
  }
  return secrets;
}

async function checkK8s() {
  const k8sDir = join(ROOT, 'k8s');
  const overlaysDir = join(k8sDir, 'overlays');
  const overlays = existsSync(overlaysDir)
    ? readdirSync(overlaysDir)
        .filter((entry) => existsSync(join(overlaysDir, entry, 'kustomization.yaml')))
        .sort()
    : [];
  const roots = [join(k8sDir, 'base'), ...overlays.map((overlay) => join(overlaysDir, overlay))];
  const referenced = { resources: new Set(), patches: new Set() };
  const builds = new Map();
  for (const dir of roots) {
    try {
      const { objects } = buildKustomization(dir, referenced);
      builds.set(dir, objects);
    } catch (error) {
      builds.set(dir, error);
    }
  }
  const allFiles = walk(k8sDir, isYaml);
  const examples = allFiles.filter((file) => /\.example\.ya?ml$/.test(file));
  const secretExamples = secretExamplesOf(examples);

  // Every resource file (and every example) validates on its own; patch files are
  // partial objects, validated as part of the overlay they patch.
  for (const file of allFiles) {
    if (file.endsWith('kustomization.yaml') || referenced.patches.has(file)) continue;
    await check(`k8s schema ${rel(file)}`, async () => {
      if (!referenced.resources.has(file) && !examples.includes(file)) {
        return { problems: ['not listed by any kustomization (name it *.example.yaml if it is only an example)'] };
      }
      const objects = loadDocs(file);
      const problems = [];
      for (const object of objects) problems.push(...(await validateObject(object)));
      return { problems, detail: `${objects.length} objects` };
    });
  }

  const kubectl = which('kubectl');
  for (const [dir, objects] of builds) {
    const name = relative(overlaysDir, dir).startsWith('..') ? 'base' : relative(overlaysDir, dir);
    await check(`k8s build ${rel(dir)}`, async () => {
      if (objects instanceof Error) return { problems: [objects.message] };
      const problems = [];
      for (const object of objects) problems.push(...(await validateObject(object)));
      problems.push(...overlayProblems(name, objects, secretExamples));
      return { problems, detail: `${objects.length} objects` };
    });
    if (!kubectl) {
      skipOptional(`kubectl kustomize ${rel(dir)} agrees`, 'kubectl not installed');
      continue;
    }
    await check(`kubectl kustomize ${rel(dir)} agrees`, async () => {
      if (objects instanceof Error) return { problems: ['the built-in build failed'] };
      const out = spawnSync(kubectl, ['kustomize', dir], { encoding: 'utf8' });
      if (out.status !== 0) return { problems: [out.stderr.trim()] };
      const theirs = new Map(
        parseAllDocuments(out.stdout)
          .map((doc) => doc.toJS())
          .map((o) => [objectId(o), o]),
      );
      const ours = new Map(objects.map((o) => [objectId(o), o]));
      const problems = [];
      for (const id of new Set([...theirs.keys(), ...ours.keys()])) {
        if (!theirs.has(id)) problems.push(`${id}: only in the built-in build`);
        else if (!ours.has(id)) problems.push(`${id}: only in kubectl kustomize`);
        else if (!isDeepStrictEqual(theirs.get(id), ours.get(id))) problems.push(`${id}: differs`);
      }
      return { problems, detail: `${ours.size} objects` };
    });
  }
}

async function checkRulesMatch() {
  const alerts = loadOne(ALERTS_FILE);
  const rule = loadDocs(join(ROOT, RULE_FILE))[0];
  const problems = [];
  if (rule?.kind !== 'PrometheusRule') problems.push(`${RULE_FILE} holds no PrometheusRule`);
  else if (!isDeepStrictEqual(rule.spec?.groups, alerts.groups)) {
    problems.push(`${RULE_FILE} groups differ from ${ALERTS_FILE}: run node scripts/check-deploy.mjs --write-rules`);
  }
  return { problems, detail: `${alerts.groups.flatMap((g) => g.rules).length} rules` };
}

function promtool(args) {
  if (!which('promtool'))
    return { skip: 'promtool not installed (Debian package "prometheus"; scripts/ensure-deploy-tools.sh)' };
  const out = run('promtool', args);
  return { problems: out.status === 0 ? [] : out.output.split('\n') };
}

async function checkCompose() {
  const compose = loadOne(COMPOSE_FILE);
  const services = compose.services ?? {};
  const problems = [];
  const names = Object.keys(services);
  const appNames = names.filter((name) => services[name].command && NAMES.includes(services[name].command[0]));
  if (!isDeepStrictEqual([...appNames].sort(), [...NAMES].sort())) {
    problems.push(`compose runs ${appNames.join(', ')}, not the services of scripts/services.mjs`);
  }
  for (const extra of names.filter(
    (name) => !NAMES.includes(name) && !['nats', 'prometheus', 'grafana'].includes(name),
  )) {
    problems.push(`unexpected compose service ${extra}`);
  }
  const nats = services.nats;
  if (!nats) problems.push('no nats service');
  else {
    problems.push(...natsVersionProblems('compose nats image', nats.image));
    if (!/^nats:/.test(nats.image ?? '')) problems.push('nats should use the official nats image');
    if (!isDeepStrictEqual(nats.command, ['-c', '/etc/nats/nats.conf']))
      problems.push('nats command should be -c /etc/nats/nats.conf');
    if (!(nats.volumes ?? []).some((v) => String(v).startsWith('./deploy/nats/nats.conf:/etc/nats/nats.conf')))
      problems.push('nats does not mount deploy/nats/nats.conf');
    if (!nats.healthcheck?.test) problems.push('nats has no healthcheck');
    const wanted = passwordVariables(read(NATS_CONF));
    const given = Object.keys(nats.environment ?? {})
      .filter((key) => key.startsWith('NATS_PASSWORD_'))
      .sort();
    if (!isDeepStrictEqual(wanted, given))
      problems.push(`nats environment gives ${given.join(', ')}; nats.conf reads ${wanted.join(', ')}`);
  }
  const images = new Set();
  for (const { name, portEnv, defaultPort } of SERVICES) {
    const service = services[name];
    if (!service) {
      problems.push(`no compose service ${name}`);
      continue;
    }
    images.add(service.image);
    if (!isDeepStrictEqual(service.command, [name])) problems.push(`${name}: command should be ["${name}"]`);
    const env = service.environment ?? {};
    if (String(env[portEnv]) !== String(defaultPort)) problems.push(`${name}: ${portEnv} should be ${defaultPort}`);
    if (!(service.ports ?? []).map(String).includes(`${defaultPort}:${defaultPort}`))
      problems.push(`${name}: should publish ${defaultPort}:${defaultPort}`);
    const test = (service.healthcheck?.test ?? []).join(' ');
    if (!test.includes(`http://127.0.0.1:${defaultPort}/readyz`))
      problems.push(`${name}: healthcheck should fetch http://127.0.0.1:${defaultPort}/readyz`);
    if (!/^CMD node -e /.test(test)) problems.push(`${name}: healthcheck should be node -e (the image has no curl)`);
    if (service.depends_on?.nats?.condition !== 'service_healthy')
      problems.push(`${name}: should depend on nats being service_healthy`);
    if (!env.NATS_URL) problems.push(`${name}: no NATS_URL`);
    if (env.NATS_USER !== name) problems.push(`${name}: NATS_USER should be "${name}"`);
    const variable = `NATS_PASSWORD_${name.toUpperCase().replace(/-/g, '_')}`;
    if (nats && env.NATS_PASSWORD !== nats.environment?.[variable])
      problems.push(`${name}: NATS_PASSWORD is not the nats server's ${variable}`);
    const grace = /^(\d+)s$/.exec(service.stop_grace_period ?? '');
    if (!grace || Number(grace[1]) < 15) problems.push(`${name}: stop_grace_period should be at least 15s`);
  }
  if (images.size !== 1) problems.push(`the services should share one image, found ${[...images].join(', ')}`);
  const prometheus = services.prometheus;
  if (!prometheus) problems.push('no prometheus service');
  else {
    for (const file of ['prometheus.yml', 'alerts.yml']) {
      if (!(prometheus.volumes ?? []).some((v) => String(v).startsWith(`./deploy/prometheus/${file}:`)))
        problems.push(`prometheus does not mount deploy/prometheus/${file}`);
    }
  }
  return { problems, detail: `${names.length} services` };
}

async function checkPrometheusScrapes() {
  const config = loadOne('deploy/prometheus/prometheus.yml');
  const problems = [];
  for (const { name, defaultPort } of SERVICES) {
    const job = (config.scrape_configs ?? []).find((j) => j.job_name === name);
    const targets = (job?.static_configs ?? []).flatMap((s) => s.targets ?? []);
    if (!targets.includes(`${name}:${defaultPort}`))
      problems.push(`no scrape job "${name}" for ${name}:${defaultPort}`);
  }
  if (!(config.rule_files ?? []).some((file) => file.endsWith('alerts.yml')))
    problems.push('rule_files does not load alerts.yml');
  return { problems };
}

async function checkImage() {
  const problems = [];
  const dockerfile = read('Dockerfile');
  const instructions = dockerfile.split('\n').filter((line) => /^[A-Z]+\s/.test(line));
  const last = (keyword) => instructions.filter((line) => line.startsWith(`${keyword} `)).pop();
  if (
    !/^FROM \$\{NODE_IMAGE\}|^FROM node:20-bookworm-slim/m.test(dockerfile) ||
    !/NODE_IMAGE=node:20-bookworm-slim/.test(dockerfile)
  ) {
    problems.push('stages should build FROM node:20-bookworm-slim');
  }
  if (last('ENTRYPOINT') !== 'ENTRYPOINT ["node", "scripts/entrypoint.mjs"]')
    problems.push('ENTRYPOINT should be ["node", "scripts/entrypoint.mjs"]');
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  if (/^CMD /m.test(runtime)) problems.push('the runtime stage must have no CMD: the service must be named');
  if (!/^USER node$/m.test(runtime)) problems.push('the runtime stage should run as USER node');
  const code = dockerfile
    .split('\n')
    .filter((line) => !line.trim().startsWith('#'))
    .join('\n');
  if (/npm ci\b/.test(code)) problems.push('npm ci refuses the lockfile made here (TOOLCHAIN.md): use npm install');
  if (!/--omit=dev/.test(code)) problems.push('runtime node_modules should be production only (--omit=dev)');
  for (const file of ['scripts/entrypoint.mjs', 'scripts/services.mjs']) {
    if (!runtime.includes(file.split('/')[1])) problems.push(`the runtime stage does not copy ${file}`);
  }
  const ignored = new Set(
    read('.dockerignore')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#')),
  );
  for (const match of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const source of match[1].split(/\s+/).filter((word) => !word.startsWith('--'))) {
      if (ignored.has(source)) problems.push(`COPY ${source}, which .dockerignore excludes`);
    }
  }
  // The entry point itself: it must take its list from services.mjs and refuse others.
  const entry = read('scripts/entrypoint.mjs');
  if (!/import \{[^}]*SERVICES[^}]*\} from '\.\/services\.mjs'/.test(entry))
    problems.push('entrypoint.mjs does not take SERVICES from services.mjs');
  const refused = run(process.execPath, ['scripts/entrypoint.mjs', 'no-such-service'], {
    env: { ...process.env, SERVICE: '' },
  });
  if (refused.status === 0) problems.push('entrypoint.mjs accepted an unknown service');
  const listed = /usage: entrypoint\.mjs <([^>]+)>/.exec(refused.output)?.[1]?.split('|') ?? [];
  if (!isDeepStrictEqual(listed, NAMES))
    problems.push(`entrypoint.mjs offers ${listed.join(', ')}, not the services of services.mjs`);
  const unnamed = run(process.execPath, ['scripts/entrypoint.mjs'], { env: { ...process.env, SERVICE: '' } });
  if (unnamed.status === 0) problems.push('entrypoint.mjs started without a service name');
  return { problems };
}

async function checkServiceNamesAgree() {
  // One line that answers "do compose, k8s and the image all run the same five?"
  const compose = loadOne(COMPOSE_FILE);
  const composeNames = Object.values(compose.services ?? {})
    .map((service) => service.command?.[0])
    .filter((name) => name && !name.startsWith('-'))
    .sort();
  const k8sNames = buildKustomization(join(ROOT, 'k8s/base'))
    .objects.filter((o) => o.kind === 'Deployment')
    .map((d) => d.spec.template.spec.containers[0].args?.[0])
    .sort();
  const entry = run(process.execPath, ['scripts/entrypoint.mjs', 'no-such-service'], {
    env: { ...process.env, SERVICE: '' },
  });
  const entryNames = (/usage: entrypoint\.mjs <([^>]+)>/.exec(entry.output)?.[1]?.split('|') ?? []).sort();
  const expected = [...NAMES].sort();
  const problems = [];
  if (!isDeepStrictEqual(composeNames, expected)) problems.push(`compose: ${composeNames.join(', ')}`);
  if (!isDeepStrictEqual(k8sNames, expected)) problems.push(`k8s: ${k8sNames.join(', ')}`);
  if (!isDeepStrictEqual(entryNames, expected)) problems.push(`entrypoint: ${entryNames.join(', ')}`);
  return { problems, detail: expected.join(', ') };
}

async function checkNatsConfigsAgree() {
  const conf = normalizeNats(parseNatsConf(read(NATS_CONF)));
  const helm = loadOne(HELM_VALUES);
  const merged = normalizeNats(helm.config?.merge ?? {});
  const problems = [];
  if (!isDeepStrictEqual(conf.accounts, merged.accounts)) {
    for (const account of new Set([...Object.keys(conf.accounts ?? {}), ...Object.keys(merged.accounts ?? {})])) {
      if (!isDeepStrictEqual(conf.accounts?.[account], merged.accounts?.[account]))
        problems.push(`account ${account} differs between ${NATS_CONF} and ${HELM_VALUES}`);
    }
  }
  if (conf.system_account !== merged.system_account) problems.push('system_account differs');
  // Every service has its own user in BACKCHANNEL; the platform its own account.
  const users = (conf.accounts?.BACKCHANNEL?.users ?? []).map((u) => u.user).sort();
  if (!isDeepStrictEqual(users, [...NAMES].sort()))
    problems.push(`BACKCHANNEL users are ${users.join(', ')}, not the services`);
  const platform = conf.accounts?.PLATFORM?.users ?? [];
  if (platform.length !== 1 || platform[0].user !== 'platform')
    problems.push('PLATFORM should hold the one user "platform"');
  // What the platform may publish and subscribe to: "grants match libs/contracts".
  if (conf.accounts?.PLATFORM?.jetstream) problems.push('the PLATFORM account must not have JetStream');
  // Helm: the same password variables are given to the container from a Secret.
  const given = Object.keys(helm.container?.env ?? {}).sort();
  const wanted = passwordVariables(JSON.stringify(merged));
  if (!isDeepStrictEqual(given, wanted))
    problems.push(`Helm container.env gives ${given.join(', ')}; the config reads ${wanted.join(', ')}`);
  return { problems, detail: `${Object.keys(conf.accounts ?? {}).length} accounts` };
}

async function checkHelmValues() {
  const helm = loadOne(HELM_VALUES);
  const problems = [];
  problems.push(...natsVersionProblems('Helm container.image.tag', helm.container?.image?.tag));
  if (helm.config?.cluster?.enabled !== true || helm.config?.cluster?.replicas !== 3)
    problems.push('config.cluster should be enabled with 3 replicas');
  const js = helm.config?.jetstream ?? {};
  if (js.enabled !== true) problems.push('JetStream is not enabled');
  if (js.fileStore?.enabled !== true || js.fileStore?.pvc?.enabled !== true || !js.fileStore?.pvc?.size)
    problems.push('JetStream file storage on a PVC is not configured');
  if (js.merge?.sync_interval !== 'always') problems.push('config.jetstream.merge.sync_interval should be "always"');
  return { problems, detail: `image ${helm.container?.image?.tag}` };
}

function dummyNatsEnv() {
  const env = { ...process.env };
  for (const variable of passwordVariables(read(NATS_CONF))) env[variable] = `check-${variable.toLowerCase()}`;
  return env;
}

async function checkNatsServerAccepts() {
  const natsServer = which('nats-server');
  if (!natsServer) return { skip: 'nats-server not installed' };
  const out = run(natsServer, ['-c', NATS_CONF, '-t'], { env: dummyNatsEnv() });
  const version = run(natsServer, ['--version']).output;
  return { problems: out.status === 0 ? [] : [out.output], detail: version };
}

// ---------------------------------------------------------------------------------------
// NATS permissions against the contract: every subject a grant, export or import names is
// one that libs/contracts declares (its built form in dist/, like bench/ and the demo), so a
// renamed subject, stream or bucket cannot leave a stale grant behind, and each role is then
// tried on a private nats-server with the operations the services really perform.

/** NATS's own subjects, not Backchannel's: the JetStream API, acks, flow control, inboxes. */
const JS_API = '$JS.API.>';
const JS_ACK = '$JS.ACK.>';
const JS_FLOW_CONTROL = '$JS.FC.>';
const INBOX = '_INBOX.>';
const NATS_OWN_SUBJECTS = new Set([JS_API, JS_ACK, JS_FLOW_CONTROL, INBOX]);
/** The subjects a KV bucket's keys live under (nats.js KV). */
const kvSubjects = (bucket) => `$KV.${bucket}.>`;

/**
 * Which service answers which platform API operation (keys of the contract's
 * API_SUBJECTS). A new operation must be placed here, or the check fails.
 */
const API_SERVED_BY = {
  'token-authority': [
    'conversationsOpen',
    'conversationsEnd',
    'workItemsRegister',
    'workItemsCancel',
    'workItemsGet',
    'apiKeysCreate',
    'apiKeysRevoke',
  ],
  'conversation-injector': ['messagesList'],
  'tool-dispatcher': ['toolsInvoke'],
};

/** Which service calls which API operation itself (the dispatcher registers async work items). */
const API_CALLED_BY = { 'tool-dispatcher': ['workItemsRegister', 'workItemsCancel'] };

let contractModule;

/**
 * The built contract (dist/libs/contracts), built first when libs/contracts is newer than
 * it. Loaded once, before the checks run, so a build's output does not interleave with them.
 */
async function loadContract() {
  const reason = contractBuildReason(ROOT);
  if (reason) {
    console.log(`building dist/ for the wire names of libs/contracts (${reason}): nest build --all`);
    const nest = join(ROOT, 'node_modules', '@nestjs', 'cli', 'bin', 'nest.js');
    const built = spawnSync(process.execPath, [nest, 'build', '--all'], { cwd: ROOT, stdio: 'inherit' });
    if (built.status !== 0) throw new Error('nest build failed, so the wire names of libs/contracts are unknown');
  }
  return import(pathToFileURL(join(ROOT, CONTRACT_ENTRY)).href);
}

function contract() {
  if (contractModule instanceof Error) throw new Error(`cannot load ${CONTRACT_ENTRY}: ${contractModule.message}`);
  return contractModule;
}

const allowOf = (user, direction) => user?.permissions?.[direction]?.allow ?? [];
const sorted = (values) => [...new Set(values)].sort();
const listed = (values) => values.map((value) => JSON.stringify(value)).join(', ') || 'nothing';

/** Problems of one NATS config (nats.conf, or the Helm values' config.merge) against the contract. */
function grantProblems(where, config, C) {
  const problems = [];
  const apiSubjects = sorted(Object.values(C.API_SUBJECTS));
  const declared = new Set([
    ...C.STREAMS.flatMap((stream) => stream.subjects),
    ...C.BUCKETS.map((bucket) => kvSubjects(bucket.bucket)),
    ...apiSubjects,
    C.LIVE_MESSAGES_WILDCARD,
  ]);
  const services = config.accounts?.BACKCHANNEL?.users ?? [];
  const platform = config.accounts?.PLATFORM?.users ?? [];

  for (const user of [...services, ...platform]) {
    for (const direction of ['publish', 'subscribe']) {
      for (const subject of allowOf(user, direction)) {
        if (!declared.has(subject) && !NATS_OWN_SUBJECTS.has(subject))
          problems.push(`${where}: ${user.user} may ${direction} "${subject}", which libs/contracts does not declare`);
      }
    }
  }

  // Every stream is written and every bucket reachable by some service; each service has
  // the JetStream API and its inbox (every one provisions the streams and buckets at boot).
  const published = new Set(services.flatMap((user) => allowOf(user, 'publish')));
  for (const stream of C.STREAMS) {
    if (!stream.subjects.every((subject) => published.has(subject)))
      problems.push(`${where}: no service may write stream ${stream.name} (${stream.subjects.join(', ')})`);
  }
  for (const bucket of C.BUCKETS) {
    if (!published.has(kvSubjects(bucket.bucket)))
      problems.push(`${where}: no service may write bucket ${bucket.bucket}`);
  }
  for (const user of services) {
    if (!allowOf(user, 'publish').includes(JS_API)) problems.push(`${where}: ${user.user} lacks ${JS_API}`);
    if (!allowOf(user, 'subscribe').includes(INBOX)) problems.push(`${where}: ${user.user} lacks ${INBOX}`);
  }

  // Each API operation is served by the one service the table names, which may answer.
  const placed = Object.values(API_SERVED_BY).flat();
  for (const key of [...placed, ...Object.values(API_CALLED_BY).flat()]) {
    if (!(key in C.API_SUBJECTS)) problems.push(`API_SERVED_BY names "${key}", which API_SUBJECTS does not have`);
  }
  for (const key of Object.keys(C.API_SUBJECTS)) {
    if (placed.filter((k) => k === key).length !== 1)
      problems.push(`API_SUBJECTS.${key} is not served by exactly one service in API_SERVED_BY`);
  }
  for (const user of services) {
    const served = sorted(allowOf(user, 'subscribe').filter((subject) => apiSubjects.includes(subject)));
    const expected = sorted((API_SERVED_BY[user.user] ?? []).map((key) => C.API_SUBJECTS[key]).filter(Boolean));
    if (!isDeepStrictEqual(served, expected))
      problems.push(`${where}: ${user.user} may serve ${listed(served)}; it serves ${listed(expected)}`);
    if (expected.length > 0 && user.permissions?.allow_responses !== true)
      problems.push(`${where}: ${user.user} serves the API but has no allow_responses`);
    const calls = sorted(allowOf(user, 'publish').filter((subject) => apiSubjects.includes(subject)));
    const called = sorted((API_CALLED_BY[user.user] ?? []).map((key) => C.API_SUBJECTS[key]).filter(Boolean));
    if (!isDeepStrictEqual(calls, called))
      problems.push(`${where}: ${user.user} may call ${listed(calls)}; it calls ${listed(called)}`);
  }

  // The platform's whole surface: the API (request-reply) and the live messages, nothing else.
  const exports = config.accounts?.BACKCHANNEL?.exports ?? [];
  const imports = config.accounts?.PLATFORM?.imports ?? [];
  const exported = (kind) => sorted(exports.filter((e) => e[kind]).map((e) => e[kind]));
  const imported = (kind) =>
    sorted(imports.filter((i) => i[kind]?.account === 'BACKCHANNEL').map((i) => i[kind].subject));
  const surfaces = [
    ['BACKCHANNEL exports services', exported('service'), apiSubjects],
    ['BACKCHANNEL exports streams', exported('stream'), [C.LIVE_MESSAGES_WILDCARD]],
    ['PLATFORM imports services', imported('service'), apiSubjects],
    ['PLATFORM imports streams', imported('stream'), [C.LIVE_MESSAGES_WILDCARD]],
    ['platform may publish', sorted(platform.flatMap((u) => allowOf(u, 'publish'))), apiSubjects],
    [
      'platform may subscribe',
      sorted(platform.flatMap((u) => allowOf(u, 'subscribe'))),
      sorted([INBOX, C.LIVE_MESSAGES_WILDCARD]),
    ],
  ];
  for (const [what, actual, expected] of surfaces) {
    if (!isDeepStrictEqual(actual, expected))
      problems.push(`${where}: ${what} ${listed(actual)}, the contract has ${listed(expected)}`);
  }
  if (imports.length !== new Set(imports.map((i) => JSON.stringify(i))).size)
    problems.push(`${where}: PLATFORM imports something twice`);
  return problems;
}

async function checkNatsGrantsMatchContract() {
  const C = contract();
  const conf = normalizeNats(parseNatsConf(read(NATS_CONF)));
  const helm = normalizeNats(loadOne(HELM_VALUES).config?.merge ?? {});
  const problems = [...grantProblems(NATS_CONF, conf, C), ...grantProblems(HELM_VALUES, helm, C)];
  const users = (conf.accounts?.BACKCHANNEL?.users?.length ?? 0) + (conf.accounts?.PLATFORM?.users?.length ?? 0);
  return { problems, detail: `${users} users, ${Object.keys(C.API_SUBJECTS).length} API subjects, both files` };
}

/**
 * Starts a private nats-server from deploy/nats/nats.conf (loopback, a free port, a temp
 * store; never the shared broker) and tries, as each user, what its role does (the wire
 * names from libs/contracts) and a few things it must not do. The sequencer, the injector
 * and the dispatcher read their streams with ordered consumers, which the client creates,
 * inspects, reads with MSG.NEXT and deletes (and recreates on a gap); the sequencer and
 * the injector write partition checkpoints and leases to the leases bucket.
 */
async function checkNatsPermissions() {
  const natsServer = which('nats-server');
  if (!natsServer) return { skip: 'nats-server not installed' };
  const C = contract();
  const { connect } = await import('@nats-io/transport-node');
  const { jetstream, jetstreamManager, DeliverPolicy } = await import('@nats-io/jetstream');
  const { Kvm } = await import('@nats-io/kv');
  const { nanos } = await import('@nats-io/nats-core');
  const dir = mkdtempSync(join(tmpdir(), 'backchannel-check-nats-'));
  const conf = read(NATS_CONF)
    .replace(/^listen:.*$/m, 'listen: 127.0.0.1:-1')
    .replace(/^http_port:.*$/m, '')
    .replace(/store_dir:.*$/m, `store_dir: "${join(dir, 'js')}"`);
  writeFileSync(join(dir, 'nats.conf'), conf);
  const env = dummyNatsEnv();
  const server = spawn(natsServer, ['-c', join(dir, 'nats.conf'), '--ports_file_dir', dir], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  server.stderr.on('data', (chunk) => (log += chunk));
  const exited = new Promise((done) => server.on('exit', done));
  const problems = [];
  const connections = [];
  let tried = 0;
  try {
    let url;
    for (let attempt = 0; attempt < 100 && !url; attempt++) {
      await new Promise((done) => setTimeout(done, 50));
      const portsFile = readdirSync(dir).find((name) => name.endsWith('.ports'));
      if (portsFile) url = JSON.parse(readFileSync(join(dir, portsFile), 'utf8')).nats?.[0];
    }
    if (!url) throw new Error(`private nats-server did not start: ${log.trim().split('\n').pop()}`);
    const as = async (user) => {
      const nc = await connect({
        servers: [url],
        user,
        pass: env[`NATS_PASSWORD_${user.toUpperCase().replace(/-/g, '_')}`],
        reconnect: false,
      });
      connections.push(nc);
      return nc;
    };
    const allowed = async (what, fn) => {
      tried++;
      try {
        await fn();
      } catch (error) {
        problems.push(`${what}: ${error.message}`);
      }
    };
    const refused = async (what, fn) => {
      tried++;
      try {
        await fn();
        problems.push(`${what}: allowed, should be refused`);
      } catch (error) {
        if (!/permission/i.test(String(error.message)))
          problems.push(`${what}: failed, but not for permissions: ${error.message}`);
      }
    };

    const PARTITIONS = 4;
    const conversation = 'c1';
    const partition = C.partitionOf(conversation, PARTITIONS);
    const workItem = 'wi_1';
    const kv = async (nc, spec) => new Kvm(nc).open(spec.bucket);
    /** What every service does at boot (libs/messaging provisioning): every stream and bucket. */
    const provision = async (nc) => {
      const jsm = await jetstreamManager(nc);
      for (const spec of C.STREAMS) {
        const config = {
          name: spec.name,
          subjects: spec.subjects,
          max_age: nanos(spec.maxAgeMs),
          duplicate_window: nanos(spec.duplicateWindowMs),
          max_msg_size: spec.maxMsgSize,
          allow_direct: spec.allowDirect,
        };
        const exists = await jsm.streams.info(spec.name).then(
          () => true,
          () => false,
        );
        await (exists ? jsm.streams.update(spec.name, config) : jsm.streams.add(config));
      }
      for (const spec of C.BUCKETS) await new Kvm(nc).create(spec.bucket, { history: spec.history, ttl: spec.ttlMs });
    };
    /** A partition's reader: an ordered consumer (create, MSG.NEXT, info, delete). */
    const readOrdered = async (nc, stream, filter, deliverPolicy) => {
      const consumer = await jetstream(nc).consumers.get(stream, {
        filter_subjects: filter,
        ...(deliverPolicy ? { deliver_policy: deliverPolicy } : {}),
      });
      const message = await consumer.next({ expires: 2_000 });
      if (!message) throw new Error(`no message on ${filter}`);
      await consumer.info();
      await consumer.delete();
      return message;
    };
    /** Leases, heartbeats and checkpoints of a partitioned role, by compare-and-set. */
    const holdPartition = async (nc, role) => {
      const leases = await kv(nc, C.LEASES_BUCKET);
      await leases.put(C.KV_KEYS.member(role, `${role}-1`), JSON.stringify({ at: Date.now() }));
      const revision = await leases.create(C.KV_KEYS.lease(role, partition), JSON.stringify({ owner: `${role}-1` }));
      await leases.update(C.KV_KEYS.lease(role, partition), JSON.stringify({ owner: `${role}-1` }), revision);
      await leases.put(C.KV_KEYS.checkpoint(role, partition), JSON.stringify({ seq: 1 }));
    };
    /** Serves API operations the way the services do: in the API queue group. */
    const serve = (nc, keys) => {
      for (const key of keys) {
        nc.subscribe(C.API_SUBJECTS[key], {
          queue: C.API_QUEUE_GROUP,
          callback: (_error, msg) => msg.respond(JSON.stringify({ served: key })),
        });
      }
      return nc.flush();
    };
    const publishTo = (nc, subject) => nc.request(subject, 'x', { timeout: 1_000 });

    const authority = await as('token-authority');
    const ingress = await as('callback-ingress');
    const sequencer = await as('ordering-sequencer');
    const injector = await as('conversation-injector');
    const dispatcher = await as('tool-dispatcher');
    const platform = await as('platform');
    const services = {
      'token-authority': authority,
      'callback-ingress': ingress,
      'ordering-sequencer': sequencer,
      'conversation-injector': injector,
      'tool-dispatcher': dispatcher,
    };
    for (const [name, nc] of Object.entries(services)) {
      await allowed(`${name} provisions every stream and bucket at boot`, () => provision(nc));
    }

    // token-authority: the conversation log and work item records; the platform API.
    await allowed('token-authority records a registration and its work item', async () => {
      await (await kv(authority, C.WORK_ITEMS_BUCKET)).put(C.KV_KEYS.workItem(workItem), 'record');
      await (await kv(authority, C.API_KEYS_BUCKET)).put(C.KV_KEYS.apiKeyById('k1'), 'key');
      await (await kv(authority, C.IDEMPOTENCY_BUCKET)).put(C.KV_KEYS.registrationIdempotency('h1'), 'claim');
      await jetstream(authority).publish(C.conversationLogSubject(partition, conversation), 'registered', {
        msgID: C.registrationMsgId(workItem),
        expect: { lastSubjectSequence: 0, streamName: C.WORK_STREAM.name },
      });
    });
    await refused('token-authority publishes a release', () =>
      publishTo(authority, C.releaseSubject(partition, conversation)),
    );

    // callback-ingress: reads the work item, writes its end.
    await allowed('callback-ingress reads the work item and writes its end', async () => {
      if ((await (await kv(ingress, C.WORK_ITEMS_BUCKET)).get(C.KV_KEYS.workItem(workItem)))?.string() !== 'record')
        throw new Error('record not read');
      await jetstream(ingress).publish(C.workItemEndSubject(partition, conversation, workItem), 'result', {
        msgID: C.workItemEndMsgId(workItem, 'completed'),
      });
    });
    await refused('callback-ingress writes a work item record', async () =>
      (await kv(ingress, C.WORK_ITEMS_BUCKET)).put(C.KV_KEYS.workItem(workItem), 'x'),
    );
    await refused('callback-ingress publishes a transcript entry', () =>
      publishTo(ingress, C.transcriptSubject(conversation)),
    );

    // ordering-sequencer: its partition of the work log, its state, releases, leases.
    await allowed('ordering-sequencer reads its partition with an ordered consumer', () =>
      readOrdered(sequencer, C.WORK_STREAM.name, C.workPartitionFilter(partition)),
    );
    await allowed('ordering-sequencer holds a partition lease and writes its checkpoint', () =>
      holdPartition(sequencer, 'sequencer'),
    );
    await allowed('ordering-sequencer saves conversation state and publishes a release', async () => {
      await (
        await kv(sequencer, C.SEQUENCER_STATE_BUCKET)
      ).put(C.KV_KEYS.sequencerState(partition, conversation), '{}');
      await jetstream(sequencer).publish(C.releaseSubject(partition, conversation), 'release', {
        msgID: C.releaseMsgId(conversation, 1),
        expect: { streamName: C.RELEASE_STREAM.name },
      });
    });
    await allowed('ordering-sequencer records a timeout in the work log', () =>
      jetstream(sequencer).publish(C.workItemEndSubject(partition, conversation, 'wi_2'), 'timed out', {
        msgID: C.workItemEndMsgId('wi_2', 'timed_out'),
      }),
    );
    await refused('ordering-sequencer publishes a transcript entry', () =>
      publishTo(sequencer, C.transcriptSubject(conversation)),
    );
    await refused('ordering-sequencer publishes a live message', () =>
      publishTo(sequencer, C.liveMessagesSubject(conversation)),
    );

    // conversation-injector: its partition of the releases, the transcript, live delivery.
    await allowed('conversation-injector reads its partition of the releases with an ordered consumer', () =>
      readOrdered(injector, C.RELEASE_STREAM.name, C.releasePartitionFilter(partition)),
    );
    await allowed('conversation-injector holds a partition lease and writes its checkpoint', () =>
      holdPartition(injector, 'injector'),
    );
    await allowed('conversation-injector appends to a transcript and checks an API key', async () => {
      await jetstream(injector).publish(C.transcriptSubject(conversation), 'entry', {
        msgID: C.transcriptReleaseMsgId(conversation, 1),
        expect: { lastSubjectSequence: 0, streamName: C.TRANSCRIPT_STREAM.name },
      });
      await (await kv(injector, C.IDEMPOTENCY_BUCKET)).put(C.KV_KEYS.addMessagesIdempotency('h2'), 'claim');
      if (!(await (await kv(injector, C.API_KEYS_BUCKET)).get(C.KV_KEYS.apiKeyById('k1'))))
        throw new Error('API key not read');
    });
    await refused('conversation-injector publishes a release', () =>
      publishTo(injector, C.releaseSubject(partition, conversation)),
    );
    await refused('conversation-injector writes an API key', async () =>
      (await kv(injector, C.API_KEYS_BUCKET)).put(C.KV_KEYS.apiKeyById('k1'), 'x'),
    );

    // tool-dispatcher: follows work item ends; registers through the token authority.
    await allowed('tool-dispatcher follows work item ends with an ordered consumer', () =>
      readOrdered(dispatcher, C.WORK_STREAM.name, C.WORK_ITEM_END_WILDCARD, DeliverPolicy.All),
    );
    await refused('tool-dispatcher writes the work log itself', () =>
      publishTo(dispatcher, C.conversationLogSubject(partition, conversation)),
    );

    // The platform API: each operation served by its service, across the accounts.
    for (const [name, keys] of Object.entries(API_SERVED_BY)) await serve(services[name], keys);
    for (const key of Object.keys(C.API_SUBJECTS)) {
      await allowed(`platform calls ${C.API_SUBJECTS[key]}`, async () => {
        const reply = await platform.request(C.API_SUBJECTS[key], '{}', { timeout: 2_000 });
        if (JSON.parse(reply.string()).served !== key) throw new Error(`answered ${reply.string()}`);
      });
    }
    for (const [name, keys] of Object.entries(API_CALLED_BY)) {
      for (const key of keys) {
        await allowed(`${name} calls ${C.API_SUBJECTS[key]}`, () =>
          services[name].request(C.API_SUBJECTS[key], '{}', { timeout: 2_000 }),
        );
      }
    }
    await refused(`tool-dispatcher calls ${C.API_SUBJECTS.apiKeysCreate}`, () =>
      publishTo(dispatcher, C.API_SUBJECTS.apiKeysCreate),
    );
    await allowed(`platform receives ${C.LIVE_MESSAGES_WILDCARD}`, async () => {
      const sub = platform.subscribe(C.LIVE_MESSAGES_WILDCARD, { max: 1, timeout: 2_000 });
      await platform.flush();
      injector.publish(C.liveMessagesSubject(conversation), 'hello');
      for await (const msg of sub) if (msg.string() !== 'hello') throw new Error('wrong message');
    });
    await refused('platform writes the work log', () =>
      publishTo(platform, C.conversationLogSubject(partition, conversation)),
    );
    await refused('platform uses JetStream', () => jetstreamManager(platform));
  } finally {
    for (const nc of connections) await nc.close().catch(() => {});
    server.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
  return { problems, detail: `private nats-server, ${tried} operations` };
}

// ---------------------------------------------------------------------------------------

async function writeRules() {
  const alerts = loadOne(ALERTS_FILE);
  const rule = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'backchannel', labels: { 'app.kubernetes.io/part-of': 'backchannel' } },
    spec: { groups: alerts.groups },
  };
  const header =
    `# GENERATED from ${ALERTS_FILE} by \`node scripts/check-deploy.mjs --write-rules\`: edit that\n` +
    '# file, not this one (the deployment check fails while they differ).\n';
  writeFileSync(join(ROOT, RULE_FILE), header + stringifyYaml(rule, { lineWidth: 0, aliasDuplicateObjects: false }));
  // Formatted by the project's Prettier (and its configuration), so `format:check` passes.
  const prettier = join(ROOT, 'node_modules', '.bin', 'prettier');
  if (existsSync(prettier)) {
    const out = run(prettier, ['--write', RULE_FILE]);
    if (out.status !== 0) throw new Error(`prettier --write ${RULE_FILE} failed: ${out.output}`);
  }
  console.log(`wrote ${RULE_FILE} (${alerts.groups.length} groups)`);
}

async function main() {
  if (process.argv.includes('--write-rules')) return writeRules();
  try {
    contractModule = await loadContract();
  } catch (error) {
    contractModule = error instanceof Error ? error : new Error(String(error));
  }
  await check('YAML parses', checkYamlParses);
  await check('yamllint -c .yamllint.yml', checkYamllint);
  await checkK8s();
  await check('service names agree (services.mjs = compose = k8s = entrypoint)', checkServiceNamesAgree);
  await check('image: Dockerfile and entrypoint', checkImage);
  await check(`compose: ${COMPOSE_FILE}`, checkCompose);
  await check('compose: deploy/prometheus/prometheus.yml scrapes the five', checkPrometheusScrapes);
  await check(`PrometheusRule groups equal ${ALERTS_FILE}`, checkRulesMatch);
  await check(`promtool check rules ${ALERTS_FILE}`, async () => promtool(['check', 'rules', ALERTS_FILE]));
  await check(`promtool test rules ${ALERTS_TEST_FILE}`, async () => promtool(['test', 'rules', ALERTS_TEST_FILE]));
  await check('promtool check config deploy/prometheus/prometheus.yml', async () =>
    promtool(['check', 'config', 'deploy/prometheus/prometheus.yml']),
  );
  await check(`NATS: ${NATS_CONF} and ${HELM_VALUES} grant the same`, checkNatsConfigsAgree);
  await check(`NATS: every grant, export and import is a name of libs/contracts`, checkNatsGrantsMatchContract);
  await check(`NATS: ${HELM_VALUES} durability settings`, checkHelmValues);
  await check(`NATS: nats-server -t ${NATS_CONF}`, checkNatsServerAccepts);
  await check('NATS: permissions on a private nats-server', checkNatsPermissions);
  const optional = results.optional ? ` (${results.optional} optional cross-checks skipped)` : '';
  console.log(
    `check-deploy: ${results.passed} passed, ${results.failed} failed, ${results.skipped} skipped${optional}`,
  );
  // In CI a missing tool is a failure: a check that did not run must not pass silently.
  const skippedFails = STRICT && results.skipped > 0;
  if (skippedFails) {
    console.log(
      `check-deploy: CI=${process.env.CI}: ${results.skipped} check(s) SKIPPED count as failed; ` +
        'install the missing tools (bash scripts/ensure-deploy-tools.sh)',
    );
  }
  process.exitCode = results.failed > 0 || skippedFails ? 1 : 0;
}

await main();
