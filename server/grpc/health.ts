import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";

/** The serving status of a service, as grpc.health.v1 reports it. */
export const ServingStatus = HealthCheckResponse_ServingStatus;
/** The serving status of a service, as grpc.health.v1 reports it. */
export type ServingStatus = HealthCheckResponse_ServingStatus;

/**
 * Serving status per service name ("" is the whole server), shared by the health service
 * and whatever decides readiness (start-up, database checks, graceful shutdown).
 */
export class HealthStatus {
  // The server is not ready until start-up says so; probes must not route traffic earlier.
  readonly #statuses = new Map<string, ServingStatus>([["", ServingStatus.NOT_SERVING]]);
  readonly #listeners = new Set<() => void>();
  #shutDown = false;

  /** Sets the status of a service ("" = overall); ignored after shutdown() until resume(). */
  set(service: string, status: ServingStatus): void {
    if (this.#shutDown || this.#statuses.get(service) === status) {
      return;
    }
    this.#statuses.set(service, status);
    this.#notify();
  }

  /** The status of a service, or undefined if the service is unknown. */
  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** A snapshot of all known services and their status. */
  list(): ReadonlyMap<string, ServingStatus> {
    return new Map(this.#statuses);
  }

  /** True between shutdown() and resume(). */
  get isShutDown(): boolean {
    return this.#shutDown;
  }

  /**
   * Marks every service NOT_SERVING and freezes the statuses, so that a late set(SERVING)
   * from a still-running check cannot advertise a server that is draining.
   */
  shutdown(): void {
    this.#shutDown = true;
    for (const service of this.#statuses.keys()) {
      this.#statuses.set(service, ServingStatus.NOT_SERVING);
    }
    this.#notify();
  }

  /** Undoes shutdown(): statuses can be set again (they stay NOT_SERVING until set). */
  resume(): void {
    this.#shutDown = false;
  }

  /**
   * Yields the current status of a service (SERVICE_UNKNOWN if unknown), then every change,
   * until the signal aborts. After shutdown() it yields NOT_SERVING and ends, so that
   * watchers learn about the drain and long-lived Watch calls do not hold it up; the health
   * protocol tells clients to retry a Watch that ends with OK.
   */
  async *watch(service: string, signal: AbortSignal): AsyncGenerator<ServingStatus> {
    let last: ServingStatus | undefined;
    while (!signal.aborted) {
      const current = this.#statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
      if (current !== last) {
        last = current;
        yield current;
        // Statuses may have changed while the consumer was busy: read again before waiting.
        continue;
      }
      if (this.#shutDown) {
        return;
      }
      await this.#nextChange(signal);
    }
  }

  #nextChange(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#listeners.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#listeners.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) {
      listener();
    }
  }
}

/** Serves grpc.health.v1.Health (Check, Watch, List) from the given status holder. */
export function registerHealth(router: ConnectRouter, health: HealthStatus): void {
  const impl: ServiceImpl<typeof Health> = {
    check(request) {
      const status = health.get(request.service);
      if (status === undefined) {
        throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
      }
      return { status };
    },
    async *watch(request, context) {
      for await (const status of health.watch(request.service, context.signal)) {
        yield { status };
      }
    },
    list() {
      const statuses: Record<string, { status: ServingStatus }> = {};
      for (const [service, status] of health.list()) {
        statuses[service] = { status };
      }
      return { statuses };
    },
  };
  router.service(Health, impl);
}
