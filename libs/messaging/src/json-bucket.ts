import type { KV } from '@nats-io/kv';
import { BrokerUnavailableError, isWrongLastSequence } from './errors.js';
import { decodeJson, encodeJson } from './json.js';

export interface Versioned<T> {
  value: T;
  revision: number;
}

/**
 * A KV bucket holding JSON values, with the compare-and-set operations the services
 * build on. Broker failures surface as BrokerUnavailableError (503 at the edges).
 */
export class JsonBucket<T> {
  constructor(private readonly kv: KV) {}

  async get(key: string): Promise<Versioned<T> | null> {
    try {
      const entry = await this.kv.get(key);
      if (!entry || entry.operation !== 'PUT' || entry.length === 0) return null;
      return { value: decodeJson<T>(entry.value), revision: entry.revision };
    } catch (error) {
      throw new BrokerUnavailableError(error);
    }
  }

  async put(key: string, value: T): Promise<number> {
    try {
      return await this.kv.put(key, encodeJson(value));
    } catch (error) {
      throw new BrokerUnavailableError(error);
    }
  }

  /** Creates the key if absent; false when it already exists (someone else won). */
  async create(key: string, value: T): Promise<number | false> {
    try {
      return await this.kv.create(key, encodeJson(value));
    } catch (error) {
      if (isAlreadyExists(error)) return false;
      throw new BrokerUnavailableError(error);
    }
  }

  /** Replaces the value only if it is still at `revision`; false when it moved on. */
  async update(key: string, value: T, revision: number): Promise<number | false> {
    try {
      return await this.kv.update(key, encodeJson(value), revision);
    } catch (error) {
      if (isWrongLastSequence(error)) return false;
      throw new BrokerUnavailableError(error);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.kv.delete(key);
    } catch (error) {
      throw new BrokerUnavailableError(error);
    }
  }

  /** Every current key matching a filter (e.g. one partition's prefix). */
  async keys(filter: string): Promise<string[]> {
    try {
      const keys: string[] = [];
      for await (const key of await this.kv.keys(filter)) keys.push(key);
      return keys;
    } catch (error) {
      throw new BrokerUnavailableError(error);
    }
  }
}

function isAlreadyExists(error: unknown): boolean {
  return isWrongLastSequence(error) || /key exists|already exists/i.test(String((error as Error)?.message));
}
