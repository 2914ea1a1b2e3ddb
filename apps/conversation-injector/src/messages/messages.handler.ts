import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { API_SUBJECTS, DEFAULT_PAGE_LIMIT } from '@backchannel/contracts';
import { LOGGER, NATS_HANDLES, validateDto } from '@backchannel/http';
import { RpcServer, type NatsHandles } from '@backchannel/messaging';
import type { Logger } from '@backchannel/observability';
import { TenantAccess } from '../access/tenant-access.service.js';
import { TranscriptReader } from '../transcript/transcript-reader.service.js';
import { ListMessagesRequestDto } from './dto/list-messages.dto.js';

/**
 * `bc.v1.conversations.messages.list` (CONTRACT.md §2): the platform catches up from any
 * position. Internal (NATS permissions are the boundary), so there is no tenant check.
 */
@Injectable()
export class MessagesHandler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly server: RpcServer;

  constructor(
    @Inject(NATS_HANDLES) nats: NatsHandles,
    @Inject(LOGGER) logger: Logger,
    private readonly access: TenantAccess,
    private readonly reader: TranscriptReader,
  ) {
    this.server = new RpcServer(nats.nc, logger);
  }

  onApplicationBootstrap(): void {
    this.server.handle(API_SUBJECTS.messagesList, async (body) => {
      const request = validateDto(ListMessagesRequestDto, body);
      await this.access.known(request.conversation_id);
      return this.reader.page(request.conversation_id, request.after ?? 0, request.limit ?? DEFAULT_PAGE_LIMIT);
    });
    this.server.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.server.stop();
  }
}
