// The load generator, in its own process so it does not share an event loop with what it
// measures. It receives a plan over IPC and answers with per-request timings.
//   closed: keep `concurrency` requests in flight for `durationMs` (maximum throughput);
//   open:   send at a fixed `rate` per second whatever the answers (latency under load).
import { Pool } from 'undici';

const now = () => performance.timeOrigin + performance.now();

process.on('message', async (plan) => {
  const connections = plan.connections ?? 64;
  const pool = new Pool(plan.origin, { connections, pipelining: 1 });
  await warmUp(pool, connections);
  process.send({ warmedUp: true });
  const cpuBefore = process.cpuUsage();
  const results = plan.kind === 'closed' ? await closedLoop(pool, plan) : await openLoop(pool, plan);
  const cpu = process.cpuUsage(cpuBefore);
  await pool.close();
  // Its own CPU while the step ran, so the bench can tell the load generator's share.
  process.send({ results, cpuMs: (cpu.user + cpu.system) / 1000 });
});

/**
 * Before anything is timed: open every connection and warm this process up (JIT, undici),
 * with GETs of `/healthz` (a 404 on the ceiling servers does as well). Without it the
 * first half second of a step measured the load generator's cold start (seen: answers the
 * server gave in 70 ms taking 1.2 s to arrive).
 */
async function warmUp(pool, connections) {
  for (let round = 0; round < 20; round++) {
    await Promise.all(
      Array.from({ length: connections }, () =>
        pool.request({ method: 'GET', path: '/healthz' }).then(
          (response) => response.body.dump(),
          () => undefined,
        ),
      ),
    );
  }
}

function post(pool, request) {
  const sentAt = now();
  return pool
    .request({
      method: 'POST',
      path: request.path,
      headers: { 'content-type': 'application/json', 'x-callback-token': request.token ?? '' },
      body: request.body,
    })
    .then(async (response) => {
      await response.body.dump();
      return { id: request.id, sentAt, answeredAt: now(), status: response.statusCode };
    })
    .catch(() => ({ id: request.id, sentAt, answeredAt: now(), status: 0 }));
}

async function closedLoop(pool, plan) {
  const results = [];
  const deadline = now() + plan.durationMs;
  let next = 0;
  const lane = async () => {
    while (now() < deadline && next < plan.requests.length) results.push(await post(pool, plan.requests[next++]));
  };
  await Promise.all(Array.from({ length: plan.concurrency }, lane));
  return results;
}

async function openLoop(pool, plan) {
  const pending = [];
  const start = now();
  let sent = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(plan.requests.length, Math.floor(((now() - start) / 1000) * plan.rate));
      while (sent < due) pending.push(post(pool, plan.requests[sent++]));
      if (sent >= plan.requests.length) return resolve();
      setTimeout(tick, 1);
    };
    tick();
  });
  return Promise.all(pending);
}
