import { MiniworkerService } from '../../miniworker/service';
import type { Miniworker } from '../../miniworker/miniworker';
import { createLogger } from '../../protocol/log';
import type { Job } from '../../protocol/worker-messages';
import { waitFor } from '../helpers/until';

/** A miniworker seam: a call that runs until `finish()`, writing what the test appends. */
function fakeMiniworker() {
  const output = { stdout: '', stderr: '' };
  let running: number | undefined;
  let finish: () => void = () => undefined;
  const miniworker = {
    warmKey: null,
    run: (job: Job) =>
      new Promise((resolve) => {
        running = job.call.callNum;
        finish = () => {
          running = undefined;
          resolve({ callNum: job.call.callNum, status: 'DONE', by: 'miniworker' });
        };
      }),
    cleanUp: async () => undefined,
    retire: async () => undefined,
    liveOutput: (callNum: number) => (callNum === running ? { stdout: () => output.stdout, stderr: () => output.stderr } : undefined),
  };
  return { miniworker: miniworker as unknown as Miniworker, output, finish: () => finish(), isRunning: () => running !== undefined };
}

const job = (callNum: number) => ({ call: { callNum } }) as unknown as Job;

describe('a followed call in a miniworker', () => {
  const log = createLogger('test', {});

  test('its output goes in pieces while it runs, each what came since the last; nothing after its end', async () => {
    const fake = fakeMiniworker();
    const sent: Array<{ msgType: string; content: any }> = [];
    const service = new MiniworkerService(fake.miniworker, { send: (msgType, content) => sent.push({ msgType, content }) }, log, async () => undefined);
    // The follow comes right behind the job, before the job has started.
    service.take('job', job(5));
    service.take('follow', { callNum: 5, follow: true });
    await waitFor(() => fake.isRunning(), 'the call running');
    fake.output.stderr = 'one\n';
    await waitFor(() => sent.length === 1, 'a first piece');
    fake.output.stderr += 'two\n';
    fake.output.stdout = 'out';
    await waitFor(() => sent.length === 2, 'a second piece');
    expect(sent).toEqual([
      { msgType: 'logs', content: { callNum: 5, stderr: 'one\n' } },
      { msgType: 'logs', content: { callNum: 5, stdout: 'out', stderr: 'two\n' } },
    ]);
    // A character cut in two by a chunk waits for the next piece.
    fake.output.stdout += '\uFFFD';
    await new Promise((r) => setTimeout(r, 450));
    expect(sent).toHaveLength(2);
    fake.finish();
    await waitFor(() => sent.some((m) => m.msgType === 'done'), 'the outcome');
    fake.output.stderr += 'late\n';
    await new Promise((r) => setTimeout(r, 450));
    expect(sent.map((m) => m.msgType)).toEqual(['logs', 'logs', 'done']);
  });

  test('a follow of another call, or one taken back, sends nothing', async () => {
    const fake = fakeMiniworker();
    const sent: Array<{ msgType: string; content: any }> = [];
    const service = new MiniworkerService(fake.miniworker, { send: (msgType, content) => sent.push({ msgType, content }) }, log, async () => undefined);
    service.take('job', job(6));
    await waitFor(() => fake.isRunning(), 'the call running');
    service.take('follow', { callNum: 99, follow: true });
    fake.output.stderr = 'mine\n';
    await new Promise((r) => setTimeout(r, 450));
    expect(sent).toHaveLength(0);
    service.take('follow', { callNum: 6, follow: true });
    await waitFor(() => sent.length === 1, 'a piece');
    service.take('follow', { callNum: 6, follow: false });
    fake.output.stderr += 'more\n';
    await new Promise((r) => setTimeout(r, 450));
    expect(sent).toHaveLength(1);
    fake.finish();
    await waitFor(() => sent.length === 2, 'the outcome');
  });
});
