/**
 * The rejection of a nested value that would not arrive as it was sent. The
 * encoders throw an {@link Unfaithful} deep in their walk; each level adds
 * its key on the way out, and the top turns it into the typed
 * {@link InvalidMessageError} that names the path (`payload.items[3].price`).
 */
import { describeError, InvalidMessageError } from '../errors.js';

/** Why a nested value was rejected; its path is collected while the walk unwinds. */
export class Unfaithful {
  /** Keys and indices from the value up to the root (innermost first). */
  readonly path: (string | number)[] = [];
  constructor(readonly reason: string) {}
}

/** Adds `key` to the path of an error thrown below it; any other error becomes one. */
export function under(error: unknown, key: string | number): Unfaithful {
  const unfaithful =
    error instanceof Unfaithful ? error : new Unfaithful(`cannot be read: ${describeError(error)}`);
  unfaithful.path.push(key);
  return unfaithful;
}

/** The typed error for an {@link Unfaithful} found under `root`. */
export function invalidAt(root: string, index: number, error: Unfaithful): InvalidMessageError {
  let field = root;
  for (let i = error.path.length - 1; i >= 0; i--) {
    const key = error.path[i];
    field += typeof key === 'number' ? `[${key}]` : `.${key}`;
  }
  return new InvalidMessageError(field, index, error.reason);
}
