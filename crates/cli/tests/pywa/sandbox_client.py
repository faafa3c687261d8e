"""A real WhatsApp client library, pywa (PyPI), against `wameter sandbox`.

    python sandbox_client.py /path/to/wameter

pywa sends through the sandbox (its httpx session's base URL redirected, the
only change an app makes) and its own webhook handler — signature check,
verification handshake, parsing — receives the sandbox's webhooks. Exits
non-zero with the reason when anything differs from what Meta would do.
"""
import hashlib
import json
import sys
import threading
import time
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import httpx
from pywa import WhatsApp, types

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sandbox_process import running_sandbox  # noqa: E402
from pywa.types.templates import TemplateLanguage

SECRET = "pywa-app-secret"
VERIFY_TOKEN = "pywa-verify-token"
PHONE = "106540352242922"
USER = "5511999990000"

messages, statuses = [], []
lock = threading.Lock()


def wait_for(what, predicate, timeout=30):
    start = time.time()
    while time.time() - start < timeout:
        with lock:
            found = predicate()
        if found:
            return found
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {what}; messages={messages!r} statuses={statuses!r}")


class ToSandbox(httpx.HTTPTransport):
    """Sends pywa's Graph API calls to the sandbox instead of graph.facebook.com."""

    base = None

    def handle_request(self, request):
        request.url = request.url.copy_with(scheme=self.base.scheme, host=self.base.hostname, port=self.base.port)
        return super().handle_request(request)


def main(binary):
    transport = ToSandbox()
    wa = WhatsApp(
        phone_id=PHONE, waba_id=PHONE, token="any-token", app_secret=SECRET, verify_token=VERIFY_TOKEN,
        session=httpx.Client(transport=transport),
    )
    wa_holder = {"wa": wa}

    class App(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, text, status):
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            query = parse_qs(urlparse(self.path).query)
            text, status = wa_holder["wa"].webhook_challenge_handler(
                vt=query.get("hub.verify_token", [None])[0], ch=query.get("hub.challenge", [None])[0]
            )
            self.answer(text or "", status)

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            wa = wa_holder["wa"]
            refused = wa.webhook_update_validator(body, self.headers.get("X-Hub-Signature-256"))
            if refused:
                sys.stderr.write(f"pywa refused a webhook: {refused}\n")
                self.answer(*refused)
                return
            self.answer(*wa.webhook_update_handler(body))

    app = ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    app_url = f"http://127.0.0.1:{app.server_address[1]}/"

    args = ["--webhook-url", app_url, "--verify-token", VERIFY_TOKEN, "--clock-start", "2026-11-02T12:00:00Z"]
    with running_sandbox(binary, args, {"WAMETER_APP_SECRET": SECRET}) as base:
        transport.base = urlparse(base)
        run(base, wa)


def run(base, wa):
    @wa.on_message()
    def on_message(_, message: types.Message):
        with lock:
            messages.append((message.from_user.wa_id, message.text))

    @wa.on_message_status()
    def on_status(_, status: types.MessageStatus):
        with lock:
            statuses.append((status.id, str(status.status), status.pricing, status.error))

    control = httpx.Client(base_url=base)
    def clock(seconds):
        control.post("/_sandbox/clock", json={"advance_seconds": seconds}).raise_for_status()

    # The user writes; pywa's handler receives and parses the signed webhook.
    control.post("/_sandbox/inbound", json={"business": PHONE, "user": USER, "text": "Onde está meu pedido? नमस्ते 🙂"}).raise_for_status()
    wait_for("the user's message", lambda: messages)
    assert messages[0] == (USER, "Onde está meu pedido? नमस्ते 🙂"), messages

    # The app replies free-form and sends Meta's sample template.
    reply = wa.send_message(to=USER, text="On its way!")
    template = wa.send_template(to=USER, name="hello_world", language=TemplateLanguage.ENGLISH_US)

    # Every other kind in the window: reply buttons, a location, a reaction,
    # a list, contacts, media by link, and media uploaded, described,
    # downloaded, sent by its id and deleted.
    wa.send_message(to=USER, text="Confirm the address?", buttons=[types.Button(title="Yes", callback_data="yes"), types.Button(title="No", callback_data="no")])
    wa.send_location(to=USER, latitude=-23.5614, longitude=-46.6559, name="Loja Paulista", address="Av. Paulista, 1000")
    wa.send_reaction(to=USER, emoji="👍", message_id=reply.id)
    wa.send_message(to=USER, text="Como prefere receber?", buttons=types.SectionList(button_title="Ver opções", sections=[
        types.Section(title="Entrega", rows=[types.SectionRow(title="Expressa", callback_data="fast", description="1 dia"),
                                             types.SectionRow(title="Econômica", callback_data="slow")])]))
    wa.send_contact(to=USER, contact=types.Contact(name=types.Contact.Name(formatted_name="Central de Ajuda", first_name="Central"),
                                                   phones=[types.Contact.Phone(phone="+551140040000", type="WORK")]))
    wa.send_audio(to=USER, audio="https://example.com/aviso.mp3")
    wa.send_video(to=USER, video="https://example.com/demo.mp4", caption="Como usar")
    wa.send_document(to=USER, document="https://example.com/nota.pdf", filename="nota.pdf", caption="Sua nota")
    wa.send_sticker(to=USER, sticker="https://example.com/ok.webp")
    photo = bytes((i * 31) % 256 for i in range(2048))
    media = wa.upload_media(media=photo, mime_type="image/jpeg", filename="receipt.jpg")
    url = wa.get_media_url(media.id)
    assert url.mime_type == "image/jpeg" and url.sha256 == hashlib.sha256(photo).hexdigest(), url
    assert wa.get_media_bytes(url.url) == photo, "the bytes uploaded"
    wa.send_image(to=USER, image=media.id, caption="Seu recibo")
    assert wa.delete_media(media.id)
    clock(10)
    def delivered(wamid):
        return [s for s in statuses if s[0] == wamid and s[1] == "delivered"]
    reply_status = wait_for("the reply's delivery", lambda: delivered(reply.id))[0]
    template_status = wait_for("the template's delivery", lambda: delivered(template.id))[0]
    assert str(reply_status[2].type) == "free_customer_service" and reply_status[2].billable is False, reply_status
    assert str(template_status[2].category) == "utility" and template_status[2].billable is True, template_status

    # 25 hours later a free-form message fails with 131047, as on Meta.
    clock(25 * 3600)
    late = wa.send_message(to=USER, text="Still there?")
    clock(10)
    failed = wait_for("the late message's failure", lambda: [s for s in statuses if s[0] == late.id and s[1] == "failed"])[0]
    # pywa maps Meta's code to its own exception class.
    assert failed[3] is not None and failed[3].code == 131047, failed
    assert type(failed[3]).__name__ == "ReEngagementMessage", type(failed[3])

    # Without an accounts file a phone number is its own WABA.
    templates = wa.get_templates()
    assert any(t.name == "hello_world" for t in templates), templates

    charges = control.get("/_sandbox/charges").json()
    billed = [c for c in charges["charges"] if c["billable"]]
    assert [c["message_id"] for c in billed] == [template.id], charges
    print(json.dumps({"pywa": "ok", "messages": len(messages), "statuses": len(statuses), "billed": billed[0]["amount"]}))


if __name__ == "__main__":
    main(sys.argv[1])
