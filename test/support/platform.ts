import { http } from './mesh.js';

/** The platform's side of a test: opens conversations and registers work items over HTTP. */
export class PlatformClient {
  constructor(private readonly tokenAuthorityUrl: string) {}

  async openConversation(conversationId: string, tenantId = 'tenant-a'): Promise<void> {
    const opened = await http('POST', `${this.tokenAuthorityUrl}/internal/v1/conversations`, {
      internal: true,
      body: { conversation_id: conversationId, tenant_id: tenantId },
    });
    if (opened.status !== 201 && opened.status !== 200) throw new Error(`open failed: ${JSON.stringify(opened.body)}`);
  }

  async register(
    conversationId: string,
    options: Record<string, unknown> = {},
  ): Promise<{ work_item_id: string; sequence: number; expires_at: string; token: string; url: string }> {
    const registered = await http('POST', `${this.tokenAuthorityUrl}/internal/v1/work-items`, {
      internal: true,
      body: { conversation_id: conversationId, kind: 'tool', ...options },
    });
    if (registered.status !== 201) throw new Error(`register failed: ${JSON.stringify(registered.body)}`);
    const body = registered.body;
    return { ...body, token: body.callback.headers['x-callback-token'], url: body.callback.url };
  }

  async endConversation(conversationId: string): Promise<any> {
    return (
      await http('POST', `${this.tokenAuthorityUrl}/internal/v1/conversations/${conversationId}/end`, {
        internal: true,
      })
    ).body;
  }

  async cancel(workItemId: string): Promise<{ status: number; body: any }> {
    return http('POST', `${this.tokenAuthorityUrl}/internal/v1/work-items/${workItemId}/cancel`, { internal: true });
  }

  async workItem(workItemId: string): Promise<any> {
    return (await http('GET', `${this.tokenAuthorityUrl}/internal/v1/work-items/${workItemId}`, { internal: true }))
      .body;
  }
}

/** Posts a callback the way a provider does. */
export function postCallback(
  ingressUrl: string,
  workItemId: string,
  token: string | undefined,
  body: unknown,
  headers: Record<string, string> = {},
): ReturnType<typeof http> {
  return http('POST', `${ingressUrl}/api/v1/webhooks/${workItemId}`, {
    body,
    headers: { ...(token !== undefined ? { 'x-callback-token': token } : {}), ...headers },
  });
}
