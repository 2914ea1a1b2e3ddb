import { Body, Controller, HttpCode, Param, Post } from '@nestjs/common';
import { validateDto } from '@backchannel/http';
import { ApiKeysService } from './api-keys.service.js';
import { ApiKeyIdDto } from './dto/api-key-id.dto.js';
import { CreateApiKeyDto } from './dto/create-api-key.dto.js';

@Controller('internal/v1/api-keys')
export class ApiKeysController {
  constructor(private readonly apiKeys: ApiKeysService) {}

  @Post()
  @HttpCode(201)
  create(@Body() body: unknown): ReturnType<ApiKeysService['create']> {
    return this.apiKeys.create(validateDto(CreateApiKeyDto, body).tenant_id);
  }

  @Post(':keyId/revoke')
  @HttpCode(200)
  revoke(@Param('keyId') keyId: string): ReturnType<ApiKeysService['revoke']> {
    return this.apiKeys.revoke(validateDto(ApiKeyIdDto, { key_id: keyId }).key_id);
  }
}
