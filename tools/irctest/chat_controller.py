"""An irctest controller that runs `chat serve --irc-port` for each test.

Run the IRC conformance suite (https://github.com/progval/irctest) against
this server, from a checkout of irctest:

    PYTHONPATH=/path/to/chat/tools/irctest CHAT_DIR=/path/to/chat \
        python3 -m pytest --controller chat_controller \
        irctest/server_tests/connection_registration.py ...

Not part of `deno task test`: irctest is a separate, optional download.
"""

import os
from typing import Optional, Set, Type

from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.runner import NotImplementedByController

CHAT_DIR = os.environ.get(
    "CHAT_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)


class ChatController(BaseServerController, DirectoryBasedController):
    software_name = "chat"
    supported_sasl_mechanisms: Set[str] = set()
    supports_sts = False

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: Optional[str],
        ssl: bool,
        run_services: bool,
        faketime: Optional[str],
        websocket_hostname: Optional[str],
        websocket_port: Optional[int],
    ) -> None:
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        if ssl:
            raise NotImplementedByController("TLS")
        if run_services:
            raise NotImplementedByController("Services")
        assert self.proc is None
        self.port = port
        self.hostname = hostname
        self.create_config()
        args = [
            "deno", "run", "-q", "-A", os.path.join(CHAT_DIR, "main.ts"), "serve",
            "--host", hostname, "--port", "0", "--irc-port", str(port),
            "--data", ":memory:", "--history", "0",
            # The name irctest's cases expect in the server's own lines.
            "--irc-server-name", "My.Little.Server",
        ]
        if password is not None:
            args += ["--password", password]
        self.proc = self.execute(args)


def get_irctest_controller_class() -> Type[ChatController]:
    return ChatController
