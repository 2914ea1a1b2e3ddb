export { connectNats, type NatsHandles } from './connection.js';
export { ensureBucket, ensureStream } from './provisioning.js';
export { BrokerUnavailableError, isWrongLastSequence } from './errors.js';
export { decodeJson, encodeJson } from './json.js';
export { WorkLedger, type AppendResult, type EndResult, type Stored } from './work-ledger.js';
export { RpcServer, toApiError, type RpcHandler, type RpcLogger } from './rpc-server.js';
export { JsonBucket, type Versioned } from './json-bucket.js';
export { WorkItemRecords } from './work-item-records.js';
