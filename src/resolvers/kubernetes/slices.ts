/**
 * The EndpointSlices a Kubernetes resolver holds, and what it says about them: the parsed slices by name, what they
 * count against `maxEndpoints`, the slices whose latest version was malformed, and the entries skipped since the
 * last delivery. Whether a set is delivered, or the last one kept, is decided here ({@link SliceSet.build}):
 * docs/ARCHITECTURE.md, invariant 4 ("a set with nothing valid keeps the last one").
 *
 * @module
 */
import { KubernetesError } from '../errors.js';
import {
  bad,
  buildEndpoints,
  type BuiltSet,
  type EndpointSlice,
  objectName,
  parseSlice,
  type PortSpec,
} from './parse.js';

/** What a slice counts against `maxEndpoints`: its endpoints, at least one (an empty slice is state too). */
function weight(slice: EndpointSlice): number {
  return Math.max(1, slice.endpoints.length);
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** What {@link SliceSet.build} decided. */
export interface SliceBuild {
  readonly built: BuiltSet;
  /**
   * `true`: deliver `built.endpoints`. `false`: nothing usable is left and entries were skipped as unusable (a
   * malformed slice, an address no connection can be made to), so the last set delivered stays in use.
   */
  readonly deliver: boolean;
  /** A `bad-response` error to report: the entries skipped since the last build, and whether the last set stays. */
  readonly report: KubernetesError | undefined;
}

/** The slices of one listing, kept up to date by the watch that follows it. */
export class SliceSet {
  readonly #label: string;
  readonly #max: number;
  readonly #slices = new Map<string, EndpointSlice>();
  /** What `#slices` and `#malformed` count against `maxEndpoints` (see {@link weight}; a malformed slice, one). */
  #held = 0;
  /** Slices whose latest version was malformed: they may hold endpoints no one can read. */
  readonly #malformed = new Set<string>();
  /** Malformed listed items without a name (no watch event can replace them: they stay until the next list). */
  #nameless = 0;
  /** Entries skipped since the last {@link SliceSet.build}. */
  #skipped: { count: number; first: string } | undefined;

  constructor(label: string, maxEndpoints: number) {
    this.#label = label;
    this.#max = maxEndpoints;
  }

  /** Slices held. */
  get size(): number {
    return this.#slices.size;
  }

  /**
   * Parses `object` (a listed item, or the object of a watch event when `watched`) into the set. A malformed slice is
   * skipped and its previous version dropped; an endpoint whose address no connection can be made to is skipped (it
   * is never part of a built set). Returns how many entries were skipped. A slice that would take the set past
   * `maxEndpoints` is not taken: throws a `KubernetesError` with reason `limit`.
   */
  accept(object: unknown, watched: boolean): number {
    let slice: EndpointSlice;
    try {
      slice = parseSlice(object);
    } catch (err) {
      const name = objectName(object);
      if (name !== undefined) {
        this.delete(name);
        // A malformed slice is state held (its name) and counts as one against `maxEndpoints`: a watch sending
        // malformed slices under new names would otherwise grow the set of names without bound (probe 20).
        if (this.#held + 1 > this.#max) throw this.#limit();
        this.#malformed.add(name);
        this.#held += 1;
      } else if (!watched) {
        this.#nameless++; // a nameless watch event replaces nothing held: it is skipped, and changes nothing
      }
      this.#note(1, `EndpointSlice ${name ?? '(no name)'} is malformed: ${(err as Error).message}`);
      return 1;
    }
    const previous = this.#slices.get(slice.name);
    const wasMalformed = this.#malformed.has(slice.name);
    const next = this.#held - (previous === undefined ? 0 : weight(previous)) - (wasMalformed ? 1 : 0) + weight(slice);
    if (next > this.#max) throw this.#limit();
    this.#slices.set(slice.name, slice);
    this.#malformed.delete(slice.name);
    this.#held = next;
    let unusable = 0;
    let first: string | undefined;
    for (const endpoint of slice.endpoints) {
      if (endpoint.problem === undefined) continue;
      unusable++;
      first ??= endpoint.problem;
    }
    if (first !== undefined) this.#note(unusable, `EndpointSlice ${slice.name}: ${first}`);
    return unusable;
  }

  /** Removes the slice `name` (a DELETED event); unknown names are ignored. */
  delete(name: string): void {
    if (this.#malformed.delete(name)) this.#held -= 1;
    const gone = this.#slices.get(name);
    if (gone === undefined) return;
    this.#slices.delete(name);
    this.#held -= weight(gone);
  }

  /**
   * The set to deliver ({@link buildEndpoints}), and what to report first. When the set has no usable endpoint and
   * some entry was skipped as unusable (a malformed slice held, an endpoint that would serve but has an unusable
   * address), it is not delivered: the last set stays, and the report says so (the cluster's own rule for a set
   * with nothing valid). An empty set with nothing skipped (the Service scaled to zero) is delivered.
   */
  build(port: PortSpec, zone: string | undefined): SliceBuild {
    const built = buildEndpoints(this.#slices, port, zone);
    const skipped = this.#skipped;
    this.#skipped = undefined;
    const malformed = this.#malformed.size + this.#nameless;
    const keep = built.endpoints.length === 0 && (malformed > 0 || built.invalid > 0);
    const parts: string[] = [];
    if (skipped !== undefined) {
      parts.push(`skipped ${plural(skipped.count, 'unusable entry', 'unusable entries')} (first: ${skipped.first})`);
    }
    if (keep) {
      const held: string[] = [];
      if (malformed > 0) held.push(plural(malformed, 'malformed slice', 'malformed slices'));
      if (built.invalid > 0) held.push(`${plural(built.invalid, 'endpoint', 'endpoints')} with an unusable address`);
      parts.push(`no usable endpoint is left (${held.join(', ')}); keeping the last set`);
    }
    const report =
      parts.length === 0 ? undefined : bad(`Kubernetes EndpointSlices of ${this.#label}: ${parts.join('; ')}`);
    return { built, deliver: !keep, report };
  }

  #limit(): KubernetesError {
    return new KubernetesError(
      'limit',
      `Kubernetes API sent more than maxEndpoints (${this.#max}) endpoints for ${this.#label}; keeping the last good set`,
    );
  }

  #note(count: number, problem: string): void {
    if (this.#skipped === undefined) this.#skipped = { count, first: problem };
    else this.#skipped.count += count;
  }
}
