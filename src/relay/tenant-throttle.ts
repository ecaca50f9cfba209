/**
 * Enforces per-tenant rate limits across the relay's batches with a token
 * bucket per tenant: a tenant limited to r events/s earns r tokens a second,
 * holds at most one second's worth, and spends one per message. Messages over
 * the budget stay pending (in order) and the tenant is left out of claims
 * until a token is due.
 */

interface Bucket {
  rate: number;
  tokens: number;
  at: number;
}

/** Token buckets for the tenants that have a rate limit. */
export class TenantThrottle {
  private readonly buckets = new Map<string, Bucket>();

  /**
   * How many of `wanted` messages the tenant may publish now at `rate`
   * (undefined: unlimited), spending that many tokens.
   */
  take(tenant: string, rate: number | undefined, wanted: number, now = Date.now()): number {
    if (rate === undefined) {
      this.buckets.delete(tenant);
      return wanted;
    }
    const bucket = this.refill(tenant, rate, now);
    const allowed = Math.min(wanted, Math.floor(bucket.tokens));
    bucket.tokens -= allowed;
    return allowed;
  }

  /** Tenants that cannot publish a single message yet; the claim skips them. */
  blocked(now = Date.now()): string[] {
    const out: string[] = [];
    for (const [tenant, bucket] of this.buckets) {
      if (this.refill(tenant, bucket.rate, now).tokens < 1) out.push(tenant);
    }
    return out;
  }

  /** Milliseconds until the first blocked tenant earns a token (for the loop's sleep). */
  nextTokenInMs(now = Date.now()): number | undefined {
    let soonest: number | undefined;
    for (const bucket of this.buckets.values()) {
      if (bucket.tokens >= 1) continue;
      const wait = ((1 - bucket.tokens) / bucket.rate) * 1000 - (now - bucket.at);
      soonest = soonest === undefined ? wait : Math.min(soonest, wait);
    }
    return soonest === undefined ? undefined : Math.max(1, Math.ceil(soonest));
  }

  private refill(tenant: string, rate: number, now: number): Bucket {
    let bucket = this.buckets.get(tenant);
    if (!bucket) {
      // A newly limited tenant starts with one second's worth.
      bucket = { rate, tokens: Math.max(1, rate), at: now };
      this.buckets.set(tenant, bucket);
      return bucket;
    }
    bucket.tokens = Math.min(Math.max(1, rate), bucket.tokens + ((now - bucket.at) / 1000) * rate);
    bucket.rate = rate;
    bucket.at = now;
    return bucket;
  }
}
