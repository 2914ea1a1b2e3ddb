import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

/** Every message of every stream on a broker (KV buckets are streams too), as text. */
export async function dumpAllStreams(url: string): Promise<{ stream: string; subject: string; text: string }[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const dump: { stream: string; subject: string; text: string }[] = [];
    for await (const info of jsm.streams.list()) {
      const { first_seq, last_seq } = info.state;
      for (let seq = first_seq; seq <= last_seq && last_seq > 0; seq++) {
        const message = await jsm.streams.getMessage(info.config.name, { seq }).catch(() => null);
        if (!message) continue;
        const headers = message.header
          ? [...message.header.keys()].map((key) => `${key}:${message.header.get(key)}`).join('\n')
          : '';
        dump.push({
          stream: info.config.name,
          subject: message.subject,
          text: `${headers}\n${new TextDecoder().decode(message.data)}`,
        });
      }
    }
    return dump;
  } finally {
    await nc.close();
  }
}
