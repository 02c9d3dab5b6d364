"""A TCP relay on loopback that a test can cut: a network partition between one client and
one server, with both processes still running."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class TcpLink:
    """Relays connections made to :attr:`port` to ``127.0.0.1:target_port``.

    :meth:`cut` partitions the link the way a dead network path does: connections stay open but
    every byte in either direction is dropped, and new connections are accepted and never
    answered (so clients wait for their timeouts instead of getting a quick refusal).
    :meth:`restore` closes every connection of the partition (their peers reconnect, as after a
    TCP reset) and relays again. :meth:`close` stops the relay.
    """

    def __init__(self, target_port: int | None = None) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        #: Each open socket and the one it relays to (None: held by a partition).
        self._peers: dict[socket.socket, socket.socket | None] = {}
        self._cut = threading.Event()
        self._reset = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tcp-link-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def cut(self) -> None:
        self._cut.set()

    def restore(self) -> None:
        self._reset.set()  # first: nothing held during the cut is relayed afterwards
        self._cut.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in list(self._peers):
            self._drop(sock)
        self._selector.close()
        self._listener.close()

    # -- the relay's one thread ---------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if self._reset.is_set():
                for sock in list(self._peers):
                    self._drop(sock)
                self._reset.clear()
            for key, _ in self._selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept()
                elif sock in self._peers:
                    self._relay(sock)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        client.settimeout(5)
        upstream: socket.socket | None = None
        if not self._cut.is_set() and self.target_port is not None:
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                return
            upstream.settimeout(5)
            self._peers[upstream] = client
            self._selector.register(upstream, selectors.EVENT_READ)
        self._peers[client] = upstream
        self._selector.register(client, selectors.EVENT_READ)

    def _relay(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        peer = self._peers.get(sock)
        if peer is None or self._cut.is_set() or self._reset.is_set():
            return  # partitioned: the bytes are lost
        try:
            peer.sendall(data)
        except OSError:
            self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock, None)
        for each in (sock, peer):
            if each is None:
                continue
            self._peers.pop(each, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(each)
            each.close()
