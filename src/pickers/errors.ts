/**
 * The error of a picker policy that answers with something the balancer cannot use.
 *
 * @module
 */
import { SidecarlessError } from '../common/errors.js';

/**
 * A picker policy (a custom one: the built-ins never do this) answered with something the balancer cannot use: a
 * pick result that is not a `PickResult`, a target that is not one of the cluster's endpoints, a `fail` or `drop`
 * without its error, or a build (`build`, `startBuild`, a step) that gave no picker. The request fails with it, as it
 * would with an error the policy threw; {@link PickerError.policy} names the policy. Code `SIDECARLESS_PICKER_FAILED`.
 *
 * @category Errors
 */
export class PickerError extends SidecarlessError {
  /** The registered name of the policy at fault. */
  readonly policy: string;

  constructor(cluster: string, policy: string, fault: string) {
    super('SIDECARLESS_PICKER_FAILED', `Picker policy ${JSON.stringify(policy)} of cluster "${cluster}" ${fault}`);
    this.policy = policy;
  }
}
