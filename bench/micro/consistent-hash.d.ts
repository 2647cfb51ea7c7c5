/** Minimal types for the `consistent-hash` npm package (it ships none), covering what the benchmark uses. */
declare module 'consistent-hash' {
  interface ConsistentHashOptions {
    /** Control-point modulo range. @defaultValue 100003 */
    range?: number;
    /** Control points per node. @defaultValue 40 */
    weight?: number;
    /** `random` (default) or `uniform` placement of control points. */
    distribution?: 'random' | 'uniform';
  }
  class ConsistentHash {
    constructor(options?: ConsistentHashOptions);
    add(node: string, weight?: number, points?: number[]): this;
    remove(node: string): this;
    get(name: string): string | null;
    getNodes(): string[];
  }
  export = ConsistentHash;
}
