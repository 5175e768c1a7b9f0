// The connection's state timer: a deadline in a number, the Node timer moved only when the
// deadline comes before it. A shorter period must still fire on time, a longer one never early,
// a refresh must push the deadline back, and arm(0) / clear() must stop it.
import t from 'tap';
import { StateTimer } from '../src/timeouts.js';
import { waitFor } from './support/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function counted(): { timer: StateTimer; fired: () => number } {
  let n = 0;
  return { timer: new StateTimer(() => n++), fired: () => n };
}

t.test('a shorter period after a longer one fires on time (the Node timer is moved)', async (t) => {
  const { timer, fired } = counted();
  t.teardown(() => timer.clear());
  timer.arm(60_000);
  timer.arm(40);
  await waitFor(() => fired() > 0, 3000, 'the 40 ms period fires, not the 60 s one');
  await sleep(100);
  t.equal(fired(), 1, 'once');
});

t.test('a longer period after a shorter one: the early wake-up sleeps again, nothing fires before the deadline', async (t) => {
  const { timer, fired } = counted();
  t.teardown(() => timer.clear());
  timer.arm(30);
  timer.arm(5000); // the Node timer still wakes at 30 ms
  await sleep(300);
  t.equal(fired(), 0, 'the early wake-up did not fire');
  timer.arm(40); // shorter than what is left: moved again
  await waitFor(() => fired() > 0, 3000, 'the live period fires');
  t.equal(fired(), 1);
});

t.test('refresh pushes the deadline back; without refreshes it fires', async (t) => {
  const { timer, fired } = counted();
  t.teardown(() => timer.clear());
  timer.arm(1000);
  for (let i = 0; i < 25; i++) {
    await sleep(50);
    timer.refresh();
  }
  t.equal(fired(), 0, 'kept alive past its first deadline by refreshes');
  await waitFor(() => fired() > 0, 3000, 'fires once the refreshes stop');
  t.equal(fired(), 1);
});

t.test('arm(0) and clear() stop the period; a new arm starts one', async (t) => {
  const { timer, fired } = counted();
  t.teardown(() => timer.clear());
  timer.arm(30);
  timer.arm(0);
  timer.refresh(); // nothing live: no effect
  await sleep(200);
  t.equal(fired(), 0, 'disabled');
  timer.arm(30);
  timer.clear();
  await sleep(150);
  t.equal(fired(), 0, 'cleared');
  timer.arm(30);
  await waitFor(() => fired() > 0, 3000, 'armed again, it fires');
  t.equal(fired(), 1);
});
