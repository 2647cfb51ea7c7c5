/**
 * Hidden classes of the per-request objects, kept alive for the life of the process (issue 14).
 *
 * V8 gives a new instance its constructor's initial map, then a new map for each field the constructor adds. Only the
 * initial map is held strongly (by the constructor); the maps after it hang off weak transitions. So when a full
 * collection finds no instance of a per-request class alive (a quiet moment of a quiet service; a benchmark that
 * collects between phases), those maps die, and V8 deoptimizes every optimized function that checked for one of them
 * ("weak objects"). For the request path that is every function a request runs through: they run unoptimized until
 * V8 tiers them up again. Measured on the e2e harness (a full GC before each 0.6 s phase): about 70 deoptimizations
 * after each collection, and the dispatcher at 0.7x raw undici's throughput instead of parity.
 *
 * {@link keepShape} holds one instance made through the class's own constructor (so it takes the same transitions as
 * every real instance and ends on the same map), and with it the map. An instance kept here must reference nothing
 * but small stand-ins: it lives as long as the process.
 *
 * @module
 */

const kept: object[] = [];

/** Keeps `instance`, and with it its hidden class, alive for the life of the process. Returns it. */
export function keepShape<T extends object>(instance: T): T {
  kept.push(instance);
  return instance;
}

/** @internal The instances kept (for the tests that check they share their class's map). */
export function keptShapes(): readonly object[] {
  return kept;
}
