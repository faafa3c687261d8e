// whatsapp-api-js (npm), a real WhatsApp Cloud API library, sends through
// the sandbox every kind it builds: a text in the customer service window,
// a template, reply buttons, a list, a location, a reaction, contacts,
// audio, video, document and sticker by link, an upload, the upload's URL
// and bytes, an image sent by the upload's id, and the upload deleted.
//
//   node sandbox_send.mjs /path/to/wameter /path/to/node_modules/whatsapp-api-js
//
// whatsapp-api-js has no base-URL setting; it takes its `fetch` from the
// `ponyfill` option (documented for platforms without a global fetch), so
// the shim is a fetch that sends Graph's URLs to the sandbox (README,
// "Pointing an SDK at the sandbox"). Prints one JSON summary line; exits
// non-zero with the reason.
import { createHash } from "node:crypto";
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import { startSandbox } from "./sandbox_process.mjs";

const [binary, library] = process.argv.slice(2);
const { WhatsAppAPI } = await import(pathToFileURL(join(library, "lib/index.js")).href);
const { Text, Image, Audio, Video, Document, Sticker, Template, Language, Location, Reaction, Interactive, ActionButtons, Button, Body, ActionList, ListSection, Row, Contacts, Name, Phone } = await import(pathToFileURL(join(library, "lib/messages/index.js")).href);

const PHONE = "106540352242922";
const USER = "5511999990000";

const { base, sandbox, fail } = await startSandbox(binary, []);

// The shim: Graph's URLs go to the sandbox; everything else as it is.
const toSandbox = (url, options) => fetch(String(url).replace("https://graph.facebook.com", base), options);
const api = new WhatsAppAPI({ token: "any-token", appSecret: "unused", v: "v23.0", ponyfill: { fetch: toSandbox } });

const inbound = await fetch(`${base}/_sandbox/inbound`, {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ business: PHONE, user: `+${USER}`, text: "Pode mandar a foto?" }),
});
if (!inbound.ok) fail(`inbound: ${inbound.status} ${await inbound.text()}`);

const sent = [];
const send = async (what, message) => {
  const answer = await api.sendMessage(PHONE, USER, message);
  const id = answer?.messages?.[0]?.id;
  if (!id?.startsWith("wamid.")) fail(`${what}: ${JSON.stringify(answer)}`);
  sent.push(id);
};
await send("text", new Text("Claro! Um momento."));
await send("template", new Template("hello_world", new Language("en_US")));
await send("reply buttons", new Interactive(new ActionButtons(new Button("yes", "Sim"), new Button("no", "Não")), new Body("Confirma o endereço?")));
await send("location", new Location(-46.6559, -23.5614, "Loja Paulista", "Av. Paulista, 1000"));
await send("reaction", new Reaction(sent[0], "👍"));
await send("list", new Interactive(new ActionList("Ver opções", new ListSection("Entrega", new Row("fast", "Expressa", "1 dia"), new Row("slow", "Econômica"))), new Body("Como prefere receber?")));
await send("contacts", new Contacts([new Name("Central de Ajuda", "Central"), new Phone("+551140040000", "WORK")]));
await send("audio by link", new Audio("https://example.com/aviso.mp3"));
await send("video by link", new Video("https://example.com/demo.mp4", false, "Como usar"));
await send("document by link", new Document("https://example.com/nota.pdf", false, "Sua nota", "nota.pdf"));
await send("sticker by link", new Sticker("https://example.com/ok.webp"));

const photo = new Uint8Array(4096).map((_, i) => (i * 7) % 256);
const form = new FormData();
form.append("file", new Blob([photo], { type: "image/jpeg" }), "photo.jpg");
const uploaded = await api.uploadMedia(PHONE, form);
if (!uploaded?.id) fail(`upload: ${JSON.stringify(uploaded)}`);
const described = await api.retrieveMedia(uploaded.id, PHONE);
const sha256 = createHash("sha256").update(photo).digest("hex");
if (described?.sha256 !== sha256 || described?.mime_type !== "image/jpeg" || described?.file_size !== String(photo.length)) {
  fail(`retrieve: ${JSON.stringify(described)}`);
}
const download = await api.fetchMedia(described.url);
const bytes = new Uint8Array(await download.arrayBuffer());
if (!download.ok || bytes.length !== photo.length || bytes.some((b, i) => b !== photo[i])) fail(`download: ${download.status}, ${bytes.length} bytes`);
await send("image by id", new Image(uploaded.id, true, "Aqui está"));
const deleted = await api.deleteMedia(uploaded.id, PHONE);
if (deleted?.success !== true) fail(`delete: ${JSON.stringify(deleted)}`);
// Gone: the id is no media any more (without --accounts the sandbox takes
// any id as a phone number of its own, so the answer is not an error).
const again = await api.retrieveMedia(uploaded.id);
if (again?.sha256 || again?.url) fail(`retrieve after delete: ${JSON.stringify(again)}`);

sandbox.kill();
console.log(JSON.stringify({ "whatsapp-api-js": "ok", sent: sent.length, downloaded: bytes.length }));
