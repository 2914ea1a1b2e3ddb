// The soak's load generator (bench/soak.mjs), in its own process like bench/load-worker.mjs,
// but streaming: callbacks arrive over IPC as they are registered, each is sent at its due
// time of a fixed open-loop schedule (the n-th at start + n / rate, whatever the answers),
// and timings go back in small batches so the soak can sample every minute.
//   in:  {type: 'start', origin, rate} · {type: 'requests', requests: [{id, path, token, body}]} · {type: 'stop'}
//   out: {type: 'results', results: [{id, sentAt, answeredAt, status, late}]} · {type: 'done'}
import { Pool } from 'undici';

const now = () => performance.timeOrigin + performance.now();
/** Sent this long after its due time (registration fell behind): the rate was not held. */
const LATE_MS = 50;
const REPORT_EVERY_MS = 200;

let pool;
let rate;
let startedAt;
let scheduled = 0;
const queue = [];
const inFlight = new Set();
let results = [];
let stopping = false;

process.on('message', (message) => {
  if (message.type === 'start') start(message);
  else if (message.type === 'requests') queue.push(...message.requests);
  else if (message.type === 'stop') stopping = true;
});

function start(plan) {
  pool = new Pool(plan.origin, { connections: plan.connections ?? 64, pipelining: 1 });
  rate = plan.rate;
  startedAt = now();
  tick();
  setInterval(report, REPORT_EVERY_MS);
}

function tick() {
  const due = Math.floor(((now() - startedAt) / 1000) * rate);
  while (scheduled < due && queue.length > 0) {
    const dueAt = startedAt + (scheduled * 1000) / rate;
    scheduled++;
    send(queue.shift(), dueAt);
  }
  if (stopping && queue.length === 0) return finish();
  setTimeout(tick, 1);
}

function send(request, dueAt) {
  const sentAt = now();
  const late = sentAt - dueAt > LATE_MS;
  const work = pool
    .request({
      method: 'POST',
      path: request.path,
      headers: { 'content-type': 'application/json', 'x-callback-token': request.token },
      body: request.body,
    })
    .then(async (response) => {
      await response.body.dump();
      return response.statusCode;
    })
    .catch(() => 0)
    .then((status) => {
      results.push({ id: request.id, sentAt, answeredAt: now(), status, late });
      inFlight.delete(work);
    });
  inFlight.add(work);
}

function report() {
  if (results.length === 0) return;
  process.send({ type: 'results', results });
  results = [];
}

async function finish() {
  await Promise.all([...inFlight]);
  report();
  await pool.close();
  process.send({ type: 'done' });
}
