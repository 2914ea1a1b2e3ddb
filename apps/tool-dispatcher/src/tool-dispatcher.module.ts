import { Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { Clock } from '@backchannel/config';
import type { ServiceContext } from '@backchannel/http';
import { WorkLedger } from '@backchannel/messaging';
import { CancelNoticesService } from './cancel-notices/cancel-notices.service.js';
import { PendingDispatches } from './cancel-notices/pending-dispatches.js';
import { WorkItemEndsConsumer } from './cancel-notices/work-item-ends.consumer.js';
import { DispatchMetrics } from './dispatch-metrics.js';
import { DispatchEnds, LedgerDispatchEnds } from './invocations/dispatch-ends.js';
import { NatsWorkItemRegistrar } from './invocations/nats-work-item-registrar.js';
import { ToolInvocationsController } from './invocations/tool-invocations.controller.js';
import { ToolInvocationsHandler } from './invocations/tool-invocations.handler.js';
import { ToolInvocationsService } from './invocations/tool-invocations.service.js';
import { WorkItemRegistrar } from './invocations/work-item-registrar.js';
import { ConcurrencyLimit } from './outbound/concurrency-limit.js';
import { HostResolver, SystemResolver } from './outbound/host-resolver.js';
import { ToolHttpClient, UndiciToolHttpClient } from './outbound/tool-http-client.js';
import { ToolUrlGuard } from './outbound/tool-url-guard.js';

/** What tests may swap: name resolution (a stub, so no DNS and no connection) and time. */
export interface ToolDispatcherOptions {
  resolver?: HostResolver;
  clock?: Clock;
}

/** Closes the outbound agent once everything that could still use it has stopped. */
class OutboundShutdown implements OnApplicationShutdown {
  constructor(private readonly http: ToolHttpClient) {}
  async onApplicationShutdown(): Promise<void> {
    await this.http.close();
  }
}

@Module({})
export class ToolDispatcherModule {
  /**
   * The composition root. One outbound client (guarded connector, concurrency limit) is
   * shared by invocations and cancel notices, so `DISPATCHER_MAX_CONCURRENCY` bounds both.
   */
  static register(context: ServiceContext, options: ToolDispatcherOptions = {}): DynamicModule {
    const { config, nats } = context;
    const clock = options.clock ?? new Clock();
    const resolver = options.resolver ?? new SystemResolver();
    const allowPrivateNetworks = config.DISPATCHER_ALLOW_PRIVATE_NETWORKS;
    const metrics = new DispatchMetrics(context.metrics);
    const limit = new ConcurrencyLimit(config.DISPATCHER_MAX_CONCURRENCY, (active) => metrics.setInFlight(active));
    const http = UndiciToolHttpClient.create({ resolver, allowPrivateNetworks }, limit);
    const ledger = new WorkLedger(nats.js, nats.reads, config.SEQUENCER_PARTITIONS);
    return {
      module: ToolDispatcherModule,
      controllers: [ToolInvocationsController],
      providers: [
        { provide: Clock, useValue: clock },
        { provide: DispatchMetrics, useValue: metrics },
        { provide: ToolHttpClient, useValue: http },
        { provide: ToolUrlGuard, useValue: new ToolUrlGuard(resolver, allowPrivateNetworks) },
        { provide: WorkItemRegistrar, useValue: new NatsWorkItemRegistrar(nats.nc) },
        { provide: DispatchEnds, useValue: new LedgerDispatchEnds(ledger, clock) },
        { provide: PendingDispatches, useValue: new PendingDispatches() },
        { provide: OutboundShutdown, useFactory: () => new OutboundShutdown(http) },
        ToolInvocationsService,
        CancelNoticesService,
        WorkItemEndsConsumer,
        ToolInvocationsHandler,
      ],
    };
  }
}
