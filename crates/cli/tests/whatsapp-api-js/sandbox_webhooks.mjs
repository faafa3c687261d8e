// whatsapp-api-js (npm), a real WhatsApp Cloud API library, receives the
// sandbox's webhooks through its own handler, signature check included.
//
//   node sandbox_webhooks.mjs /path/to/wameter /path/to/node_modules/whatsapp-api-js
//
// whatsapp-api-js hashes the body with every non-ASCII character escaped as
// \uXXXX (Meta's form, its issue #290), so a sandbox that sent raw UTF-8
// would fail its check on every message with an accent or an emoji. Users
// write in Portuguese, Hindi and emoji; each must arrive verified, with its
// text intact. Prints one JSON summary line; exits non-zero with the reason.
import { createServer } from "node:http";
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import { startSandbox } from "./sandbox_process.mjs";

const [binary, library] = process.argv.slice(2);
const { WhatsAppAPI } = await import(pathToFileURL(join(library, "lib/index.js")).href);

const SECRET = "wajs-app-secret";
const PHONE = "106540352242922";
const TEXTS = {
  "5511999990001": "Olá! Você já enviou o meu pedido? Ação rápida, obrigado.",
  "919876543210": "नमस्ते, मेरा ऑर्डर कहाँ है?",
  "5511999990002": "👍🏽 ok 🎉 a/b",
};

// Beyond text: a reply button tapped on a reply to an earlier message, and
// a photo, in Meta's message shape (POST /_sandbox/inbound's `message`).
const KINDS = {
  "5511999990003": { type: "interactive", interactive: { type: "button_reply", button_reply: { id: "confirm-7", title: "Sim ✅" } }, context: { from: "15550783881", id: "wamid.earlier" } },
  "5511999990004": { type: "image", image: { id: "1479537139650973", mime_type: "image/jpeg", sha256: "abc", caption: "minha nota fiscal" } },
};

const api = new WhatsAppAPI({ token: "any-token", appSecret: SECRET, webhookVerifyToken: "wajs-verify", v: "v23.0" });
const received = new Map();
const refused = [];
api.on.message = ({ from, message }) => {
  received.set(from, message.text?.body ?? message);
};

const app = createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", async () => {
    const raw = Buffer.concat(chunks).toString("utf8");
    try {
      await api.post(JSON.parse(raw), raw, request.headers["x-hub-signature-256"]);
      response.writeHead(200).end();
    } catch (error) {
      refused.push(`${error?.constructor?.name}: ${error?.message} on ${raw.slice(0, 200)}`);
      response.writeHead(401).end();
    }
  });
});
await new Promise((resolve) => app.listen(0, "127.0.0.1", resolve));
const hook = `http://127.0.0.1:${app.address().port}/webhook`;

const { base, sandbox, fail } = await startSandbox(binary, ["--webhook-url", hook], { WAMETER_APP_SECRET: SECRET });

for (const [user, text] of Object.entries(TEXTS)) {
  const answer = await fetch(`${base}/_sandbox/inbound`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ business: PHONE, user, text }),
  });
  if (!answer.ok) fail(`inbound for ${user}: ${answer.status} ${await answer.text()}`);
}
for (const [user, message] of Object.entries(KINDS)) {
  const answer = await fetch(`${base}/_sandbox/inbound`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ business: PHONE, user, message }),
  });
  if (!answer.ok) fail(`inbound ${message.type} for ${user}: ${answer.status} ${await answer.text()}`);
}
const expected = Object.keys(TEXTS).length + Object.keys(KINDS).length;
const deadline = Date.now() + 30_000;
while (received.size < expected && refused.length === 0 && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 50));
}
if (refused.length) fail(`whatsapp-api-js refused the sandbox's webhook: ${refused[0]}`);
for (const [user, text] of Object.entries(TEXTS)) {
  if (received.get(user) !== text) fail(`${user}: received ${JSON.stringify(received.get(user))}, sent ${JSON.stringify(text)}`);
}
const tapped = received.get("5511999990003");
if (tapped?.interactive?.button_reply?.id !== "confirm-7" || tapped?.context?.id !== "wamid.earlier") fail(`button reply: ${JSON.stringify(tapped)}`);
const photo = received.get("5511999990004");
if (photo?.type !== "image" || photo?.image?.caption !== "minha nota fiscal" || !photo?.id?.startsWith("wamid.")) fail(`image: ${JSON.stringify(photo)}`);
sandbox.kill();
app.close();
console.log(JSON.stringify({ "whatsapp-api-js": "ok", verified: received.size }));
