// Upstreams' own webhook signers and example payloads, for the tests (tests/upstream_packages.py).
//
// tests/upstream_packages.py copies this file next to the node_modules it
// installs (outside git) and runs it once per test process. It reads one
// JSON request per line on stdin, {"rid", "op", "args"}, and writes one
// JSON answer per line on stdout: {"rid", "result"} or {"rid", "error"}. Every signature comes from
// the upstream's own published package, never from code of ours:
//   github:            @octokit/webhooks-methods  sign(secret, payload)
//   stripe:            stripe                     webhooks.generateTestHeaderString({payload, secret, timestamp})
//   standard-webhooks: standardwebhooks           new Webhook(secret).sign(id, date, payload)
//   examples:          @octokit/webhooks-examples api.github.com/index.json
import { createRequire } from "node:module";
import readline from "node:readline";

import { sign as githubSign } from "@octokit/webhooks-methods";
import Stripe from "stripe";
import standardWebhooks from "standardwebhooks";

const require = createRequire(import.meta.url);
const examples = require("@octokit/webhooks-examples");
// Signing needs no account: the key is never sent anywhere.
const stripe = new Stripe("sk_test_signing_only");

const ops = {
  async ping() {
    return "pong";
  },
  async github_examples({ name }) {
    const found = examples.find((entry) => entry.name === name);
    if (!found) throw new Error(`no GitHub example payloads named ${name}`);
    return found.examples;
  },
  async github_event_names() {
    return examples.map((entry) => entry.name);
  },
  async sign_github({ secret, payload }) {
    return githubSign(secret, payload);
  },
  async stripe_header({ secret, payload, timestamp }) {
    return stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });
  },
  async standard_webhooks_signature({ secret, id, timestamp, payload }) {
    return new standardWebhooks.Webhook(secret).sign(id, new Date(timestamp * 1000), payload);
  },
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let request = {};
  try {
    request = JSON.parse(line);
    const op = ops[request.op];
    if (!op) throw new Error(`unknown op ${request.op}`);
    const result = await op(request.args ?? {});
    process.stdout.write(JSON.stringify({ rid: request.rid, result }) + "\n");
  } catch (error) {
    process.stdout.write(JSON.stringify({ rid: request.rid ?? null, error: String(error?.message ?? error) }) + "\n");
  }
}
