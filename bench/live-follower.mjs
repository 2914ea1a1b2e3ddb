// Notes when each injected message arrives on the live subjects, in a process of its own:
// the bench's main process holds every request and result of the run, and its garbage
// collections (scavenges of 15–25 ms were seen there) would stamp arrivals late. This one
// keeps only what arrived since the bench last took it.
// Usage (forked by bench.mjs): node bench/live-follower.mjs <natsUrl> <subject>
import { connect } from '@nats-io/transport-node';

const [natsUrl, subject] = process.argv.slice(2);
const now = () => performance.timeOrigin + performance.now();
const nc = await connect({ servers: natsUrl });
let arrivals = [];
nc.subscribe(subject, {
  callback: (_error, msg) => {
    const at = now();
    const workItemId = msg.json().source?.work_item_id;
    if (workItemId) arrivals.push([workItemId, at]);
  },
});
await nc.flush();
process.on('message', (message) => {
  if (message !== 'take') return;
  process.send(arrivals);
  arrivals = [];
});
process.send('ready');
