import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { API_SUBJECTS } from '@backchannel/contracts';
import { LOGGER, NATS_HANDLES } from '@backchannel/http';
import { HeaderRpcServer, type NatsHandles } from '@backchannel/messaging';
import { traceFrom, type Logger } from '@backchannel/observability';
import { parseInvocation } from './invocation.js';
import { ToolInvocationsService } from './tool-invocations.service.js';

/** `bc.v1.tools.invoke` (CONTRACT.md §2): the same validation and service as the HTTP route. */
@Injectable()
export class ToolInvocationsHandler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly server: HeaderRpcServer;

  constructor(
    @Inject(NATS_HANDLES) nats: NatsHandles,
    @Inject(LOGGER) logger: Logger,
    private readonly invocations: ToolInvocationsService,
  ) {
    this.server = new HeaderRpcServer(nats.nc, logger);
  }

  onApplicationBootstrap(): void {
    this.server.handle(API_SUBJECTS.toolsInvoke, async (body, headers) => {
      const trace = traceFrom(headers.get('traceparent'));
      return (await this.invocations.invoke(parseInvocation(body), trace.traceId)).body;
    });
    this.server.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.server.stop();
  }
}
