export { connectNats, type NatsHandles } from './connection.js';
export { coalesceWrites } from './write-coalescing.js';
export { shareRequestCancelError } from './request-cancel.js';
export { ensureBucket, ensureStream } from './provisioning.js';
export { BrokerUnavailableError, isWrongLastSequence } from './errors.js';
export { decodeJson, encodeJson } from './json.js';
export { WorkLedger, type AppendResult, type EndResult, type Stored } from './work-ledger.js';
export { RpcServer, toApiError, type RpcHandler, type RpcLogger } from './rpc-server.js';
export { JsonBucket, type Versioned } from './json-bucket.js';
export { MirroredWorkItemRecords, WorkItemRecords } from './work-item-records.js';
export { PartitionLeases, type Lease, type LeaseBucketValue, type LeaseOptions } from './partition-leases.js';
export {
  PartitionedLog,
  type LogMessage,
  type PartitionBacklog,
  type PartitionSession,
  type PartitionedLogOptions,
} from './partitioned-log.js';
export { KeyedSerialQueue } from './keyed-serial-queue.js';
export { CheckpointTracker } from './checkpoint-tracker.js';
export { ReleaseLog } from './release-log.js';
export { HeaderRpcServer, type HeaderRpcHandler, type RpcHeaders } from './header-rpc-server.js';
export { StreamReads, isMessageNotFound, type MessageQuery } from './stream-reads.js';
