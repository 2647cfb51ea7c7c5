/**
 * An OpenTelemetry SDK metric reader that only collects when asked (`reader.collect()`): what the exporter tests read
 * the instruments through, with the SDK's default (cumulative) temporality.
 */
import { MetricReader } from '@opentelemetry/sdk-metrics';

export class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}
