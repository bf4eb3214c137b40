"""A real SMTP receiver for the email connector's tests (tests/src/mail.rs).

aiosmtpd (installed into target/mail-venv by scripts/test.sh) on 127.0.0.1,
on a port the OS picks (printed as "listening on PORT" once it accepts).
It requires AUTH (PLAIN or LOGIN, over plain TCP: the tests run without
TLS) with the given user and password, and stores every accepted message as
one JSON file in DIR/mail/ (written to a temporary name, then renamed, so a
reader never sees half a file): the envelope sender, the recipients, the
authenticated user and the raw message.

Failure injection: while DIR/fail-next holds "CODE COUNT" with COUNT > 0,
the next DATA is answered with CODE (e.g. 451 or 421, or a 5xx) and COUNT
goes down by one. Every DATA, accepted or not, appends a line to
DIR/attempts, so a test can count attempts.

TLS: with MODE CERT KEY after the password, MODE `tls` speaks TLS from the
first byte (SMTPS) and `starttls` requires STARTTLS before AUTH; in both,
AUTH is refused on a connection that is not encrypted.

Usage: smtp_receiver.py DIR USER PASSWORD [MODE CERT KEY]
"""

import asyncio
import json
import logging
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, directory):
        self.dir = directory
        self.count = 0
        os.makedirs(os.path.join(directory, "mail"), exist_ok=True)

    def _injected_failure(self):
        path = os.path.join(self.dir, "fail-next")
        try:
            with open(path) as f:
                code, count = f.read().split()
        except (OSError, ValueError):
            return None
        if int(count) <= 0:
            return None
        with open(path + ".tmp", "w") as f:
            f.write(f"{code} {int(count) - 1}")
        os.replace(path + ".tmp", path)
        return int(code)

    async def handle_DATA(self, server, session, envelope):
        with open(os.path.join(self.dir, "attempts"), "a") as f:
            f.write(",".join(envelope.rcpt_tos) + "\n")
        code = self._injected_failure()
        if code is not None:
            texts = {421: "Service not available, closing channel", 451: "Requested action aborted: try again later"}
            return f"{code} {texts.get(code, 'Refused by the test receiver')}"
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_user": session.authenticated and getattr(session, "auth_data", None),
            "data": envelope.content.decode("utf-8", "replace"),
        }
        name = os.path.join(self.dir, "mail", f"{self.count:06d}.json")
        with open(name + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(name + ".tmp", name)
        return "250 Message accepted for delivery"


def authenticator(user, password, encrypted_only):
    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        # aiosmtpd's own auth_require_tls only knows STARTTLS: check SMTPS here.
        if encrypted_only and server.transport.get_extra_info("ssl_object") is None:
            return AuthResult(success=False, message="538 Encryption required for requested authentication mechanism")
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok, auth_data=auth_data.login.decode() if ok else None)

    return check


async def main():
    # "AUTH without TLS" is the point here (loopback tests), not a finding.
    warnings.filterwarnings("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    directory, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
    mode = sys.argv[4] if len(sys.argv) > 4 else "plain"
    context = None
    if mode != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[5], sys.argv[6])
    handler = Handler(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="receiver.test",
            auth_required=True,
            auth_require_tls=mode == "starttls",
            require_starttls=mode == "starttls",
            tls_context=context if mode == "starttls" else None,
            authenticator=authenticator(user, password, mode == "tls"),
        ),
        host="127.0.0.1",
        port=0,
        ssl=context if mode == "tls" else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
