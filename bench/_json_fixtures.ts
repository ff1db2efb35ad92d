/**
 * Realistic JSON messages for the permessage-deflate benchmarks, deterministic (a seeded
 * PRNG, no clock): the same seed gives the same bytes on both runtimes. Keys repeat, numbers
 * vary, strings come from small vocabularies, as in a real application's traffic, so they
 * compress as such traffic does rather than as random bytes (incompressible) or one repeated
 * pattern (unrealistically compressible).
 *
 * Four kinds, each built up to a target size:
 * - `chat`: one chat message, about 200 B;
 * - `api`: an API response (a user's profile), about 1 KiB;
 * - `list`: a page of a product list, about 16 KiB;
 * - `document`: a long document with sections of prose, about 64 KiB.
 *
 * @module
 */

/** The kinds of message, with their target sizes in bytes. */
export const KINDS = {
  chat: 200,
  api: 1024,
  list: 16 * 1024,
  document: 64 * 1024,
} as const;

/** A kind of message. */
export type Kind = keyof typeof KINDS;

/** mulberry32: a small, fast, seeded PRNG; enough for fixtures. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIRST = ["Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Alan"];
const LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie"];
const ROOMS = ["general", "random", "support", "engineering", "design", "releases"];
const WORDS = (
  "the a to of and in is it that for on with as this be at by from or an are was but not " +
  "we you they have has will can just deploy build server client request response latency " +
  "message queue socket retry timeout cache database index query review merge branch test " +
  "release fix bug issue ticket customer order invoice payment shipping warehouse product " +
  "price discount report dashboard metric alert incident page team meeting tomorrow today " +
  "morning afternoon please thanks sure looks good ship it again later maybe quickly"
).split(" ");
const TAGS = ["new", "sale", "eco", "bestseller", "limited", "refurbished", "bundle", "gift"];
const CATEGORIES = ["kitchen", "garden", "office", "outdoor", "toys", "books", "audio"];
const CITIES = ["Lisbon", "Osaka", "Toronto", "Nairobi", "Berlin", "Santiago", "Melbourne"];

type Rand = () => number;

function pick<T>(rand: Rand, list: readonly T[]): T {
  return list[Math.floor(rand() * list.length)];
}

function int(rand: Rand, min: number, max: number): number {
  return min + Math.floor(rand() * (max - min + 1));
}

function sentence(rand: Rand, min: number, max: number): string {
  const n = int(rand, min, max);
  const words: string[] = [];
  for (let i = 0; i < n; i++) words.push(pick(rand, WORDS));
  const text = words.join(" ");
  return text[0].toUpperCase() + text.slice(1) + ".";
}

function hex(rand: Rand, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += Math.floor(rand() * 16).toString(16);
  return out;
}

/** A time in 2025, as an ISO string, moving forward with `rand`. */
function timestamp(rand: Rand): string {
  return new Date(Date.UTC(2025, 0, 1) + Math.floor(rand() * 365 * 86400e3)).toISOString();
}

function user(rand: Rand): { id: number; name: string; handle: string } {
  const first = pick(rand, FIRST);
  const last = pick(rand, LAST);
  return {
    id: int(rand, 1000, 99999),
    name: `${first} ${last}`,
    handle: `${first.toLowerCase()}.${last.toLowerCase()}`,
  };
}

function chat(rand: Rand): unknown {
  return {
    type: "message",
    id: hex(rand, 16),
    room: pick(rand, ROOMS),
    user: user(rand),
    text: sentence(rand, 6, 12),
    sentAt: timestamp(rand),
    edited: rand() < 0.1,
  };
}

function profile(rand: Rand): Record<string, unknown> {
  const u = user(rand);
  return {
    ...u,
    email: `${u.handle}@example.com`,
    avatarUrl: `https://cdn.example.com/avatars/${hex(rand, 24)}.png`,
    createdAt: timestamp(rand),
    lastSeenAt: timestamp(rand),
    locale: pick(rand, ["en-GB", "en-US", "pt-PT", "ja-JP", "de-DE"]),
    address: {
      street: `${int(rand, 1, 250)} ${pick(rand, LAST)} Street`,
      city: pick(rand, CITIES),
      postcode: String(int(rand, 10000, 99999)),
    },
    settings: {
      theme: pick(rand, ["light", "dark", "system"]),
      notifications: { email: rand() < 0.5, push: rand() < 0.5, digest: "weekly" },
    },
    stats: { posts: int(rand, 0, 5000), followers: int(rand, 0, 100000), score: rand() * 100 },
  };
}

function product(rand: Rand, id: number): unknown {
  return {
    id,
    sku: `SKU-${hex(rand, 8).toUpperCase()}`,
    name: `${pick(rand, CATEGORIES)} ${pick(rand, WORDS)} ${pick(rand, WORDS)}`,
    category: pick(rand, CATEGORIES),
    price: Math.round(rand() * 50000) / 100,
    currency: "EUR",
    inStock: rand() < 0.8,
    stock: int(rand, 0, 500),
    rating: Math.round(rand() * 50) / 10,
    tags: [pick(rand, TAGS), pick(rand, TAGS)],
    updatedAt: timestamp(rand),
  };
}

function section(rand: Rand, index: number): unknown {
  const paragraphs: string[] = [];
  const n = int(rand, 2, 5);
  for (let i = 0; i < n; i++) {
    const sentences: string[] = [];
    const m = int(rand, 3, 7);
    for (let j = 0; j < m; j++) sentences.push(sentence(rand, 6, 18));
    paragraphs.push(sentences.join(" "));
  }
  return {
    id: `s${index}`,
    heading: sentence(rand, 3, 6).slice(0, -1),
    author: user(rand),
    updatedAt: timestamp(rand),
    paragraphs,
    comments: int(rand, 0, 40),
  };
}

const encoder = new TextEncoder();

/**
 * One message of `kind`, as UTF-8 JSON bytes: the largest valid JSON of its shape at or under
 * the target size (whole items are added while they fit; chat and api are single objects,
 * their size set by the seed's strings).
 *
 * @param kind The kind of message.
 * @param seed The seed: different seeds give different messages of the same shape.
 * @param target The size to fill up to, in bytes; for `list` and `document`, whose length
 *   grows item by item (chat ignores it; api pads its recent activity up to it).
 * @returns The message bytes.
 *
 * @example
 * ```ts
 * import { jsonMessage } from "./_json_fixtures.ts";
 * const bytes = jsonMessage("api", 1);
 * console.log(bytes.length); // about 1024
 * ```
 */
export function jsonMessage(kind: Kind, seed: number, target: number = KINDS[kind]): Uint8Array {
  const rand = prng(seed * 7919 + 17);
  switch (kind) {
    case "chat":
      return encoder.encode(JSON.stringify(chat(rand)));
    case "api": {
      const body: Record<string, unknown> = { ok: true, data: profile(rand), recent: [] };
      // Recent activity pads the profile to about 1 KiB.
      const recent = body.recent as unknown[];
      for (;;) {
        const item = { type: pick(rand, ["post", "like", "comment"]), at: timestamp(rand) };
        recent.push(item);
        if (JSON.stringify(body).length > target) {
          recent.pop();
          return encoder.encode(JSON.stringify(body));
        }
      }
    }
    case "list":
    case "document": {
      const items: unknown[] = [];
      const body = kind === "list"
        ? { page: 1 + (seed % 50), pageSize: 0, items }
        : { id: hex(rand, 12), title: sentence(rand, 4, 8), sections: items };
      let last = "";
      for (;;) {
        items.push(kind === "list" ? product(rand, 1 + items.length) : section(rand, items.length));
        if ("pageSize" in body) body.pageSize = items.length;
        const json = JSON.stringify(body);
        if (json.length > target) {
          if (last === "") return encoder.encode(json);
          return encoder.encode(last);
        }
        last = json;
      }
    }
  }
}

/**
 * `count` different messages of `kind` (seeds 1 to `count`): for a compressor with context
 * takeover, which would otherwise find the whole previous message in its window.
 *
 * @param kind The kind of message.
 * @param count How many.
 * @returns The messages.
 */
export function jsonMessages(kind: Kind, count: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let seed = 1; seed <= count; seed++) out.push(jsonMessage(kind, seed));
  return out;
}
