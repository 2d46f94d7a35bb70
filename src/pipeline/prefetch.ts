/**
 * Read ahead of the consumer: keep up to `depth` next() calls of an async iterator running while
 * the consumer works on the current item, so an agent's reads overlap with hashing, compression and
 * volume writes instead of taking turns with them. Memory stays bounded: at most `depth` items are
 * fetched and not yet consumed.
 */
export async function* prefetch<T>(source: AsyncIterable<T>, depth: number): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  const pending: Promise<IteratorResult<T>>[] = [];
  let done = false;
  const fill = () => {
    while (!done && pending.length < depth) {
      const next = iterator.next();
      pending.push(next);
      // Stop asking once the source says it is done (or fails); the consumer sees it in order.
      next.then((r) => (done ||= r.done === true), () => (done = true));
    }
  };
  try {
    fill();
    while (pending.length > 0) {
      const result = await pending.shift()!;
      if (result.done) return;
      fill();
      yield result.value;
    }
  } finally {
    for (const p of pending) p.catch(() => undefined);
    if (!done) await iterator.return?.();
  }
}
