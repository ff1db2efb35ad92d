/**
 * Resume tokens: `v1.<session id>.<expiry>.<store incarnation>.<signature>`, signed with
 * HMAC-SHA-256 under the server's secret (lib/session/PROTOCOL.md, "Resume tokens").
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { ResumeRefusal } from "../../session/wire.ts";

/** 16 random bytes in base64url: session ids, epochs and store incarnations. */
export function randomId(): string {
  return randomBytes(16).toString("base64url");
}

/** Issues and checks resume tokens under one secret. */
export class TokenSigner {
  #secret: Uint8Array;

  /** @param secret The HMAC key; at least 16 bytes (checked by the caller). */
  constructor(secret: string | Uint8Array) {
    this.#secret = typeof secret === "string" ? new TextEncoder().encode(secret) : secret.slice();
  }

  #sign(body: string): string {
    return createHmac("sha256", this.#secret).update(body).digest("base64url");
  }

  /**
   * A token for a session.
   *
   * @param id The session id (base64url, no dots).
   * @param expiresAt Milliseconds since the Unix epoch after which the token is refused.
   * @param incarnation The session store's incarnation (base64url, no dots).
   */
  issue(id: string, expiresAt: number, incarnation: string): string {
    const body = `v1.${id}.${expiresAt.toString(36)}.${incarnation}`;
    return `${body}.${this.#sign(body)}`;
  }

  /**
   * Checks a token: its form, its signature, its incarnation, then its expiry.
   *
   * @returns The session id, or why the token is refused.
   */
  check(
    token: string,
    incarnation: string,
    now: number,
  ): { id: string } | { refusal: ResumeRefusal } {
    const parts = token.split(".");
    if (parts.length !== 5 || parts[0] !== "v1") return { refusal: "invalid" };
    const [, id, expiry, from, signature] = parts;
    // The signature's text must be exactly the one expected, compared in constant time.
    const given = Buffer.from(signature);
    const expected = Buffer.from(this.#sign(`v1.${id}.${expiry}.${from}`));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return { refusal: "invalid" };
    }
    if (from !== incarnation) return { refusal: "restarted" };
    const expiresAt = parseInt(expiry, 36);
    if (!(expiresAt >= now)) return { refusal: "expired" };
    return { id };
  }
}
