import { PlatformError } from './errors';

/**
 * Retries an operation while it fails with a retryable platform error (db-service unreachable, say),
 * with a growing pause, for at most `forMs`; then the last error is thrown. (The Lazy Pirate.)
 */
export async function retrying<T>(operation: () => Promise<T>, forMs = 30_000): Promise<T> {
  const deadline = Date.now() + forMs;
  let pause = 100;
  for (;;) {
    try {
      return await operation();
    } catch (err) {
      if (!(err instanceof PlatformError) || !err.retryable || Date.now() + pause > deadline) throw err;
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 2000);
    }
  }
}
