/**
 * Self-signed certificates for the wss:// suites, made by the `openssl` command line tool in a
 * temporary directory that is removed before the function returns. Nothing is checked in: each
 * run makes its own key, valid for one day, for `localhost` and 127.0.0.1.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A PEM certificate and the PEM private key it was made for. */
export interface Certificate {
  /** The self-signed certificate: also the CA a client verifies it against. */
  cert: string;
  /** Its private key (PKCS #8). */
  key: string;
}

let shared: Certificate | undefined;

/**
 * A new self-signed P-256 certificate with subjectAltName DNS:localhost and IP:127.0.0.1.
 *
 * @throws {Error} If `openssl` is not installed or fails: the TLS suites need it, and a missing
 * tool must fail them, never skip them.
 */
export function generateCertificate(): Certificate {
  const dir = mkdtempSync(join(tmpdir(), "sluice-tls-"));
  try {
    const certPath = join(dir, "cert.pem");
    const keyPath = join(dir, "key.pem");
    try {
      execFileSync("openssl", [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout",
        keyPath,
        "-out",
        certPath,
      ], { stdio: ["ignore", "ignore", "pipe"] });
    } catch (error) {
      const { code, stderr } = error as { code?: string; stderr?: Uint8Array };
      if (code === "ENOENT") {
        throw new Error(
          "The TLS tests need the openssl command line tool to make a certificate, and it is " +
            "not on the PATH: install OpenSSL (e.g. apt-get install openssl)",
          { cause: error },
        );
      }
      const detail = stderr === undefined ? "" : `: ${new TextDecoder().decode(stderr).trim()}`;
      throw new Error(`openssl failed to make a test certificate${detail}`, { cause: error });
    }
    return { cert: readFileSync(certPath, "utf8"), key: readFileSync(keyPath, "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One certificate shared by every test in this process (made on first use). */
export function testCertificate(): Certificate {
  shared ??= generateCertificate();
  return shared;
}
