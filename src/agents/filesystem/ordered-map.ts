/**
 * orderedMap: an async map over an (async) iterable that runs up to `window` calls of the mapper at
 * once and still yields the results in input order. The filesystem walk uses it to keep several
 * batches of lstat and small-file reads in flight (walk.ts) instead of paying one file's latency
 * after another, without changing the order the engine sees.
 *
 * - Lazy and bounded: input is pulled only to keep `window` items started and not yet yielded
 *   (and, with `cost`, only while their total cost, the item the consumer holds included, stays
 *   within `maxCost`), whatever the input size.
 * - In order, errors included: if the source or the mapper fails at item k, items before k are
 *   yielded first and the error is thrown where item k would have been; nothing more is pulled.
 * - Closing: when the consumer stops early (return(), a `break` out of for-await) or an error ends
 *   the iteration, no new mapper call starts, every started call is awaited, and only then is the
 *   source closed. A mapper that releases what it holds (say, a file descriptor) before its promise
 *   settles therefore leaks nothing once return() has resolved. The results of those calls are
 *   dropped.
 */

export interface OrderedMapOptions<T> {
  /** At most this many items started and not yet yielded (at least 1). */
  window: number;
  /**
   * The weight of an item (say, the bytes its mapper will hold). An item starts only when the
   * items started and not yet done with (yielded, and the consumer back for the next one) weigh
   * at most `maxCost` with it, or when no other is (so one heavy item still goes through). Items
   * start in input order: a heavy item waiting for room holds back the items after it.
   */
  cost?: (item: T) => number;
  maxCost?: number;
}

type Step<U> = { done: true } | { done: false; value: U; cost: number };

const DONE: { done: true } = { done: true };

export async function* orderedMap<T, U>(
  source: AsyncIterable<T> | Iterable<T>,
  mapper: (item: T) => U | PromiseLike<U>,
  options: OrderedMapOptions<T>,
): AsyncGenerator<U, void, undefined> {
  const window = Math.max(1, Math.floor(options.window));
  const costOf = options.cost;
  const maxCost = options.maxCost ?? Number.POSITIVE_INFINITY;
  const iterator: AsyncIterator<T> | Iterator<T> =
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : (source as Iterable<T>)[Symbol.iterator]();
  const isSync = !(Symbol.asyncIterator in source);

  /** Started (or waiting for room), not yet yielded, in input order. */
  const queue: Promise<Step<U>>[] = [];
  /** Items that wait for room under maxCost, first come first served. */
  const waiting: { cost: number; run: () => void }[] = [];
  let heldCost = 0;
  let exhausted = false; // the source is done or failed: pull no more
  let stopped = false; // the consumer is gone: start no more mapper calls

  const run = (item: T, cost: number): Promise<Step<U>> =>
    new Promise<U>((resolve) => resolve(mapper(item))).then((value) => ({ done: false, value, cost }));

  /** Start the mapper on `item` now, or once the items before it leave room. */
  const start = (item: T): Promise<Step<U>> => {
    if (stopped) return Promise.resolve(DONE);
    const cost = costOf ? costOf(item) : 0;
    if (waiting.length === 0 && (heldCost === 0 || heldCost + cost <= maxCost)) {
      heldCost += cost;
      return run(item, cost);
    }
    return new Promise<Step<U>>((resolve) => {
      waiting.push({
        cost,
        run: () => {
          if (stopped) return resolve(DONE);
          heldCost += cost;
          resolve(run(item, cost));
        },
      });
    });
  };

  const release = (cost: number): void => {
    heldCost -= cost;
    while (waiting.length > 0 && (stopped || heldCost === 0 || heldCost + waiting[0]!.cost <= maxCost)) waiting.shift()!.run();
  };

  const pull = (): Promise<Step<U>> => {
    if (isSync) {
      let result: IteratorResult<T>;
      try {
        result = (iterator as Iterator<T>).next();
      } catch (error) {
        exhausted = true;
        return Promise.reject(error);
      }
      if (result.done) {
        exhausted = true;
        return Promise.resolve(DONE);
      }
      return start(result.value);
    }
    return Promise.resolve((iterator as AsyncIterator<T>).next()).then(
      (result) => {
        if (result.done) {
          exhausted = true;
          return DONE;
        }
        return start(result.value);
      },
      (error: unknown) => {
        exhausted = true;
        throw error;
      },
    );
  };

  const fill = (): void => {
    while (!exhausted && queue.length < window) {
      const step = pull();
      // Handled here so a failure further down the queue is not an unhandled rejection; it is
      // still thrown, in its place, when the consumer reaches it.
      step.catch(() => undefined);
      queue.push(step);
    }
  };

  try {
    fill();
    while (queue.length > 0) {
      const step = await queue.shift()!;
      if (step.done) return;
      fill(); // keep the window busy while the consumer works on this item...
      yield step.value;
      release(step.cost); // ...whose cost counts until the consumer comes back for the next
    }
  } finally {
    stopped = true;
    release(0); // wake the waiters: they settle without starting
    await Promise.allSettled(queue);
    queue.length = 0;
    if (!exhausted) await iterator.return?.();
  }
}
