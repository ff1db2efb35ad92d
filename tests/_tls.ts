/**
 * Certificates for the TLS suites, made by the `openssl` command line tool in a temporary
 * directory that is removed before the function returns: a self-signed one, or a CA and a
 * server certificate it signed. Nothing is checked in: each run makes its own keys, valid for
 * one day, for `localhost` and 127.0.0.1 (and ::1 for the CA-signed one).
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A PEM certificate and the PEM private key it was made for. */
export interface Certificate {
  /** The self-signed certificate: also the CA a client verifies it against. */
  cert: string;
  /** Its private key (PKCS #8). */
  key: string;
}

/** A CA certificate, and a server certificate and key that the CA signed. */
export interface SignedCertificate extends Certificate {
  /** The CA's certificate: what a client must trust to accept `cert`. */
  ca: string;
  /** The server's certificate (not a CA), signed by `ca`. */
  cert: string;
}

let shared: Certificate | undefined;

/** A P-256 key and what `openssl req` needs to make one. */
const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/**
 * A new self-signed P-256 certificate with subjectAltName DNS:localhost and IP:127.0.0.1.
 *
 * @throws {Error} If `openssl` is not installed or fails: the TLS suites need it, and a missing
 * tool must fail them, never skip them.
 */
export function generateCertificate(): Certificate {
  return inTempDir((dir) => {
    const certPath = join(dir, "cert.pem");
    const keyPath = join(dir, "key.pem");
    openssl([
      "req",
      "-x509",
      ...EC_KEY,
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
    ]);
    return { cert: readFileSync(certPath, "utf8"), key: readFileSync(keyPath, "utf8") };
  });
}

/**
 * A new P-256 CA, and a P-256 server certificate it signed with subjectAltName DNS:localhost,
 * IP:127.0.0.1 and IP:::1: a server serves `cert` with `key`, a client trusts `ca`. (Unlike a
 * self-signed certificate, `cert` is not a CA, so a client that trusts only the default store
 * refuses it as any browser would.)
 *
 * @throws {Error} If `openssl` is not installed or fails, as {@linkcode generateCertificate}.
 */
export function generateSignedCertificate(): SignedCertificate {
  return inTempDir((dir) => {
    const path = (name: string) => join(dir, name);
    openssl([
      "req",
      "-x509",
      ...EC_KEY,
      "-days",
      "1",
      "-subj",
      "/CN=sluice test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
      "-keyout",
      path("ca_key.pem"),
      "-out",
      path("ca.pem"),
    ]);
    openssl([
      "req",
      "-new",
      ...EC_KEY,
      "-subj",
      "/CN=localhost",
      "-keyout",
      path("key.pem"),
      "-out",
      path("csr.pem"),
    ]);
    writeFileSync(
      path("ext.cnf"),
      "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n" +
        "basicConstraints=critical,CA:FALSE\n" +
        "keyUsage=critical,digitalSignature\n" +
        "extendedKeyUsage=serverAuth\n",
    );
    openssl([
      "x509",
      "-req",
      "-in",
      path("csr.pem"),
      "-CA",
      path("ca.pem"),
      "-CAkey",
      path("ca_key.pem"),
      "-CAserial",
      path("ca.srl"),
      "-CAcreateserial",
      "-days",
      "1",
      "-extfile",
      path("ext.cnf"),
      "-out",
      path("cert.pem"),
    ]);
    return {
      ca: readFileSync(path("ca.pem"), "utf8"),
      cert: readFileSync(path("cert.pem"), "utf8"),
      key: readFileSync(path("key.pem"), "utf8"),
    };
  });
}

/** Runs `body` with a new temporary directory, removed afterwards. */
function inTempDir<T>(body: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "sluice-tls-"));
  try {
    return body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the openssl command line tool, with an error that says what went wrong. */
function openssl(args: string[]): void {
  try {
    execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
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
}

/** One certificate shared by every test in this process (made on first use). */
export function testCertificate(): Certificate {
  shared ??= generateCertificate();
  return shared;
}
